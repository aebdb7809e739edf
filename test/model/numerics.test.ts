/**
 * The converter against an independent float64 implementation of MXNet's operators (test/helpers/mxnet-reference):
 * generated SageMaker ResNets, an op zoo of non-ResNet ops, the real SageMaker 0.12 symbol, MTCNN, and the trained
 * fashion-MNIST model against its reference outputs. ONNX Runtime runs in this process on the runtime icc uses here
 * (`npm run test:wasm`: the wasm build, held to the same tolerances).
 */
import assert from 'node:assert/strict'
import {readdirSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import sharp from 'sharp'

import {ModelError} from '../../src/errors.js'
import {loadModel} from '../../src/model/index.js'
import {readParams} from '../../src/model/mxnet-params.js'
import {parseSymbol} from '../../src/model/mxnet-symbol.js'
import {exportOnnx} from '../../src/model/onnx-export/index.js'
import {generateWeights, rng, writeParams} from '../../src/model/writer.js'
import {SHARED} from '../helpers/cli.js'
import {tempDir, writeModelDir} from '../helpers/model-fixtures.js'
import {referenceRun} from '../helpers/mxnet-reference.js'
import {runOnnxInProcess} from '../helpers/runtime.js'

const MODELS = join(SHARED, 'models')

type P = Map<string, {data: Float32Array; shape: number[]}>

function paramsOf(bytes: Uint8Array): P {
  return new Map(readParams(bytes).arrays.map((a) => [a.name, a]))
}

function randomInput(shape: number[], seed: number, scale = 255): Float32Array {
  const r = rng(seed)
  // Whole pixel values, like decoded images of exactly H x W.
  return Float32Array.from({length: shape.reduce((a, b) => a * b, 1)}, () => Math.floor(r() * (scale + 1)))
}

function compare(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): number {
  assert.equal(got.length, want.length, `${what}: length`)
  let max = 0
  for (let i = 0; i < got.length; i++) max = Math.max(max, Math.abs(got[i] - want[i]))
  assert.ok(max <= tol, `${what}: max abs diff ${max} > ${tol}`)
  return max
}

function argmaxRows(d: ArrayLike<number>, cols: number): number[] {
  const out: number[] = []
  for (let r = 0; r < d.length / cols; r++) {
    let best = 0
    for (let k = 1; k < cols; k++) if (d[r * cols + k] > d[r * cols + best]) best = k
    out.push(best)
  }

  return out
}

async function checkResNet(
  numLayers: number,
  hw: number,
  tol: number,
  options: {classes?: number; dtype?: 'float16' | 'float32' | 'float64'; format?: 'legacy' | 'V1' | 'V2' | 'V3'} = {},
) {
  const classes = options.classes ?? 10
  const dir = await tempDir()
  const fx = await writeModelDir(dir, {
    dtype: options.dtype,
    format: options.format,
    imageShape: [3, hw, hw],
    numClasses: classes,
    numLayers,
  })
  const model = await loadModel(dir, {cacheDir: join(dir, 'cache')})
  assert.deepEqual(model.inputShape, [3, hw, hw])
  assert.equal(model.numClasses, classes)
  assert.equal(model.summary.architecture, `ResNet-${numLayers}`)
  const params = paramsOf(readFileSync(join(dir, 'image-classification-0001.params')))
  const batch = 2
  const shape = [batch, 3, hw, hw]
  const x = randomInput(shape, numLayers)
  const [y] = await runOnnxInProcess(model.onnxPath, x, shape)
  const [ref] = referenceRun(fx.symbol, params, {data: Float64Array.from(x), shape})
  const max = compare(y.data, ref.data, tol, `ResNet-${numLayers}`)
  assert.deepEqual(argmaxRows(y.data, classes), argmaxRows(ref.data, classes))
  // Non-degenerate: not one-hot, not uniform.
  const top = Math.max(...y.data)
  assert.ok(top < 0.99 && top > 1.5 / classes, `top probability ${top}`)
  return max
}

describe('ONNX export against the float64 reference', function () {
  this.timeout(120_000)

  it('ResNet-18 (ImageNet stem, 64x64 input, V2 float32) matches to 1e-5', async () => {
    await checkResNet(18, 64, 1e-5)
  })

  it('CIFAR ResNet-20 (32x32, V1 float16 params) matches to 1e-5', async () => {
    await checkResNet(20, 32, 1e-5, {dtype: 'float16', format: 'V1'})
  })

  it('CIFAR ResNet-32 (32x32, legacy float64 params) matches to 1e-5', async () => {
    await checkResNet(32, 32, 1e-5, {dtype: 'float64', format: 'legacy'})
  })

  it('ResNet-50 (bottleneck units, 64x64 input to keep the float64 reference fast, V3) matches to 5e-5', async () => {
    await checkResNet(50, 64, 5e-5, {format: 'V3'})
  })

  it('the real SageMaker 0.12 ResNet-18 symbol converts with generated weights and matches', async () => {
    const symbol = readFileSync(join(MODELS, 'sagemaker-resnet18-v0.12', 'image-classification-symbol.json'), 'utf8')
    const shapes = JSON.parse(readFileSync(join(MODELS, 'sagemaker-resnet18-v0.12', 'model-shapes.json'), 'utf8'))
    assert.deepEqual(shapes[0].shape.slice(1), [3, 224, 224])
    const hw = 64 // global pooling makes the graph valid at any size >= 32; 64 keeps the reference fast
    const params = paramsOf(writeParams(generateWeights(symbol, [1, 3, hw, hw], 3)))
    const r = exportOnnx(parseSymbol(symbol), {inputShape: [1, 3, hw, hw], params})
    assert.deepEqual(r.outputShapes, [[1, 24]])
    const x = randomInput([1, 3, hw, hw], 5)
    const [y] = await runOnnxInProcess(r.bytes, x, [1, 3, hw, hw])
    const [ref] = referenceRun(symbol, params, {data: Float64Array.from(x), shape: [1, 3, hw, hw]})
    compare(y.data, ref.data, 1e-5, 'SageMaker 0.12 symbol')
  })

  it('an op zoo (full/avg pooling with padding, LeakyReLU kinds, Concat, channel softmax, BN defaults) matches', async () => {
    const v = (name: string) => ({inputs: [], name, op: 'null'})
    const nodes = [
      v('data'), // 0
      v('c_weight'), // 1
      v('c_bias'), // 2
      {
        attr: {kernel: '(3, 3)', num_filter: '6', num_group: '2', pad: '(1, 1)', stride: '(2,2)'},
        inputs: [
          [0, 0],
          [1, 0],
          [2, 0],
        ],
        name: 'c',
        op: 'Convolution',
      }, // 3
      v('bn_gamma'),
      v('bn_beta'),
      v('bn_moving_mean'),
      v('bn_moving_var'), // 4-7
      {
        inputs: [
          [3, 0],
          [4, 0],
          [5, 0],
          [6, 0],
          [7, 0],
        ],
        name: 'bn',
        op: 'BatchNorm',
      }, // 8: eps and fix_gamma absent
      v('pr_gamma'), // 9
      {
        attrs: {act_type: 'prelu'},
        inputs: [
          [8, 0, 0],
          [9, 0, 0],
        ],
        name: 'pr',
        op: 'LeakyReLU',
      }, // 10
      {
        attrs: {kernel: '(3,3)', pool_type: 'avg', pooling_convention: 'full', stride: '(2,2)', pad: '(1,1)'},
        inputs: [[10, 0, 0]],
        name: 'pa',
        op: 'Pooling',
      }, // 11
      {
        attrs: {
          count_include_pad: 'False',
          kernel: '(3,3)',
          pool_type: 'avg',
          pooling_convention: 'full',
          stride: '(2,2)',
          pad: '(1,1)',
        },
        inputs: [[10, 0, 0]],
        name: 'pb',
        op: 'Pooling',
      }, // 12
      {
        attrs: {kernel: '(2,2)', pool_type: 'max', pooling_convention: 'full', stride: '(2,2)'},
        inputs: [[10, 0, 0]],
        name: 'pm0',
        op: 'Pooling',
      }, // 13 (valid size differs)
      {attrs: {act_type: 'elu', slope: '0.3'}, inputs: [[11, 0, 0]], name: 'elu', op: 'LeakyReLU'}, // 14
      {attrs: {act_type: 'leaky', slope: '0.1'}, inputs: [[12, 0, 0]], name: 'lk', op: 'LeakyReLU'}, // 15
      {
        attrs: {dim: '1', num_args: '2'},
        inputs: [
          [14, 0, 0],
          [15, 0, 0],
        ],
        name: 'cat',
        op: 'Concat',
      }, // 16
      {attrs: {act_type: 'softrelu'}, inputs: [[16, 0, 0]], name: 'sr', op: 'Activation'}, // 17
      {attrs: {p: '0.5'}, inputs: [[17, 0, 0]], name: 'drop', op: 'Dropout'}, // 18
      {inputs: [[18, 0, 0]], name: 'copy', op: '_copy'}, // 19
      {attrs: {mode: 'channel'}, inputs: [[19, 0, 0]], name: 'chsm', op: 'SoftmaxActivation'}, // 20
      {attrs: {act_type: 'sigmoid'}, inputs: [[13, 0, 0]], name: 'sg', op: 'Activation'}, // 21
      v('fc_weight'), // 22
      {
        attrs: {no_bias: 'True', num_hidden: '4'},
        inputs: [
          [21, 0, 0],
          [22, 0, 0],
        ],
        name: 'fc',
        op: 'FullyConnected',
      }, // 23
      {attrs: {act_type: 'tanh'}, inputs: [[23, 0, 0]], name: 'th', op: 'Activation'}, // 24
      v('softmax_label'), // 25
      {
        inputs: [
          [24, 0, 0],
          [25, 0, 0],
        ],
        name: 'softmax',
        op: 'SoftmaxOutput',
      }, // 26
    ]
    const symbol = JSON.stringify({
      arg_nodes: [],
      heads: [
        [26, 0, 0],
        [20, 0, 0],
      ],
      nodes,
    })
    const shape = [2, 4, 11, 11]
    const gen = generateWeights(symbol, [1, 4, 11, 11], 11)
    for (const g of gen) if (g.name.endsWith('pr_gamma')) g.data.set([0.1, -0.2, 0.3, 0.05, 0.5, 0.25])
    const params = paramsOf(writeParams(gen))
    const r = exportOnnx(parseSymbol(symbol), {inputShape: [1, 4, 11, 11], params})
    assert.deepEqual(r.outputNames, ['softmax', 'chsm'])
    const x = randomInput(shape, 9, 4).map((q) => q - 2)
    const outs = await runOnnxInProcess(r.bytes, x, shape)
    const refs = referenceRun(symbol, params, {data: Float64Array.from(x), shape})
    for (const [i, o] of outs.entries()) {
      assert.deepEqual(o.dims, refs[i].shape)
      compare(o.data, refs[i].data, 1e-5, r.outputNames[i])
    }
  })

  it('MTCNN det1 (PReLU, full-convention pooling, channel softmax) matches with its real weights', async () => {
    const dir = join(MODELS, 'mtcnn-legacy')
    const symbol = readFileSync(join(dir, 'det1-symbol.json'), 'utf8')
    const params = paramsOf(readFileSync(join(dir, 'det1-0001.params')))
    const shape = [1, 3, 25, 25]
    const r = exportOnnx(parseSymbol(symbol), {inputShape: shape, params})
    const x = randomInput(shape, 1, 2).map((q) => q - 1)
    const outs = await runOnnxInProcess(r.bytes, x, shape)
    const refs = referenceRun(symbol, params, {data: Float64Array.from(x), shape})
    assert.equal(outs.length, refs.length)
    for (const [i, o] of outs.entries()) compare(o.data, refs[i].data, 1e-5, `det1 ${r.outputNames[i]}`)
  })

  it('an unknown op is an error naming the op and the node', () => {
    const symbol = JSON.stringify({
      heads: [[1, 0]],
      nodes: [
        {inputs: [], name: 'data', op: 'null'},
        {inputs: [[0, 0]], name: 'weird1', op: 'ROIPooling'},
      ],
    })
    assert.throws(
      () => exportOnnx(parseSymbol(symbol), {inputShape: [1, 3, 8, 8], params: new Map()}),
      (error: unknown) =>
        error instanceof ModelError && /"ROIPooling"/.test(error.message) && /"weird1"/.test(error.message),
    )
  })

  it('fashion-MNIST reproduces reference-outputs.json to 1e-5 on all 1000 images', async () => {
    const dir = join(MODELS, 'fashion-mnist-lenet')
    const reference = JSON.parse(readFileSync(join(dir, 'reference-outputs.json'), 'utf8')) as Record<string, number[]>
    const files: string[] = []
    for (const label of readdirSync(join(dir, 'test'))) {
      for (const f of readdirSync(join(dir, 'test', label))) files.push(`test/${label}/${f}`)
    }

    assert.equal(files.length, 1000)
    assert.deepEqual(Object.keys(reference).sort(), [...files].sort())
    const cache = await tempDir()
    const model = await loadModel(dir, {cacheDir: cache, shape: [1, 1, 28, 28]})
    assert.equal(model.numClasses, 10)
    const x = new Float32Array(files.length * 784)
    await Promise.all(
      files.map(async (f, i) => {
        const raw = await sharp(join(dir, f)).grayscale().raw().toBuffer()
        assert.equal(raw.length, 784, f)
        for (let k = 0; k < 784; k++) x[i * 784 + k] = raw[k] / 255
      }),
    )
    const [{data: y}] = await runOnnxInProcess(model.onnxPath, x, [files.length, 1, 28, 28])
    let max = 0
    let correct = 0
    for (const [i, f] of files.entries()) {
      const want = reference[f]
      for (let k = 0; k < 10; k++) max = Math.max(max, Math.abs(y[i * 10 + k] - want[k]))
      if (argmaxRows(y.subarray(i * 10, i * 10 + 10), 10)[0] === Number(f.split('/')[1])) correct++
    }

    assert.ok(max <= 1e-5, `max abs diff ${max}`)
    assert.equal(correct, 375)
  })
})
