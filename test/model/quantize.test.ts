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
import {readLazyModel} from '../../src/model/onnx-lazy.js'
import {calibrate, WeightFile} from '../../src/model/quantize-calibrate.js'
import {quantizeInt8} from '../../src/model/quantize.js'
import {memoryLimitSuggestions} from '../../src/serve/memory.js'
import {icc, SHARED} from '../helpers/cli.js'
import {type FixtureOptions, tempDir, writeModelDir} from '../helpers/model-fixtures.js'
import {writeTinyOnnxModel} from '../helpers/onnx-tiny.js'
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
    const int8 = join(await tempDir(), 'lenet.int8.onnx')
    const q = await quantizeInt8(float, int8, {
      calibration: inputs.filter((_, i) => i % 10 === 0),
      inputShape: [1, 28, 28],
    })
    assert.ok(q.convolutions >= 1, `only ${q.convolutions} convolutions quantized`)
    const a = await runAll(float, inputs, [1, 28, 28])
    const b = await runAll(int8, inputs, [1, 28, 28])
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
    const out = join(dir, 'resnet18.int8.onnx')
    const q = await quantizeInt8(float, out, {calibration: inputs.slice(0, 8), inputShape: [3, 64, 64]})
    const graph = onnx.ModelProto.decode(await readFile(out)).graph!
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
    const b = await runAll(out, inputs.slice(8), [3, 64, 64])
    for (const [i, v] of a.entries()) {
      assert.ok(Math.abs(b[i].reduce((s, x) => s + x, 0) - 1) < 1e-4)
      for (const [k, x] of v.entries())
        assert.ok(Math.abs(x - b[i][k]) < 0.05, `image ${i} class ${k}: ${x} vs ${b[i][k]}`)
    }
  })

  it('streams: its ranges are those of the float model run with every activation fetched, as before', async () => {
    // the streamed quantization measures each activation with ReduceMin/ReduceMax in a session whose weights are
    // mapped from a file; the in-memory one it replaced fetched every activation of the (folded) float model. Here
    // the float model itself is run with every quantized activation as an output. The BatchNorms ONNX Runtime folds
    // here and icc folds there round differently in the last bits (~1e-7 relative per layer), far below 1e-4; a
    // range taken from a wrong tensor, or missing an image, is off by percents.
    const {dir} = await writeModelDir(await tempDir(), RESNET)
    const floatPath = (await loadModel(dir, {cacheDir: join(dir, 'cache')})).onnxPath
    const images = await Promise.all(Array.from({length: 6}, async (_, i) => noiseImage('png', 64, 64, i + 21)))
    const inputs = await Promise.all(
      images.map(async (png) => Float32Array.from(await sharp(png).removeAlpha().raw().toBuffer())),
    )
    const out = join(dir, 'int8.onnx')
    const q = await quantizeInt8(floatPath, out, {calibration: inputs, inputShape: [3, 64, 64]})
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.startsWith('.icc-quantize')),
      [],
      'working files removed',
    )
    const graph = onnx.ModelProto.decode(await readFile(out)).graph!
    const measured = graph.node!.filter((n) => n.opType === 'QuantizeLinear').map((n) => n.input![0])
    assert.equal(measured.length, q.tensors)
    const float = onnx.ModelProto.decode(await readFile(floatPath))
    for (const name of measured) {
      float.graph!.output!.push(
        onnx.ValueInfoProto.create({name, type: {tensorType: {elemType: onnx.TensorProto.DataType.FLOAT}}}),
      )
    }

    const ort = await inProcessOrt()
    const session = await ort.InferenceSession.create(onnx.ModelProto.encode(float).finish())
    const ranges = new Map(measured.map((name) => [name, {max: 0, min: 0}]))
    for (const x of inputs) {
      const r = await session.run({[session.inputNames[0]]: new ort.Tensor('float32', x, [1, 3, 64, 64])}, measured)
      for (const [name, range] of ranges) {
        for (const v of r[name].data as Float32Array) {
          range.min = Math.min(range.min, v)
          range.max = Math.max(range.max, v)
        }
      }
    }

    await session.release()
    const init = new Map(graph.initializer!.map((t) => [t.name!, t]))
    const scalar = (name: string) => {
      const raw = init.get(name)!.rawData!
      return new DataView(raw.buffer, raw.byteOffset, raw.byteLength)
    }

    for (const [name, {max, min}] of ranges) {
      const scale = scalar(`${name}__scale`).getFloat32(0, true)
      const zeroPoint = scalar(`${name}__zero_point`).getUint8(0)
      const expected = (max - min) / 255
      assert.ok(Math.abs(scale - expected) <= 1e-4 * expected, `${name}: scale ${scale}, float model ${expected}`)
      assert.ok(Math.abs(zeroPoint - Math.round(-min / expected)) <= 1, `${name}: zero point ${zeroPoint}`)
    }
  })

  it('reads an ONNX file without its weights, each read from the file when asked for', async () => {
    const {dir} = await writeModelDir(await tempDir(), RESNET)
    const path = (await loadModel(dir, {cacheDir: join(dir, 'cache')})).onnxPath
    const whole = onnx.ModelProto.decode(await readFile(path))
    const lazy = readLazyModel(path)
    try {
      assert.deepEqual(
        onnx.ModelProto.toObject(lazy.model),
        onnx.ModelProto.toObject(onnx.ModelProto.create({...whole, graph: {...whole.graph, initializer: []}})),
      )
      assert.equal(lazy.inits.length, whole.graph!.initializer!.length)
      for (const [i, t] of whole.graph!.initializer!.entries()) {
        const {header, raw, rawLength} = lazy.inits[i]
        assert.deepEqual({...header, rawData: undefined}, {...onnx.TensorProto.create({...t}), rawData: undefined})
        assert.equal(rawLength, t.rawData!.length)
        assert.deepEqual(raw!(), new Uint8Array(t.rawData!), t.name!)
      }
    } finally {
      lazy.close()
    }
  })

  /** Calibrate the RESNET fixture's float model on `images` with `partBytes`; the ranges and the work directory. */
  async function calibrateFixture(images: Float32Array[], partBytes?: number) {
    const {dir} = await writeModelDir(await tempDir(), RESNET)
    const lazy = readLazyModel((await loadModel(dir, {cacheDir: join(dir, 'cache')})).onnxPath)
    const work = join(dir, 'work')
    await mkdir(work)
    const weights = new WeightFile(work)
    try {
      const inits = new Map(lazy.inits.map((t) => [t.header.name!, weights.spill(t)]))
      const nodes = lazy.model.graph!.node!
      const names = [...new Set(nodes.filter((n) => n.opType === 'Conv').map((n) => n.input![0]))]
      const ranges = await calibrate({inits, model: lazy.model, nodes}, names, work, {
        calibration: images,
        inputShape: [3, 64, 64],
        partBytes,
      })
      const weightBytes = new Map(lazy.inits.map((t) => [t.header.name!, t.rawLength]))
      return {names, ranges, weightBytes, work}
    } finally {
      weights.close()
      lazy.close()
    }
  }

  const names = (c: {ranges: Map<string, unknown>}) => [...c.ranges.keys()]
  const fixtureImage = (seed: number) => Float32Array.from({length: 3 * 64 * 64}, (_, i) => (i * seed) % 255)

  /** The calibration's part models in `work`, in order. */
  async function partModels(work: string): Promise<onnxProto.onnx.ModelProto[]> {
    const files = readdirSync(work).filter((f) => /^calibration\.\d+\.onnx$/.test(f))
    const k = (f: string) => Number(f.split('.')[1])
    files.sort((a, b) => k(a) - k(b))
    return Promise.all(files.map(async (f) => onnx.ModelProto.decode(await readFile(join(work, f)))))
  }

  it('calibrates one part at a time, its weights external data, 4 KiB aligned, for ONNX Runtime to map', async () => {
    const {names, ranges, weightBytes, work} = await calibrateFixture([fixtureImage(7)])
    assert.deepEqual([...ranges.keys()], names)
    for (const [name, {max, min}] of ranges) assert.ok(min < max, `${name}: ${min}..${max}`)
    const parts = await partModels(work)
    // ResNet-18's 45 MB of weights in parts of at most a quarter (a unit alone may pass it)
    assert.ok(parts.length >= 4, `${parts.length} parts`)
    const total = [...weightBytes.values()].reduce((a, b) => a + b, 0)
    const big = parts.map((m) => m.graph!.initializer!.filter((t) => weightBytes.get(t.name!)! >= 4096))
    for (const part of big) {
      const bytes = part.reduce((sum, t) => sum + weightBytes.get(t.name!)!, 0)
      assert.ok(bytes < total / 2, `a part maps ${bytes} of ${total} bytes`)
      for (const t of part) {
        assert.equal(t.dataLocation, onnx.TensorProto.DataLocation.EXTERNAL, t.name!)
        assert.equal(t.rawData!.length, 0, t.name!)
        const at = Object.fromEntries(t.externalData!.map((e) => [e.key, e.value]))
        assert.equal(at.location, 'weights.data')
        assert.equal(Number(at.offset) % 4096, 0, `${t.name} at ${at.offset}`)
      }
    }

    // every Conv's weights (the nodes after the last measured tensor are left out)
    const convolutions = parts.flatMap((m) => m.graph!.node!).filter((n) => n.opType === 'Conv').length
    assert.ok(convolutions >= 17, `${convolutions} convolutions`)
    assert.equal(big.flat().length, convolutions)
    assert.equal(new Set(big.flat().map((t) => t.name)).size, big.flat().length, 'each weight in one part')
    // the activations are measured, not fetched: the outputs are one minimum and one maximum of each, and the one
    // tensor each part passes to the next (whose file is gone when done)
    const outputs = parts.map((m) => m.graph!.output!.length)
    assert.equal(
      outputs.reduce((a, b) => a + b, 0),
      2 * names.length + parts.length - 1,
    )
    assert.deepEqual(
      readdirSync(work).filter((f) => f.startsWith('handoff')),
      [],
    )
  })

  it('measures in parts what it measures in one part, image by image', async () => {
    const images = [fixtureImage(7), fixtureImage(13), fixtureImage(29)]
    const whole = await calibrateFixture(images, Number.MAX_SAFE_INTEGER)
    const cut = await calibrateFixture(images, 1)
    assert.equal((await partModels(whole.work)).length, 1)
    // a part per unit of the ResNet (the stem, 8 units, the end)
    assert.ok((await partModels(cut.work)).length >= 8, `${(await partModels(cut.work)).length} parts`)
    // the same, but for the last bits where ONNX Runtime rewrites the graph differently (BatchNorms not folded here)
    const near = (a: number, b: number, tolerance: number) => Math.abs(a - b) <= tolerance * Math.max(1, Math.abs(b))
    assert.deepEqual([...cut.ranges.keys()], [...whole.ranges.keys()])
    for (const [name, {max, min}] of whole.ranges) {
      const got = cut.ranges.get(name)!
      assert.ok(near(got.min, min, 1e-5) && near(got.max, max, 1e-5), `${name}: ${got.min}..${got.max}, ${min}..${max}`)
    }

    // each image counts: the first image alone gives other ranges
    const first = await calibrateFixture([images[0]], 1)
    const differ = [...whole.ranges].filter(([name, {max}]) => !near(first.ranges.get(name)!.max, max, 1e-3))
    assert.ok(differ.length > names(whole).length / 2, `${differ.length} ranges differ`)
  })

  it('refuses a model with nothing to quantize, and leaves nothing behind', async () => {
    const dir = await tempDir()
    const tiny = await writeTinyOnnxModel(join(dir, 'tiny.onnx'))
    await assert.rejects(
      quantizeInt8(tiny, join(dir, 'int8.onnx'), {calibration: [fixtureImage(7)], inputShape: [3, 64, 64]}),
      {code: 'QUANTIZE_FAILED', message: /Nothing to quantize: .*this model has none/},
    )
    assert.deepEqual(readdirSync(dir), ['tiny.onnx'])
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
    // run as the memory advice of serve and doctor writes it (IMAGES: the photos; the output: `out`)
    const advice = /`icc (convert-model [^`]+)`/.exec(memoryLimitSuggestions(600_000, {model: modelDir})[1])![1]
    const command = advice.replace('model.int8.onnx', out).replace('IMAGES', join(dir, 'photos'))
    const r = await icc([...command.split(' '), '--json', ...cache])
    assert.equal(r.exitCode, 0, `${command}: ${r.stderr}`)
    const result = JSON.parse(r.stdout)
    assert.equal(result.quantization.calibrationImages, 6)
    assert.ok(result.quantization.convolutions > 10)
    await (await (await inProcessOrt()).InferenceSession.create(new Uint8Array(await readFile(out)))).release()
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.startsWith('.icc-quantize')),
      [],
      'working files removed',
    )
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
    // an image that does not decode (met when the calibration gets to it): which file, exit 2, nothing left behind
    await writeFile(join(photos, 'p3.jpg'), 'not a JPEG')
    const bad = await quantize(modelDir, join(dir, 'bad.onnx'), join(dir, 'photos'))
    assert.equal(bad.exitCode, 2, bad.stderr)
    assert.match(bad.stderr, /Calibration image .*p3\.jpg/)
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.startsWith('.icc-quantize') || f === 'bad.onnx'),
      [],
      'nothing written',
    )
  })
})
