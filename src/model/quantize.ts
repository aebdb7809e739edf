/**
 * int8 quantization of a converted model (`icc convert-model --quantize int8`): static, post-training, written in
 * the QDQ form (QuantizeLinear / DequantizeLinear pairs around float ops) that ONNX Runtime turns into integer
 * kernels when it loads the model (DequantizeLinear -> Conv (-> Relu) -> QuantizeLinear becomes QLinearConv, u8s8,
 * with VNNI where the CPU has it).
 *
 * 1. Every BatchNormalization that directly follows a Conv (whose output goes nowhere else) is folded into the
 *    Conv's weights and bias: the float model computes the same, and ONNX Runtime could not fold it any more once
 *    the weights are quantized.
 * 2. Calibration (./quantize-calibrate.ts): the float model runs on the calibration images, each tensor to be
 *    quantized measured by a ReduceMin and a ReduceMax; a tensor's range is the lowest and highest value seen
 *    (always including 0).
 * 3. The activations that feed Conv, Add and MaxPool become uint8 (asymmetric, one scale per tensor):
 *    x -> QuantizeLinear -> DequantizeLinear -> its consumers. Conv weights become int8 (symmetric, one scale per
 *    output channel) and Conv biases int32 (scale = input scale x weight scale). Everything else (Gemm, Softmax,
 *    a BatchNormalization that follows no Conv...) stays float32.
 *
 * The result is an ordinary ONNX file: `icc serve --model model.int8.onnx` serves it like any other.
 *
 * Memory (docs/performance.md, "Memory"): nothing holds the whole model. The float model is read without its weights
 * (./onnx-lazy.ts), each tensor's bytes read from the file when needed; folded weights, and every other weight the
 * calibration needs, go one at a time to a weights file beside the output (4 KiB aligned), which ONNX Runtime maps
 * as external data, one part of the graph at a time; calibration fetches each activation's minimum and maximum
 * (ReduceMin/ReduceMax nodes added to the calibration graph), not the activations; the int8 model is streamed to
 * its file, each weight quantized as it is written (./onnx-export/write.ts writeModel).
 */
import {mkdtemp, rename, rm} from 'node:fs/promises'
import {dirname, join} from 'node:path'
import onnxProto from 'onnx-proto'

import {ModelError} from '../errors.js'
import {writeModel} from './onnx-export/index.js'
import {type LazyTensor, readLazyModel} from './onnx-lazy.js'
import {calibrate, type CalibrationImages, usedInitializers, WeightFile} from './quantize-calibrate.js'
import {type Backend} from './session.js'

export type {CalibrationImages} from './quantize-calibrate.js'

const {onnx} = onnxProto
type NodeProto = onnxProto.onnx.INodeProto
const DT = onnx.TensorProto.DataType

export interface QuantizeOptions {
  /** Calibration inputs, each one image as the model takes it (C x H x W values, already preprocessed). */
  calibration: CalibrationImages | Float32Array[]
  /** [C, H, W] of one image. */
  inputShape: [number, number, number]
  /** The runtime the calibration runs on (default native). */
  backend?: Backend
}

export interface QuantizeResult {
  /** Bytes written to the output file. */
  bytes: number
  /** Convolutions whose weights are now int8. */
  convolutions: number
  /** BatchNormalizations folded into the Conv before them. */
  foldedBatchNorms: number
  /** Activation tensors quantized to uint8. */
  tensors: number
}

function floatsOf(t: LazyTensor): Float32Array {
  const {dataType, floatData, name} = t.header
  if (dataType !== DT.FLOAT) throw new ModelError('QUANTIZE_FAILED', `Tensor ${name} is not float32.`)
  if (t.raw && t.rawLength > 0) {
    const copy = new Uint8Array(t.raw())
    return new Float32Array(copy.buffer, 0, copy.length / 4)
  }

  return Float32Array.from(floatData ?? [])
}

/** A tensor over `data`'s own bytes (not copied: `data` is new and is not written again). */
function tensor(name: string, dataType: number, dims: number[], data: ArrayBufferView): LazyTensor {
  const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  return {header: {dataType, dims, name}, raw: () => raw, rawLength: raw.length}
}

function attrNumber(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute?.find((x) => x.name === name)
  return a?.f ?? (a?.i === undefined || a.i === null ? fallback : Number(a.i))
}

/** The graph being rewritten: its nodes (replaced as BatchNormalizations are folded) and initializers by name. */
interface GraphEdit {
  inits: Map<string, LazyTensor>
  nodes: NodeProto[]
}

