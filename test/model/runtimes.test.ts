/**
 * The two ONNX Runtimes of src/model/session.ts, through the real CLI: `icc predict` and `icc serve` with
 * `--runtime wasm` (onnxruntime-web's WebAssembly build) answer within 1e-5 of `--runtime native`
 * (onnxruntime-node) on the test models, and say which runtime ran; GPU acceleration on wasm is the CUDA error,
 * or the CPU with --allow-cpu-fallback.
 */
import assert from 'node:assert/strict'
import {readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {icc, iccJson, SHARED} from '../helpers/cli.js'
import {tempDir, writeModelDir} from '../helpers/model-fixtures.js'
import {http, noiseImage, parseConnectorBody, startServe} from '../helpers/serve-host.js'

const TOLERANCE = 1e-5

function maxDiff(a: number[][], b: number[][]): number {
  assert.equal(a.length, b.length)
  let max = 0
  for (const [i, row] of a.entries()) {
    assert.equal(row.length, b[i].length)
    for (const [j, v] of row.entries()) max = Math.max(max, Math.abs(v - b[i][j]))
  }

  return max
}

async function predictWith(runtime: string, model: string, images: string[]) {
  const r = await iccJson(['predict', '--model', model, '--runtime', runtime, ...images], {timeoutMs: 120_000})
  assert.equal(r.exitCode, 0, r.stderr)
  assert.equal(r.json.runtime, runtime)
  return r.json.results.map((x: {probabilities: number[]}) => x.probabilities) as number[][]
}

describe('runtimes: native (onnxruntime-node) and wasm (onnxruntime-web)', function () {
  this.timeout(300_000)
  let dir: string
  let resnet: string
  let images: string[]

  before(async () => {
    dir = await tempDir()
    resnet = join(dir, 'resnet')
    // a CIFAR ResNet-20 in SageMaker's format (32x32, 10 classes)
    await writeModelDir(resnet, {imageShape: [3, 32, 32], numClasses: 10, numLayers: 20})
    images = []
    for (const seed of [1, 2, 3]) {
      const file = join(dir, `noise-${seed}.jpg`)
      await writeFile(file, await noiseImage('jpeg', 40, 30, seed))
      images.push(file)
    }
  })

  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  it('predict: wasm answers within 1e-5 of native on a ResNet-20 and the fashion-MNIST LeNet', async () => {
    const a = await predictWith('native', resnet, images)
    const b = await predictWith('wasm', resnet, images)
    assert.ok(maxDiff(a, b) <= TOLERANCE, `ResNet-20: max diff ${maxDiff(a, b)}`)

    const lenet = join(SHARED, 'models', 'fashion-mnist-lenet')
    const test = join(lenet, 'test', '3')
    const pngs = (await readdir(test)).slice(0, 8).map((f) => join(test, f))
    const c = await predictWith('native', lenet, pngs)
    const d = await predictWith('wasm', lenet, pngs)
    assert.ok(maxDiff(c, d) <= TOLERANCE, `LeNet: max diff ${maxDiff(c, d)}`)
  })

  it('serve --runtime wasm: the ready line, /v2/models and the answers name wasm and match native', async () => {
    const expected = await predictWith('native', resnet, images)
    const socket = join(dir, 'run', 'icc.sock')
    const host = await startServe(['--model', resnet, '--runtime', 'wasm', '--max-batch', '2'], {
      socket,
      timeoutMs: 120_000,
    })
    try {
      assert.match(host.stdout(), /icc serve: ready on .*\(services: imageClassification on wasm\)/)
      const model = (await http({socket}, 'GET', '/v2/models/imageClassification')).json()
      assert.equal(model.runtime, 'wasm', JSON.stringify(model))
      const got: number[][] = []
      for (const image of images) {
        const res = await http({socket}, 'POST', '/invocations', await readFile(image), {'content-type': 'image/jpeg'})
        assert.equal(res.status, 200, res.body)
        got.push(parseConnectorBody(res.body))
      }

      assert.ok(maxDiff(got, expected) <= TOLERANCE, `max diff ${maxDiff(got, expected)}`)
    } finally {
      const r = await host.stop()
      assert.equal(r.exitCode, 0, host.stderr().split('\n').slice(-8).join('\n'))
    }
  })

  it('GPU on wasm: the CUDA error (exit 5) naming the runtime; --allow-cpu-fallback serves on the CPU', async () => {
    const r = await iccJson(['predict', '--model', resnet, '--runtime', 'wasm', '--gpu', images[0]])
    assert.equal(r.exitCode, 5)
    assert.equal(r.json.error.code, 'CUDA_UNAVAILABLE')
    assert.match(r.json.error.message, /WebAssembly runtime \(onnxruntime-web\) has no CUDA provider/)

    const socket = join(dir, 'gpu', 'icc.sock')
    const failed = await icc(
      ['serve', '--model', resnet, '--runtime', 'wasm', '--gpu-acceleration', 'GPU', '--socket', socket],
      {
        timeoutMs: 120_000,
      },
    )
    assert.equal(failed.exitCode, 5, failed.stderr)
    assert.match(failed.stderr, /CUDA_UNAVAILABLE/)
    const host = await startServe(
      ['--model', resnet, '--runtime', 'wasm', '--gpu-acceleration', 'GPU', '--allow-cpu-fallback'],
      {socket, timeoutMs: 120_000},
    )
    try {
      assert.match(host.stderr(), /no CUDA provider; running on the CPU/)
    } finally {
      await host.stop()
    }
  })

  it('doctor says which runtime icc serve will use, and --model loads in a runner on that runtime', async () => {
    const auto = await iccJson(['doctor', '--for', 'icc'], {env: {ICC_RUNTIME: ''}})
    const check = (json: {checks: {evidence: Record<string, unknown>; id: string; message: string}[]}, id: string) =>
      json.checks.find((c) => c.id === id)!
    assert.equal(check(auto.json, 'backend').evidence.backend, 'native')
    assert.match(check(auto.json, 'backend').message, /onnxruntime-node \(native\)/)
    const wasm = await iccJson(['doctor', '--for', 'icc', '--runtime', 'wasm', '--model', resnet], {timeoutMs: 120_000})
    assert.match(check(wasm.json, 'backend').message, /WebAssembly runtime \(onnxruntime-web\)/)
    assert.equal(check(wasm.json, 'model').evidence.runtime, 'wasm', JSON.stringify(check(wasm.json, 'model')))
  })
})
