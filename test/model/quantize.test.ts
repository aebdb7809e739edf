/**
 * int8 quantization (src/model/quantize.ts, `icc convert-model --quantize int8`): a real trained model (the
 * fashion-MNIST LeNet of ../shared) must keep its decisions on its 1000 labelled test images; a SageMaker-format
 * ResNet (BatchNorm after Conv, residual Adds) must come out in the QDQ form ONNX Runtime runs with integer
 * kernels, with its BatchNorms folded; and the command must calibrate on a directory of images and refuse to
 * quantize without one.
 */
import assert from 'node:assert/strict'
import {readdirSync} from 'node:fs'
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import onnxProto from 'onnx-proto'
import sharp from 'sharp'

import {loadModel} from '../../src/model/index.js'
import {quantizeInt8} from '../../src/model/quantize.js'
import {icc, SHARED} from '../helpers/cli.js'
import {type FixtureOptions, tempDir, writeModelDir} from '../helpers/model-fixtures.js'
import {inProcessOrt} from '../helpers/runtime.js'
import {noiseImage} from '../helpers/serve-host.js'

const {onnx} = onnxProto

async function runAll(model: Uint8Array | string, inputs: Float32Array[], shape: number[]): Promise<Float32Array[]> {
  // on the runtime icc uses here (npm run test:wasm: the wasm build, which has the integer kernels too)
  const ort = await inProcessOrt()
  const session = await ort.InferenceSession.create(
    typeof model === 'string' ? new Uint8Array(await readFile(model)) : model,
  )
  try {
    const out: Float32Array[] = []
    for (const x of inputs) {
      const r = await session.run({[session.inputNames[0]]: new ort.Tensor('float32', x, [1, ...shape])})
      out.push(Float32Array.from(r[session.outputNames[0]].data as Float32Array))
    }

    return out
  } finally {
    await session.release()
  }
}

/** A SageMaker-format ResNet-18 (ImageNet stem: BatchNorm after Conv, max pooling, residual Adds) on 64x64. */
const RESNET: FixtureOptions = {format: 'V2', imageShape: [3, 64, 64], numClasses: 10, numLayers: 18}

const argmax = (v: Float32Array) => v.reduce((best, x, i) => (x > v[best] ? i : best), 0)

