import {Flags} from '@oclif/core'

import {formatBytes} from '../../src/aws/progress.js'
import {defaultCacheDir, pruneCache, type PruneResult} from '../../src/model/index.js'
import {BaseCommand} from '../_base.js'
import {cacheDirFlag} from '../_model.js'

export default class CachePrune extends BaseCommand {
  static override description = [
    'Remove conversion cache entries: all of them, those last used longer ago than --older-than, or all but the --keep most recently used (given together, an entry goes when every one selects it).',
    'Entries held by a running icc serve are never removed. Exit codes: 0 done, 2 usage.',
  ].join('\n\n')
  static override examples = [
    {
      command: '<%= config.bin %> <%= command.id %> --older-than 30d',
      description: 'Remove entries unused for 30 days.',
    },
    {
      command: '<%= config.bin %> <%= command.id %> --keep 2 --dry-run',
      description: 'Show what keeping two would remove.',
    },
    {command: '<%= config.bin %> <%= command.id %> --all', description: 'Empty the cache (except what serve holds).'},
  ]
  static override flags = {
    all: Flags.boolean({description: 'Remove every entry not in use.'}),
    'cache-dir': cacheDirFlag,
    'dry-run': Flags.boolean({description: 'Only list what would be removed.'}),
    keep: Flags.integer({description: 'Keep this many most recently used entries.', min: 0}),
    'older-than': Flags.string({description: 'Remove entries last used longer ago than this (e.g. 30d, 12h, 2w).'}),
  }

  async run(): Promise<PruneResult> {
    const {flags} = await this.parse(CachePrune)
    const result = await pruneCache({
      all: flags.all,
      cacheDir: flags['cache-dir'] ?? defaultCacheDir(),
      dryRun: flags['dry-run'],
      keep: flags.keep,
      olderThan: flags['older-than'],
    })
    if (!this.jsonEnabled()) {
      const verb = result.dryRun ? 'would remove' : 'removed'
      for (const e of result.removed)
        this.log(`${verb} ${e.kind} ${e.key.slice(0, 16)} (${e.bytes} bytes) ${e.source ?? ''}`)
      const held = result.kept.filter((e) => e.inUse).length
      this.log(
        `${verb} ${result.removed.length} entries, ${formatBytes(result.freedBytes)}; kept ${result.kept.length} (${held} in use)`,
      )
    }

    return result
  }
}
