/**
 * The Greengrass V2 recipe's Install check that the unpacked bundle loads, run by `sh` against this checkout (as
 * the unpacked bundle): it checks the ONNX Runtime `icc serve` will use, so a device where onnxruntime-node has no
 * binary (armv7, simulated by failing its import) passes on the WebAssembly runtime; where neither runtime (or
 * sharp) loads, it fails with icc's own error and fix.
 */
import {execa} from 'execa'
import assert from 'node:assert/strict'
import {rm, symlink} from 'node:fs/promises'
import {join} from 'node:path'

import {BUNDLE_LOAD_CHECK} from '../../src/greengrass-v2/recipe.js'
import {REPO_ROOT} from '../helpers/cli.js'
import {failingImports} from '../helpers/failing-import.js'
import {tempDir} from '../helpers/model-fixtures.js'

describe('greengrass-v2: the Install step checks the runtime serve will use', function () {
  this.timeout(120_000)
  let dir: string

  before(async () => {
    dir = await tempDir('icc-install-check-')
    // the check runs in "$ICC_HOME.new", the unpacked bundle: this checkout
    await symlink(REPO_ROOT, join(dir, 'icc.new'))
  })

  after(async () => {
    if (dir) await rm(dir, {force: true, recursive: true})
  })

  async function check(failing: string[]) {
    const env = {ICC_HOME: join(dir, 'icc'), ...(failing.length > 0 ? await failingImports(dir, failing) : {})}
    return execa('sh', ['-c', BUNDLE_LOAD_CHECK], {env, reject: false})
  }

  it('passes on native ONNX Runtime where onnxruntime-node loads', async () => {
    const r = await check([])
    assert.equal(r.exitCode, 0, r.stderr)
    assert.match(r.stdout, /the bundle loads here: ONNX Runtime native, sharp/)
  })

  it('armv7 (no onnxruntime-node binary): passes on the WebAssembly runtime', async () => {
    const r = await check(['onnxruntime-node'])
    assert.equal(r.exitCode, 0, r.stderr)
    assert.match(r.stdout, /ONNX Runtime wasm, sharp/)
  })

  it('neither runtime loads, or sharp does not: fails with the error and its fix', async () => {
    const none = await check(['onnxruntime-node', 'onnxruntime-web'])
    assert.equal(none.exitCode, 1)
    assert.match(
      none.stderr,
      /icc: The WebAssembly runtime \(onnxruntime-web\) does not load: .*npm install onnxruntime-web/,
    )
    assert.match(none.stderr, /does not load on this device \(x86_64\)/)
    const sharp = await check(['sharp'])
    assert.equal(sharp.exitCode, 1)
    assert.match(sharp.stderr, /icc: The image decoder sharp does not load .*@img\/sharp-wasm32/)
  })
})
