/**
 * int8 quantization of a converted model (`icc convert-model --quantize int8`): static, post-training, written in
 * the QDQ form (QuantizeLinear / DequantizeLinear pairs around float ops) that ONNX Runtime turns into integer
 * kernels when it loads the model (DequantizeLinear -> Conv (-> Relu) -> QuantizeLinear becomes QLinearConv, u8s8,
 * with VNNI where the CPU has it).
 *
 * 1. Every BatchNormalization that directly follows a Conv (whose output goes nowhere else) is folded into the
 *    Conv's weights and bias: the float model computes the same, and ONNX Runtime could not fold it any more once
 *    the weights are quantized.
 * 2. Calibration: the float model runs on the calibration images with every tensor to be quantized exposed as an
 *    output; a tensor's range is the lowest and highest value seen (always including 0).
 * 3. The activations that feed Conv, Add and MaxPool become uint8 (asymmetric, one scale per tensor):
 *    x -> QuantizeLinear -> DequantizeLinear -> its consumers. Conv weights become int8 (symmetric, one scale per
 *    output channel) and Conv biases int32 (scale = input scale x weight scale). Everything else (Gemm, Softmax,
 *    a BatchNormalization that follows no Conv...) stays float32.
 *
 * The result is an ordinary ONNX file: `icc serve --model model.int8.onnx` serves it like any other.
 *
 * Memory: the decoded model's tensors are views of the input bytes, new tensors are not copied again, and with
 * `inPlace` (the caller's bytes are its own to spend) the folded weights overwrite the originals, so that the float
 * weights exist once besides the calibration session's copy.
 */
import onnxProto from 'onnx-proto'

import {ModelError} from '../errors.js'
import {type Backend, openSession} from './session.js'

const {onnx} = onnxProto
type NodeProto = onnxProto.onnx.INodeProto
type TensorProto = onnxProto.onnx.ITensorProto
const DT = onnx.TensorProto.DataType

export interface QuantizeOptions {
  /** Calibration inputs, each one image as the model takes it (C x H x W values, already preprocessed). */
  calibration: Float32Array[]
  /** [C, H, W] of one image. */
  inputShape: [number, number, number]
  /** The runtime the calibration runs on (default native). */
  backend?: Backend
  /** The model bytes may be overwritten (the folded weights replace the originals there instead of a copy). */
  inPlace?: boolean
}

export interface QuantizeResult {
  /** The quantized model (ONNX, QDQ form). */
  bytes: Uint8Array
  /** Convolutions whose weights are now int8. */
  convolutions: number
  /** BatchNormalizations folded into the Conv before them. */
  foldedBatchNorms: number
  /** Activation tensors quantized to uint8. */
  tensors: number
}

function floatsOf(t: TensorProto): Float32Array {
  if (t.dataType !== DT.FLOAT) throw new ModelError('QUANTIZE_FAILED', `Tensor ${t.name} is not float32.`)
  if (t.rawData && t.rawData.length > 0) {
    const copy = new Uint8Array(t.rawData)
    return new Float32Array(copy.buffer, 0, copy.length / 4)
  }

  return Float32Array.from(t.floatData ?? [])
}

/** A tensor over `data`'s own bytes (not copied: `data` is new and is not written again). */
function tensor(name: string, dataType: number, dims: number[], data: ArrayBufferView): TensorProto {
  return {dataType, dims, name, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength)}
}

/** Write float32 `values` over a float32 tensor's raw bytes (little-endian, as ONNX stores them). */
function overwrite(t: TensorProto, values: Float32Array): void {
  const raw = t.rawData!
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength)
  for (const [i, v] of values.entries()) view.setFloat32(i * 4, v, true)
}

function attrNumber(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute?.find((x) => x.name === name)
  return a?.f ?? (a?.i === undefined || a.i === null ? fallback : Number(a.i))
}

/** The graph being rewritten: its nodes (replaced as BatchNormalizations are folded) and initializers by name. */
interface GraphEdit {
  inits: Map<string, TensorProto>
  nodes: NodeProto[]
}

