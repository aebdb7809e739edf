/**
 * The progress line of a conversion with the real binary: on a terminal (a pty from util-linux `script`) stderr
 * shows "converting model", "quantizing model (int8)" and serve's "loading the model"; without a terminal, or with
 * --json, nothing.
 */
import {execa} from 'execa'
import assert from 'node:assert/strict'
import {mkdir, readFile, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {BIN, icc, REPO_ROOT} from '../helpers/cli.js'
import {tempDir, writeModelDir} from '../helpers/model-fixtures.js'
import {noiseImage, waitFor} from '../helpers/serve-host.js'

/** Run `args` of the icc binary on a terminal (a pty from `script`); its output, terminal codes and all. */
function onTerminal(args: string[], shellPrefix = '') {
  return execa('script', ['-qec', `${shellPrefix}${[process.execPath, BIN, ...args].join(' ')}`, '/dev/null'], {
    cwd: REPO_ROOT,
    env: {NO_COLOR: '1'},
    reject: false,
    timeout: 90_000,
  })
}

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
    const tty = await onTerminal(out('c1'))
    assert.equal(tty.exitCode, 0, String(tty.stdout))
    assert.match(String(tty.stdout), /converting model: done in \d+s/)

    const piped = await icc(out('c2'))
    assert.equal(piped.exitCode, 0, piped.stderr)
    assert.doesNotMatch(piped.stderr + piped.stdout, /converting model/)
  })

  it('appears on a terminal while a model quantizes, never in a pipe', async () => {
    const photos = join(dir, 'photos')
    await mkdir(photos, {recursive: true})
    for (const i of [1, 2]) await writeFile(join(photos, `p${i}.jpg`), await noiseImage('jpeg', 32, 32))
    const out = (name: string) => ['convert-model', model, '--output', join(dir, `${name}.onnx`), '--quantize', 'int8']
    const more = ['--calibration', photos, '--cache-dir', join(dir, 'cq')]
    const tty = await onTerminal([...out('q1'), ...more])
    assert.equal(tty.exitCode, 0, String(tty.stdout))
    assert.match(String(tty.stdout), /quantizing model \(int8\): done in \d+s/)
    const piped = await icc([...out('q2'), ...more])
    assert.equal(piped.exitCode, 0, piped.stderr)
    assert.doesNotMatch(piped.stderr + piped.stdout, /quantizing model/)
  })

  it("appears on a terminal while serve's first load converts, before the ready line", async () => {
    const pidFile = join(dir, 'serve.pid')
    const socket = join(dir, 'progress.sock')
    const args = ['serve', '--model', model, '--socket', socket, '--cache-dir', join(dir, 'cs')]
    // the shell's pid is serve's (exec): SIGTERM ends it as a user's Ctrl-C would
    const tty = onTerminal(args, `echo $$ > ${pidFile}; exec `)
    let seen = ''
    tty.stdout!.on('data', (chunk: Buffer) => {
      seen += chunk.toString()
    })
    try {
      await waitFor(async () => /icc serve: ready/.test(seen), 90_000, 'the ready line')
      process.kill(Number(await readFile(pidFile, 'utf8')), 'SIGTERM')
    } finally {
      const r = await tty
      assert.match(String(r.stdout), /loading the model \(the first load converts\): done in \d+s[^]*icc serve: ready/)
    }
  })
})
