import {formatBytes} from '../../src/aws/progress.js'
import {type CacheListing, defaultCacheDir, listCache} from '../../src/model/index.js'
import {BaseCommand} from '../_base.js'
import {cacheDirFlag} from '../_model.js'

export default class CacheList extends BaseCommand {
  static override description = [
    'List the conversion cache: each entry with its key, the model it was converted from, its size and its last use.',
    'An entry is a converted model (with its CPU-optimised copy and the archive it was extracted from); optimised models and extracted archives no entry claims are listed on their own. "in use" marks entries a running icc serve holds.',
  ].join('\n\n')
  static override examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'List the default cache.'},
    {command: '<%= config.bin %> <%= command.id %> --cache-dir /var/cache/icc --json', description: 'As JSON.'},
  ]
  static override flags = {'cache-dir': cacheDirFlag}

  async run(): Promise<CacheListing> {
    const {flags} = await this.parse(CacheList)
    const listing = await listCache(flags['cache-dir'] ?? defaultCacheDir())
    if (!this.jsonEnabled()) {
      for (const e of listing.entries) {
        const use = e.inUse ? ' (in use)' : ''
        this.log(
          `${e.key.slice(0, 16)}  ${e.kind.padEnd(9)} ${formatBytes(e.bytes).padStart(10)}  ${e.lastUse}${use}  ${e.source ?? '-'}`,
        )
      }

      this.log(`${listing.entries.length} entries, ${formatBytes(listing.totalBytes)} in ${listing.cacheDir}`)
    }

    return listing
  }
}