/** Add an initializer to the graph; its name. */
function addInit(edit: GraphEdit, t: LazyTensor): string {
  edit.inits.set(t.header.name!, t)
  return t.header.name!
}

/** The nodes that read tensor `name`. */
function consumersOf(edit: GraphEdit, name: string): NodeProto[] {
  return edit.nodes.filter((n) => n.input!.includes(name))
}

/** Refuse a quantization without calibration images. */
function checkCalibration(options: QuantizeOptions): void {
  const {calibration} = options
  if ((Array.isArray(calibration) ? calibration.length : calibration.count) === 0) {
    throw new ModelError('NO_CALIBRATION_DATA', 'int8 quantization needs at least one calibration image.', {
      suggestions: ['Pass --calibration DIR with JPEG/PNG images like the ones the model will see (32-100 is plenty).'],
    })
  }
}

/** Refuse a model without a tensor to quantize (its int8 model would be the float one). */
function checkSomethingToQuantize(wanted: Set<string>): void {
  if (wanted.size > 0) return
  throw new ModelError(
    'QUANTIZE_FAILED',
    'Nothing to quantize: int8 quantization works on convolutions (and the additions and max pooling around them), and this model has none.',
    {suggestions: ['Serve the float32 model as it is.']},
  )
}

/** Refuse to quantize a quantized model. */
function checkFloatModel(nodes: NodeProto[]): void {
  if (nodes.some((n) => n.opType === 'QuantizeLinear' || n.opType === 'DequantizeLinear')) {
    throw new ModelError(
      'ALREADY_QUANTIZED',
      'The model is already quantized (it has QuantizeLinear/DequantizeLinear).',
      {
        suggestions: ['Quantize the float32 model (the SageMaker model directory or its float .onnx) instead.'],
      },
    )
  }
}

/**
 * Quantize the float32 model `source` (its path, or its bytes) into the ONNX file `output` (see the module comment).
 * Its working files lie in a private directory beside `output`, removed when done.
 */
export async function quantizeInt8(
  source: string | Uint8Array,
  output: string,
  options: QuantizeOptions,
): Promise<QuantizeResult> {
  checkCalibration(options)
  const lazy = readLazyModel(source)
  let work: string | undefined
  let weights: WeightFile | undefined
  try {
    checkFloatModel(lazy.model.graph!.node!)
    work = await mkdtemp(join(dirname(output), '.icc-quantize-'))
    weights = new WeightFile(work)
    const result = await quantizeTo(lazy.model, lazy.inits, weights, join(work, 'int8.onnx'), options)
    await rename(join(work, 'int8.onnx'), output)
    return result
  } finally {
    weights?.close()
    lazy.close()
    if (work) await rm(work, {force: true, recursive: true})
  }
}

/** Fold, calibrate (the calibration's files in `weights`' directory) and write the int8 model to `path`. */
async function quantizeTo(
  model: onnxProto.onnx.ModelProto,
  initializers: LazyTensor[],
  weights: WeightFile,
  path: string,
  options: QuantizeOptions,
): Promise<QuantizeResult> {
  const graph = model.graph!
  const edit: GraphEdit = {inits: new Map(initializers.map((t) => [t.header.name!, t])), nodes: [...graph.node!]}

  // 1. fold BatchNormalization into the Conv before it
  const graphOutputs = new Set(graph.output!.map((o) => o.name!))
  const foldedBatchNorms = foldBatchNorms(edit, graphOutputs, weights)

  // 2. which activations, and their ranges on the calibration images
  const wanted = wantedActivations(edit)
  checkSomethingToQuantize(wanted)
  for (const t of usedInitializers(edit.nodes, edit.inits)) edit.inits.set(t.header.name!, weights.spill(t))
  const dir = dirname(path)
  // what the caller's conversion and the folding left is garbage: freed before the calibration maps the weights
  // (under --expose-gc, as the runner and the bench run; ./load.ts does the same)
  ;(globalThis as {gc?: () => void}).gc?.()
  const ranges = await calibrate({inits: edit.inits, model, nodes: edit.nodes}, [...wanted], dir, options)

  // 3. the QDQ rewrite
  const {pairs, scales} = activationPairs(edit, wanted, ranges)
  for (const n of edit.nodes) n.input = n.input!.map((i) => (wanted.has(i) ? `${i}__dq` : i))
  const weightNodes: NodeProto[] = []
  let convolutions = 0
  for (const conv of edit.nodes.filter((n) => n.opType === 'Conv')) {
    const w = edit.inits.get(conv.input![1])
    const inputScale = scales.get(conv.input![0].replace(/__dq$/, ''))
    if (!w || inputScale === undefined) continue
    weightNodes.push(...quantizeConv(edit, conv, w, inputScale))
    convolutions++
  }

  const ordered = orderNodes(
    weightNodes,
    graph.input!.map((i) => i.name!),
    edit.nodes,
    pairs,
  )
  const out = onnx.ModelProto.create({...model, graph: {...graph, node: ordered}, producerName: 'icc (int8 QDQ)'})
  const tensors = usedInitializers(ordered, edit.inits).map((t) => ({
    bytes: t.raw,
    header: t.header,
    length: t.rawLength,
  }))
  const bytes = await writeModel(out, tensors, path)
  return {bytes, convolutions, foldedBatchNorms, tensors: wanted.size}
}

