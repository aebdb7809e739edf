/**
 * The progress line of a conversion with the real binary: on a terminal (a pty from util-linux `script`) stderr
 * shows "converting model"; without a terminal, or with --json, nothing.
 */
import {execa} from 'execa'
import assert from 'node:assert/strict'
import {rm} from 'node:fs/promises'
import {join} from 'node:path'

import {BIN, icc, REPO_ROOT} from '../helpers/cli.js'
import {tempDir, writeModelDir} from '../helpers/model-fixtures.js'

describe('conversion progress line', function () {
  this.timeout(120_000)
  let dir: string
  let model: string

  before(async () => {
    dir = await tempDir('icc-progress-')
    model = (await writeModelDir(join(dir, 'm'), {numClasses: 3})).dir
  })

  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  it('appears on a terminal while a model converts, never in a pipe', async () => {
    const out = (cache: string) => [
      'convert-model',
      model,
      '--output',
      join(dir, `${cache}.onnx`),
      '--cache-dir',
      join(dir, cache),
    ]
    const tty = await execa('script', ['-qec', [process.execPath, BIN, ...out('c1')].join(' '), '/dev/null'], {
      cwd: REPO_ROOT,
      env: {NO_COLOR: '1'},
      reject: false,
      timeout: 60_000,
    })
    assert.equal(tty.exitCode, 0, String(tty.stdout))
    assert.match(String(tty.stdout), /converting model: done in \d+s/)

    const piped = await icc(out('c2'))
    assert.equal(piped.exitCode, 0, piped.stderr)
    assert.doesNotMatch(piped.stderr + piped.stdout, /converting model/)
  })
})
