/**
 * The CLI surface every command owes its users (design card): flat names, `--json`, and `--help` with at least two
 * examples; and that `src/` (the library) never imports oclif.
 */
import {Config} from '@oclif/core'
import assert from 'node:assert/strict'
import {readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {icc, REPO_ROOT} from './helpers/cli.js'

describe('CLI surface', () => {
  it('every command is flat (or in the cache topic), takes --json and has at least two examples in --help', async () => {
    const config = await Config.load(REPO_ROOT)
    const ids = config.commands.map((c) => c.id).sort()
    assert.ok(
      ids.includes('create-connector') && ids.includes('serve') && ids.includes('validate-connector'),
      ids.join(','),
    )
    // icc's own commands (oclif's help, not-found and autocomplete plugins bring their own conventions)
    for (const summary of config.commands.filter((c) => c.pluginName === 'icc')) {
      // the one topic: `icc cache list|prune` (care of the conversion cache)
      assert.match(summary.id, /^(?:[a-z-]+|cache:[a-z-]+)$/, `${summary.id} is not flat`)
      const command = await summary.load()
      assert.equal(command.enableJsonFlag, true, `${summary.id}: no --json`)
      assert.ok((command.examples ?? []).length >= 2, `${summary.id}: ${(command.examples ?? []).length} examples`)
      assert.ok(command.description && command.description.length > 20, `${summary.id}: no description`)
    }

    const help = await icc(['validate-connector', '--help'])
    assert.equal(help.exitCode, 0)
    assert.match(help.stdout, /EXAMPLES[\s\S]*\$ icc validate-connector[\s\S]*\$ icc validate-connector/)
    assert.match(help.stdout, /--json/)
  })

  it('src/ never imports @oclif/core', async () => {
    const files = (await readdir(join(REPO_ROOT, 'src'), {recursive: true})).filter((f) => f.endsWith('.ts'))
    assert.ok(files.length > 20)
    for (const f of files) {
      const text = await readFile(join(REPO_ROOT, 'src', f), 'utf8')
      assert.doesNotMatch(text, /from '@oclif\//, `src/${f} imports oclif`)
    }
  })
})
