/**
 * The commands that convert a model outside `icc serve` run with the runner's malloc settings
 * (src/serve/malloc-reexec.ts): the command runs again in a child process that has them, its exit code is the
 * command's; settings already in the environment are kept and then nothing runs twice. Through `icc predict` too,
 * seen from a preload module that records each process's settings.
 */
import assert from 'node:assert/strict'
import {readFile, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {rerunWithMallocSettings} from '../../src/serve/malloc-reexec.js'
import {icc} from '../helpers/cli.js'
import {solidJpeg} from '../helpers/images.js'
import {tempDir, writeModelDir} from '../helpers/model-fixtures.js'

const MALLOC = ['MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_']

describe('the runner malloc settings for the commands that convert', function () {
  this.timeout(120_000)
  let dir: string
  let script: string
  let seen: string

  before(async () => {
    dir = await tempDir('icc-malloc-')
    seen = join(dir, 'seen.json')
    script = join(dir, 'command.mjs')
    // stands for bin/run.js: records what it was run with, exits 3
    await writeFile(
      script,
      `import {writeFileSync} from 'node:fs'
writeFileSync(${JSON.stringify(seen)}, JSON.stringify({argv: process.argv.slice(2), env: process.env}))
process.exit(3)
`,
    )
  })

  after(async () => {
    if (dir) await rm(dir, {force: true, recursive: true})
  })

  const withoutMalloc = (extra: Record<string, string> = {}) => {
    const env = {...process.env, ...extra}
    for (const k of MALLOC) if (!(k in extra)) delete env[k]
    return env
  }

  it('runs convert-model again with the settings and returns its exit code; a setting given is kept', async () => {
    await rm(seen, {force: true})
    const code = await rerunWithMallocSettings(
      [process.execPath, script, 'convert-model', 'a b', '--x'],
      withoutMalloc({MALLOC_TRIM_THRESHOLD_: '65536'}),
    )
    assert.equal(code, 3)
    const {argv, env} = JSON.parse(await readFile(seen, 'utf8'))
    assert.deepEqual(argv, ['convert-model', 'a b', '--x'])
    assert.equal(env.MALLOC_MMAP_THRESHOLD_, '131072')
    assert.equal(env.MALLOC_TRIM_THRESHOLD_, '65536')
  })

  it('runs nothing when the settings are there, or for a command that does not convert', async () => {
    await rm(seen, {force: true})
    const all = {MALLOC_MMAP_THRESHOLD_: '1', MALLOC_TRIM_THRESHOLD_: '1'}
    assert.equal(await rerunWithMallocSettings([process.execPath, script, 'predict'], withoutMalloc(all)), undefined)
    assert.equal(await rerunWithMallocSettings([process.execPath, script, 'serve'], withoutMalloc()), undefined)
    assert.equal(await rerunWithMallocSettings([process.execPath, script, 'doctor'], withoutMalloc()), undefined)
    await assert.rejects(readFile(seen), {code: 'ENOENT'})
  })

  it('icc predict classifies in a process that has the settings', async () => {
    const model = join(dir, 'model')
    await writeModelDir(model, {numClasses: 4})
    const jpeg = join(dir, 'x.jpg')
    await writeFile(jpeg, await solidJpeg(32, 32, {b: 20, g: 200, r: 20}))
    const log = join(dir, 'processes.log')
    const preload = join(dir, 'preload.cjs')
    await writeFile(
      preload,
      // main threads only: the wasm runtime's worker threads load the preload too
      `if (require('node:worker_threads').isMainThread) require('node:fs').appendFileSync(${JSON.stringify(log)}, JSON.stringify([process.argv[2], process.env.MALLOC_TRIM_THRESHOLD_ ?? null]) + '\\n')\n`,
    )
    // undefined: not passed on (the test's own environment might have them)
    const unset = Object.fromEntries(MALLOC.map((k) => [k, undefined])) as unknown as Record<string, string>
    const env = {...unset, NODE_OPTIONS: `--require ${preload}`}
    const r = await icc(['predict', '--model', model, jpeg, '--cache-dir', join(dir, 'cache')], {env})
    assert.equal(r.exitCode, 0, r.stderr)
    assert.equal(JSON.parse(r.stdout).length, 4)
    const processes = (await readFile(log, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    assert.deepEqual(processes, [
      ['predict', null],
      ['predict', '131072'],
    ])
  })
})