/** Add an initializer to the graph; its name. */
function addInit(edit: GraphEdit, t: TensorProto): string {
  edit.inits.set(t.name!, t)
  return t.name!
}

/** The nodes that read tensor `name`. */
function consumersOf(edit: GraphEdit, name: string): NodeProto[] {
  return edit.nodes.filter((n) => n.input!.includes(name))
}

/** Decode the model to quantize, refusing a quantization without calibration images or of a quantized model. */
function decodeFloatModel(modelBytes: Uint8Array, options: QuantizeOptions): onnxProto.onnx.ModelProto {
  if (options.calibration.length === 0) {
    throw new ModelError('NO_CALIBRATION_DATA', 'int8 quantization needs at least one calibration image.', {
      suggestions: ['Pass --calibration DIR with JPEG/PNG images like the ones the model will see (32-100 is plenty).'],
    })
  }

  const model = onnx.ModelProto.decode(modelBytes)
  if (model.graph!.node!.some((n) => n.opType === 'QuantizeLinear' || n.opType === 'DequantizeLinear')) {
    throw new ModelError(
      'ALREADY_QUANTIZED',
      'The model is already quantized (it has QuantizeLinear/DequantizeLinear).',
      {
        suggestions: ['Quantize the float32 model (the SageMaker model directory or its float .onnx) instead.'],
      },
    )
  }

  return model
}

/** Quantize a float32 model (see the module comment). */
export async function quantizeInt8(modelBytes: Uint8Array, options: QuantizeOptions): Promise<QuantizeResult> {
  const model = decodeFloatModel(modelBytes, options)
  const graph = model.graph!
  const edit: GraphEdit = {
    inits: new Map<string, TensorProto>(graph.initializer!.map((t) => [t.name!, t])),
    nodes: [...graph.node!],
  }

  // 1. fold BatchNormalization into the Conv before it
  const graphOutputs = new Set(graph.output!.map((o) => o.name!))
  const foldedBatchNorms = foldBatchNorms(edit, graphOutputs, options.inPlace ?? false)

  // 2. which activations, and their ranges on the calibration images
  const wanted = wantedActivations(edit)
  const ranges = await calibrate(model, edit.nodes, edit.inits, [...wanted], options)

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
  graph.node = ordered
  graph.initializer = usedInitializers(ordered, edit.inits)
  model.producerName = 'icc (int8 QDQ)'
  return {bytes: onnx.ModelProto.encode(model).finish(), convolutions, foldedBatchNorms, tensors: wanted.size}
}