/**
 * Fold every BatchNormalization that directly follows a Conv into the Conv's weights and bias; how many. The
 * folded weights go to `weights` one Conv at a time.
 */
function foldBatchNorms(edit: GraphEdit, graphOutputs: Set<string>, weights: WeightFile): number {
  let foldedBatchNorms = 0
  for (const bn of edit.nodes.filter((n) => n.opType === 'BatchNormalization')) {
    const x = bn.input![0]
    const conv = edit.nodes.find((n) => n.opType === 'Conv' && n.output![0] === x)
    const w = conv && edit.inits.get(conv.input![1])
    const [gamma, beta, mean, variance] = bn.input!.slice(1, 5).map((name) => edit.inits.get(name))
    if (!conv || !w || !gamma || !beta || !mean || !variance) continue
    if (consumersOf(edit, x).length !== 1 || graphOutputs.has(x)) continue
    const eps = attrNumber(bn, 'epsilon', 1e-5)
    const weightValues = floatsOf(w)
    const cout = Number(w.header.dims![0])
    const per = weightValues.length / cout
    const [g, b, m, v] = [gamma, beta, mean, variance].map((t) => floatsOf(t))
    const b0 = conv.input![2] ? floatsOf(edit.inits.get(conv.input![2])!) : new Float32Array(cout)
    const nw = weightValues // folded over the copy just read
    const nb = new Float32Array(cout)
    for (let c = 0; c < cout; c++) {
      const k = g[c] / Math.sqrt(v[c] + eps)
      for (let j = 0; j < per; j++) nw[c * per + j] *= k
      nb[c] = (b0[c] - m[c]) * k + b[c]
    }

    const folded = {dataType: DT.FLOAT, dims: w.header.dims!.map(Number), name: `${conv.name}__w_folded`}
    conv.input = [
      conv.input![0],
      addInit(edit, weights.put(folded, new Uint8Array(nw.buffer, nw.byteOffset, nw.byteLength))),
      addInit(edit, tensor(`${conv.name}__b_folded`, DT.FLOAT, [cout], nb)),
    ]
    conv.output = [bn.output![0]]
    edit.nodes = edit.nodes.filter((n) => n !== bn)
    foldedBatchNorms++
  }

  return foldedBatchNorms
}

/** The activations to quantize: the inputs of Conv, MaxPool and Add (not initializers). */
function wantedActivations(edit: GraphEdit): Set<string> {
  const wanted = new Set<string>()
  for (const n of edit.nodes) {
    if (n.opType === 'Conv' || n.opType === 'MaxPool') wanted.add(n.input![0])
    if (n.opType === 'Add') for (const i of n.input!) if (!edit.inits.has(i)) wanted.add(i)
  }

  return wanted
}

/** Each activation's uint8 scale and its QuantizeLinear/DequantizeLinear pair, from its calibrated range. */
function activationPairs(
  edit: GraphEdit,
  wanted: Set<string>,
  ranges: Map<string, {max: number; min: number}>,
): {pairs: Map<string, NodeProto[]>; scales: Map<string, number>} {
  const scales = new Map<string, number>()
  const pairs = new Map<string, NodeProto[]>()
  for (const name of wanted) {
    const {max, min} = ranges.get(name)!
    const lo = Math.min(min, 0)
    const hi = Math.max(max, 0)
    const scale = hi > lo ? (hi - lo) / 255 : 1
    const zeroPoint = Math.min(255, Math.max(0, Math.round(-lo / scale)))
    scales.set(name, scale)
    const s = addInit(edit, tensor(`${name}__scale`, DT.FLOAT, [], new Float32Array([scale])))
    const z = addInit(edit, tensor(`${name}__zero_point`, DT.UINT8, [], new Uint8Array([zeroPoint])))
    pairs.set(name, [
      {input: [name, s, z], name: `${name}__quantize`, opType: 'QuantizeLinear', output: [`${name}__q`]},
      {input: [`${name}__q`, s, z], name: `${name}__dequantize`, opType: 'DequantizeLinear', output: [`${name}__dq`]},
    ])
  }

  return {pairs, scales}
}

