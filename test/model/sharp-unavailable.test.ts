/**
 * A sharp whose native build does not load (an old glibc, simulated: a Node module hook makes `import('sharp')`
 * fail as sharp does there): `icc predict` and `icc serve`'s runner fail with the DependencyError SHARP_UNAVAILABLE
 * (exit 5) naming the glibc needed and found and the fix, not a raw module error; src/model/sharp.ts's message
 * with an injected old glibc.
 */
import assert from 'node:assert/strict'
import {join} from 'node:path'

import {connectorForPlatform} from '../../src/connector/catalog.js'
import {glibcVersion, iccSupportFor} from '../../src/device/platform.js'
import {sharpUnavailable} from '../../src/model/sharp.js'
import {icc, iccJson, REPO_ROOT} from '../helpers/cli.js'
import {failingImports, injectedFailure} from '../helpers/failing-import.js'
import {tempDir, writeModelDir} from '../helpers/model-fixtures.js'

describe('model: a sharp that does not load', function () {
  this.timeout(300_000)
  let dir: string
  let env: Record<string, string>
  let model: string
  const glibc = glibcVersion()
  const needs = iccSupportFor()?.minimumGlibc.sharp

  before(async () => {
    dir = await tempDir('icc-sharp-')
    model = (await writeModelDir(join(dir, 'model'), {numClasses: 10})).dir
    env = await failingImports(dir, ['sharp'])
  })

  it('the error names the glibc needed and found, and the WebAssembly build (armv7, glibc 2.31)', () => {
    const e = sharpUnavailable(new Error('ERR_DLOPEN_FAILED\nmore'), {
      glibc: '2.31',
      support: connectorForPlatform('armv7').icc,
    })
    assert.equal(e.exitCode, 5)
    assert.equal(e.code, 'SHARP_UNAVAILABLE')
    assert.match(e.message, /needs 2\.36 for sharp on .*, found 2\.31\): ERR_DLOPEN_FAILED$/)
    assert.match(e.suggestions!.join(' '), /upgrade the OS, or .*npm install --cpu=wasm32 @img\/sharp-wasm32/)
  })

  it('icc predict: exit 5, SHARP_UNAVAILABLE with the glibc needed and found, not a module error', async () => {
    const r = await iccJson(['predict', '--model', model, join(REPO_ROOT, 'assets', 'samples', 'lemon.jpg')], {env})
    assert.equal(r.exitCode, 5, r.stderr)
    assert.equal(r.json.error.code, 'SHARP_UNAVAILABLE')
    assert.ok(r.json.error.message.includes(`needs ${needs} for sharp on linux-${process.arch}, found ${glibc}`))
    assert.ok(r.json.error.message.includes(injectedFailure('sharp')))
    assert.match(r.json.error.suggestions.join(' '), /@img\/sharp-wasm32/)
  })

  it("icc serve: the runner's start-up fails with exit 5 and the same error", async () => {
    const r = await icc(['serve', '--model', model, '--socket', join(dir, 'icc.sock')], {env, timeoutMs: 120_000})
    assert.equal(r.exitCode, 5, r.stderr)
    assert.match(r.stderr, /SHARP_UNAVAILABLE/)
    assert.ok(r.stderr.includes(`found ${glibc}`), r.stderr)
    assert.match(r.stderr, /@img\/sharp-wasm32/)
  })
})