describe('int8 quantization', function () {
  this.timeout(120_000)

  it('keeps the fashion-MNIST LeNet deciding as in float32 on its 1000 test images', async () => {
    const dir = join(SHARED, 'models', 'fashion-mnist-lenet')
    const files: string[] = []
    for (const label of readdirSync(join(dir, 'test')).sort()) {
      for (const f of readdirSync(join(dir, 'test', label)).sort()) files.push(join(dir, 'test', label, f))
    }

    const inputs = await Promise.all(
      files.map(async (f) => {
        const raw = await sharp(f).grayscale().raw().toBuffer()
        return Float32Array.from(raw, (v) => v / 255)
      }),
    )
    const model = await loadModel(dir, {cacheDir: await tempDir(), shape: [1, 1, 28, 28]})
    const float = await readFile(model.onnxPath)
    // calibrate on every 10th image
    const q = await quantizeInt8(float, {calibration: inputs.filter((_, i) => i % 10 === 0), inputShape: [1, 28, 28]})
    assert.ok(q.convolutions >= 1, `only ${q.convolutions} convolutions quantized`)
    const a = await runAll(float, inputs, [1, 28, 28])
    const b = await runAll(q.bytes, inputs, [1, 28, 28])
    const agree = a.filter((v, i) => argmax(v) === argmax(b[i])).length
    assert.ok(agree >= 980, `top-1 agreement ${agree}/1000`)
    // the scores themselves stay close (the last layer is tanh: scores in -1..1)
    let worst = 0
    for (const [i, v] of a.entries()) for (const [k, x] of v.entries()) worst = Math.max(worst, Math.abs(x - b[i][k]))
    assert.ok(worst < 0.15, `largest score difference ${worst}`)
  })

  it('folds a ResNet BatchNorms into its convolutions and writes int8 weights in QDQ form', async () => {
    const {dir} = await writeModelDir(await tempDir(), RESNET)
    const float = await readFile((await loadModel(dir, {cacheDir: join(dir, 'cache')})).onnxPath)
    const images = await Promise.all(Array.from({length: 12}, async (_, i) => noiseImage('png', 64, 64, i + 1)))
    const inputs = await Promise.all(
      images.map(async (png) => Float32Array.from(await sharp(png).removeAlpha().raw().toBuffer())),
    )
    const q = await quantizeInt8(float, {calibration: inputs.slice(0, 8), inputShape: [3, 64, 64]})
    const graph = onnx.ModelProto.decode(q.bytes).graph!
    const ops = graph.node!.map((n) => n.opType)
    const convs = ops.filter((o) => o === 'Conv').length
    assert.equal(q.convolutions, convs)
    // in this pre-activation ResNet a BatchNorm follows conv0 and the first conv of each unit
    const before = onnx.ModelProto.decode(float).graph!.node!
    const convOutputs = new Set(before.filter((n) => n.opType === 'Conv').map((n) => n.output![0]))
    const afterConv = before.filter((n) => n.opType === 'BatchNormalization' && convOutputs.has(n.input![0])).length
    assert.equal(q.foldedBatchNorms, afterConv)
    assert.equal(
      ops.filter((o) => o === 'BatchNormalization').length,
      before.filter((n) => n.opType === 'BatchNormalization').length - afterConv,
    )
    assert.ok(ops.filter((o) => o === 'QuantizeLinear').length >= convs, 'each convolution input quantized')
    const int8 = graph.initializer!.filter((t) => t.dataType === onnx.TensorProto.DataType.INT8 && t.dims!.length === 4)
    assert.equal(int8.length, convs, 'one int8 weight tensor per convolution')
    const floatWeights = graph.initializer!.filter(
      (t) => t.dataType === onnx.TensorProto.DataType.FLOAT && t.dims!.length === 4,
    )
    assert.deepEqual(floatWeights, [], 'no float convolution weights left')
    // it runs, and gives probabilities close to the float model's on images it was not calibrated on
    const a = await runAll(float, inputs.slice(8), [3, 64, 64])
    const b = await runAll(q.bytes, inputs.slice(8), [3, 64, 64])
    for (const [i, v] of a.entries()) {
      assert.ok(Math.abs(b[i].reduce((s, x) => s + x, 0) - 1) < 1e-4)
      for (const [k, x] of v.entries())
        assert.ok(Math.abs(x - b[i][k]) < 0.05, `image ${i} class ${k}: ${x} vs ${b[i][k]}`)
    }
  })

  it('icc convert-model --quantize int8 calibrates on a directory; without one it says what to pass (exit 2)', async () => {
    const dir = await tempDir()
    const {dir: modelDir} = await writeModelDir(join(dir, 'model'), {...RESNET, numClasses: 5})
    const photos = join(dir, 'photos', 'nested')
    await mkdir(photos, {recursive: true})
    for (let i = 0; i < 6; i++) await writeFile(join(photos, `p${i}.jpg`), await noiseImage('jpeg', 48, 40, i + 9))
    await writeFile(join(photos, 'notes.txt'), 'not an image')
    const out = join(dir, 'model.int8.onnx')
    const cache = ['--cache-dir', join(dir, 'cache')]
    /** `icc convert-model MODEL --output OUTPUT --quantize int8 [--calibration DIR]` */
    const quantize = (model: string, output: string, calibration?: string, ...more: string[]) =>
      icc([
        'convert-model',
        model,
        '--output',
        output,
        '--quantize',
        'int8',
        ...(calibration ? ['--calibration', calibration] : []),
        ...more,
        ...cache,
      ])
    const r = await quantize(modelDir, out, join(dir, 'photos'), '--json')
    assert.equal(r.exitCode, 0, r.stderr)
    const result = JSON.parse(r.stdout)
    assert.equal(result.quantization.calibrationImages, 6)
    assert.ok(result.quantization.convolutions > 10)
    await (await (await inProcessOrt()).InferenceSession.create(new Uint8Array(await readFile(out)))).release()
    // an int8 file is an ordinary model for the other commands
    const predicted = await icc(['predict', '--model', out, join(photos, 'p0.jpg'), '--json', ...cache])
    assert.equal(predicted.exitCode, 0, predicted.stderr)
    assert.equal(JSON.parse(predicted.stdout).results[0].probabilities.length, 5)
    const again = await quantize(out, join(dir, 'twice.onnx'), join(dir, 'photos'))
    assert.equal(again.exitCode, 4, again.stderr)
    assert.match(again.stderr, /already quantized/)

    const refused = await quantize(modelDir, out)
    assert.equal(refused.exitCode, 2)
    assert.match(refused.stderr, /--calibration/)
    const empty = await quantize(modelDir, out, join(dir, 'model'))
    assert.equal(empty.exitCode, 2)
    assert.match(empty.stderr, /No \.jpg, \.jpeg or \.png file/)
  })
})