/** The scales of symmetric int8 weights, one per output channel. */
function channelScales(weights: Float32Array, cout: number): Float32Array {
  const per = weights.length / cout
  const wScale = new Float32Array(cout)
  for (let c = 0; c < cout; c++) {
    let peak = 0
    for (let j = 0; j < per; j++) peak = Math.max(peak, Math.abs(weights[c * per + j]))
    wScale[c] = peak > 0 ? peak / 127 : 1
  }

  return wScale
}

/** The int8 weights for those scales. */
function quantizeWeights(weights: Float32Array, wScale: Float32Array): Int8Array {
  const per = weights.length / wScale.length
  const wq = new Int8Array(weights.length)
  for (const [c, scale] of wScale.entries()) {
    for (let j = 0; j < per; j++)
      wq[c * per + j] = Math.max(-127, Math.min(127, Math.round(weights[c * per + j] / scale)))
  }

  return wq
}

/** A per-channel (axis 0) DequantizeLinear of `${base}__${what}_q` into `${base}__${what}_dq`. */
function dequantizeNode(
  edit: GraphEdit,
  base: string,
  what: 'b' | 'w',
  q: LazyTensor,
  scale: Float32Array,
  zeroPoint: LazyTensor,
): NodeProto {
  return {
    attribute: [{i: 0, name: 'axis', type: onnx.AttributeProto.AttributeType.INT}],
    input: [
      addInit(edit, q),
      addInit(edit, tensor(`${base}__${what}_scale`, DT.FLOAT, [scale.length], scale)),
      addInit(edit, zeroPoint),
    ],
    name: `${base}__${what}_dequantize`,
    opType: 'DequantizeLinear',
    output: [`${base}__${what}_dq`],
  }
}

/**
 * Quantize a Conv's weights (int8) and bias (int32) and point it at their DequantizeLinear nodes; those nodes. The
 * int8 weights are made when written (from the float ones read again), not held.
 */
function quantizeConv(edit: GraphEdit, conv: NodeProto, w: LazyTensor, inputScale: number): NodeProto[] {
  const dims = w.header.dims!.map(Number)
  const cout = dims[0]
  const wScale = channelScales(floatsOf(w), cout)
  const wq: LazyTensor = {
    header: {dataType: DT.INT8, dims, name: `${conv.name}__w_q`},
    raw() {
      const q = quantizeWeights(floatsOf(w), wScale)
      return new Uint8Array(q.buffer, q.byteOffset, q.byteLength)
    },
    rawLength: dims.reduce((a, b) => a * b, 1),
  }
  const base = conv.name!
  const inputs = [conv.input![0], `${base}__w_dq`]
  const weightNodes = [
    dequantizeNode(edit, base, 'w', wq, wScale, tensor(`${base}__w_zero_point`, DT.INT8, [cout], new Int8Array(cout))),
  ]
  if (conv.input![2]) {
    const bias = floatsOf(edit.inits.get(conv.input![2])!)
    const bScale = new Float32Array(cout)
    const bq = new Int32Array(cout)
    for (let c = 0; c < cout; c++) {
      bScale[c] = inputScale * wScale[c]
      bq[c] = Math.max(-2_147_483_647, Math.min(2_147_483_647, Math.round(bias[c] / bScale[c])))
    }

    weightNodes.push(
      dequantizeNode(
        edit,
        base,
        'b',
        tensor(`${base}__b_q`, DT.INT32, [cout], bq),
        bScale,
        tensor(`${base}__b_zero_point`, DT.INT32, [cout], new Int32Array(cout)),
      ),
    )
    inputs.push(`${base}__b_dq`)
  }

  conv.input = inputs
  return weightNodes
}

/** Every node after its inputs: the weights' DequantizeLinear first, each activation's pair after its producer. */
function orderNodes(
  weightNodes: NodeProto[],
  graphInputs: string[],
  nodes: NodeProto[],
  pairs: Map<string, NodeProto[]>,
): NodeProto[] {
  const ordered: NodeProto[] = [...weightNodes]
  for (const name of graphInputs) ordered.push(...(pairs.get(name) ?? []))
  for (const n of nodes) {
    ordered.push(n)
    for (const o of n.output!) ordered.push(...(pairs.get(o) ?? []))
  }

  return ordered
}