/** Fold every BatchNormalization that directly follows a Conv into the Conv's weights and bias; how many. */
function foldBatchNorms(edit: GraphEdit, graphOutputs: Set<string>, inPlace: boolean): number {
  let foldedBatchNorms = 0
  for (const bn of edit.nodes.filter((n) => n.opType === 'BatchNormalization')) {
    const x = bn.input![0]
    const conv = edit.nodes.find((n) => n.opType === 'Conv' && n.output![0] === x)
    const w = conv && edit.inits.get(conv.input![1])
    const [gamma, beta, mean, variance] = bn.input!.slice(1, 5).map((name) => edit.inits.get(name))
    if (!conv || !w || !gamma || !beta || !mean || !variance) continue
    if (consumersOf(edit, x).length !== 1 || graphOutputs.has(x)) continue
    const eps = attrNumber(bn, 'epsilon', 1e-5)
    const weights = floatsOf(w)
    const cout = Number(w.dims![0])
    const per = weights.length / cout
    const [g, b, m, v] = [gamma, beta, mean, variance].map((t) => floatsOf(t))
    const b0 = conv.input![2] ? floatsOf(edit.inits.get(conv.input![2])!) : new Float32Array(cout)
    const nw = new Float32Array(weights.length)
    const nb = new Float32Array(cout)
    for (let c = 0; c < cout; c++) {
      const k = g[c] / Math.sqrt(v[c] + eps)
      for (let j = 0; j < per; j++) nw[c * per + j] = weights[c * per + j] * k
      nb[c] = (b0[c] - m[c]) * k + b[c]
    }

    // in place when the bytes are ours and no other node reads these weights: one copy of them, not two
    const own = inPlace && (w.rawData?.length ?? 0) === nw.length * 4 && consumersOf(edit, w.name!).length === 1
    if (own) overwrite(w, nw)
    conv.input = [
      conv.input![0],
      own ? w.name! : addInit(edit, tensor(`${conv.name}__w_folded`, DT.FLOAT, w.dims!.map(Number), nw)),
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

/** Symmetric int8 weights with one scale per output channel. */
function quantizeWeights(weights: Float32Array, cout: number): {wq: Int8Array; wScale: Float32Array} {
  const per = weights.length / cout
  const wScale = new Float32Array(cout)
  const wq = new Int8Array(weights.length)
  for (let c = 0; c < cout; c++) {
    let peak = 0
    for (let j = 0; j < per; j++) peak = Math.max(peak, Math.abs(weights[c * per + j]))
    wScale[c] = peak > 0 ? peak / 127 : 1
    for (let j = 0; j < per; j++)
      wq[c * per + j] = Math.max(-127, Math.min(127, Math.round(weights[c * per + j] / wScale[c])))
  }

  return {wq, wScale}
}

/** A per-channel (axis 0) DequantizeLinear of `${base}__${what}_q` into `${base}__${what}_dq`. */
function dequantizeNode(
  edit: GraphEdit,
  base: string,
  what: 'b' | 'w',
  q: TensorProto,
  scale: Float32Array,
  zeroPoint: TensorProto,
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

/** Quantize a Conv's weights (int8) and bias (int32) and point it at their DequantizeLinear nodes; those nodes. */
function quantizeConv(edit: GraphEdit, conv: NodeProto, w: TensorProto, inputScale: number): NodeProto[] {
  const cout = Number(w.dims![0])
  const {wq, wScale} = quantizeWeights(floatsOf(w), cout)
  const base = conv.name!
  const inputs = [conv.input![0], `${base}__w_dq`]
  const weightNodes = [
    dequantizeNode(
      edit,
      base,
      'w',
      tensor(`${base}__w_q`, DT.INT8, w.dims!.map(Number), wq),
      wScale,
      tensor(`${base}__w_zero_point`, DT.INT8, [cout], new Int8Array(cout)),
    ),
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

/** The initializers some node reads (folding and quantizing leave the replaced ones behind). */
function usedInitializers(nodes: NodeProto[], inits: Map<string, TensorProto>): TensorProto[] {
  const used = new Set(nodes.flatMap((n) => n.input!))
  return [...inits.values()].filter((t) => used.has(t.name!))
}

/** Lowest and highest value of each tensor over the calibration images, running the float model. */
async function calibrate(
  model: onnxProto.onnx.IModelProto,
  nodes: NodeProto[],
  inits: Map<string, TensorProto>,
  names: string[],
  options: QuantizeOptions,
): Promise<Map<string, {max: number; min: number}>> {
  // the model as it stands (BatchNorms folded), with every tensor to measure as an extra output
  const graph = model.graph!
  const known = new Set(graph.output!.map((o) => o.name))
  const output = [
    ...graph.output!,
    ...names.filter((name) => !known.has(name)).map((name) => ({name, type: {tensorType: {elemType: DT.FLOAT}}})),
  ]
  const probe = onnx.ModelProto.create({
    ...model,
    graph: onnx.GraphProto.create({...graph, initializer: usedInitializers(nodes, inits), node: nodes, output}),
  })
  const session = await openSession(
    onnx.ModelProto.encode(probe).finish(),
    {graphOptimizationLevel: 'basic', logSeverityLevel: 3},
    options.backend,
  )
  const ranges = new Map(names.map((n) => [n, {max: -Infinity, min: Infinity}]))
  try {
    const [c, h, w] = options.inputShape
    for (const image of options.calibration) {
      const out = await session.run({[session.inputNames[0]]: {data: image, dims: [1, c, h, w]}}, names)
      for (const name of names) {
        const data = out[name]
        const r = ranges.get(name)!
        for (const value of data) {
          if (value < r.min) r.min = value
          if (value > r.max) r.max = value
        }
      }
    }
  } finally {
    await session.release()
  }

  return ranges
}
