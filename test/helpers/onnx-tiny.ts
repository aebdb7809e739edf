/**
 * Test fixture: a tiny image classifier written as an ONNX file with onnx-proto, so the serve tests have a real
 * model for ONNX Runtime without waiting for the MXNet converter. It is NOT a product model.
 *
 * Graph: data [N,C,H,W] (values 0..255) -> Mul(1/255) -> GlobalAveragePool -> Flatten -> MatMul(W [C,K]) ->
 * Softmax -> prob [N,K]. The weights are a fixed, deterministic function of (c, k), so the probabilities depend on
 * the image's mean colour and tests can compare them with ONNX Runtime run in-process.
 */
import {writeFile} from 'node:fs/promises'
import onnxProto from 'onnx-proto'

import {preprocessImage} from '../../src/model/preprocess.js'
import {openSession, resolveRuntime} from '../../src/model/session.js'

const {onnx} = onnxProto

export interface TinyModelOptions {
  /** The batch dimension: symbolic (default 'N') or fixed. */
  batch?: number | string
  channels?: number
  classes?: number
  height?: number
  width?: number
}

/** The fixed weight matrix [C][K]: distinct, signed values so each colour favours a different class. */
export function tinyWeights(channels: number, classes: number): Float32Array {
  const w = new Float32Array(channels * classes)
  for (let c = 0; c < channels; c++) {
    for (let k = 0; k < classes; k++) w[c * classes + k] = Math.fround(((c + 1) * (k + 2)) % 7) - 3
  }

  return w
}

export function tinyOnnxModel(options: TinyModelOptions = {}): Uint8Array {
  const channels = options.channels ?? 3
  const classes = options.classes ?? 4
  const height = options.height ?? 16
  const width = options.width ?? 16
  const dim = (d: number | string) => (typeof d === 'number' ? {dimValue: d} : {dimParam: d})
  const tensorType = (dims: (number | string)[]) => ({
    tensorType: {elemType: onnx.TensorProto.DataType.FLOAT, shape: {dim: dims.map((d) => dim(d))}},
  })
  const scale = new Float32Array([1 / 255])
  const weights = tinyWeights(channels, classes)
  const graph = onnx.GraphProto.create({
    initializer: [
      onnx.TensorProto.create({
        dataType: onnx.TensorProto.DataType.FLOAT,
        dims: [],
        name: 'scale',
        rawData: new Uint8Array(scale.buffer),
      }),
      onnx.TensorProto.create({
        dataType: onnx.TensorProto.DataType.FLOAT,
        dims: [channels, classes],
        name: 'fc_weight',
        rawData: new Uint8Array(weights.buffer),
      }),
    ],
    input: [
      onnx.ValueInfoProto.create({name: 'data', type: tensorType([options.batch ?? 'N', channels, height, width])}),
    ],
    name: 'icc-tiny-test-model',
    node: [
      onnx.NodeProto.create({input: ['data', 'scale'], name: 'scale', opType: 'Mul', output: ['scaled']}),
      onnx.NodeProto.create({input: ['scaled'], name: 'gap', opType: 'GlobalAveragePool', output: ['pooled']}),
      onnx.NodeProto.create({input: ['pooled'], name: 'flatten', opType: 'Flatten', output: ['flat']}),
      onnx.NodeProto.create({input: ['flat', 'fc_weight'], name: 'fc', opType: 'MatMul', output: ['logits']}),
      onnx.NodeProto.create({
        attribute: [onnx.AttributeProto.create({i: 1, name: 'axis', type: onnx.AttributeProto.AttributeType.INT})],
        input: ['logits'],
        name: 'softmax',
        opType: 'Softmax',
        output: ['prob'],
      }),
    ],
    output: [onnx.ValueInfoProto.create({name: 'prob', type: tensorType([options.batch ?? 'N', classes])})],
  })
  const model = onnx.ModelProto.create({
    graph,
    irVersion: 7,
    opsetImport: [{domain: '', version: 13}],
    producerName: 'icc-test-fixture',
  })
  return onnx.ModelProto.encode(model).finish()
}

export async function writeTinyOnnxModel(path: string, options: TinyModelOptions = {}): Promise<string> {
  await writeFile(path, tinyOnnxModel(options))
  return path
}

/**
 * The reference for a served tiny model: the project's preprocessing and the model run in this process on one
 * image, on the runtime `icc serve` runs it on ($ICC_RUNTIME, else auto: `npm run test:wasm` forces wasm), so its
 * answer must be exactly this.
 */
export async function runTinyModel(
  modelPath: string,
  image: Buffer,
  size = 16,
  resize: 'exact' | 'fast' = 'exact',
): Promise<Float32Array> {
  const tensor = await preprocessImage(image, {channels: 3, height: size, resize, width: size})
  const session = await openSession(modelPath, {}, (await resolveRuntime()).backend)
  try {
    return (await session.run({data: {data: tensor, dims: [1, 3, size, size]}})).prob
  } finally {
    await session.release()
  }
}
