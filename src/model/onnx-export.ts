/**
 * MXNet symbol + parameters -> ONNX model (opset 13), with MXNet's exact inference semantics and defaults.
 *
 * The supported ops are those of SageMaker's image-classification ResNets and of common MXNet classifiers:
 * BatchNorm (eps 1e-3 when absent; fix_gamma, default True, makes gamma 1 whatever is stored), Convolution,
 * Activation, Pooling (max/avg, global, `full` = ceil mode, avg counting padding), elementwise add, Flatten,
 * FullyConnected, SoftmaxOutput / SoftmaxActivation / softmax, Dropout and copies (identity), Concat, LeakyReLU.
 * Anything else is a ModelError naming the op and the node. The batch dimension is dynamic (`N`).
 *
 * Two ways out, from one plan (the graph, and each initializer as a function that gives its bytes): `exportOnnx`
 * encodes the whole model in memory; `writeOnnx` streams it to a file, the graph first and then each initializer
 * as its bytes are asked for, so that converting holds no copy of the weights beyond the params file's bytes
 * (protobuf lets a message's fields come in any order, so the initializers may follow the graph's other fields).
 */
import {open} from 'node:fs/promises'
import onnxProto from 'onnx-proto'

import type {MxSymbol, SymbolNode} from './mxnet-symbol.js'

import {ModelError} from '../errors.js'
import {le32} from './mxnet-params.js'
import {inferShapes, opName, parseBool, parseNumber, parseTuple} from './mxnet-symbol.js'

const {onnx} = onnxProto
export const CONVERTER_VERSION = '1'
export const OPSET = 13

export const SUPPORTED_OPS = [
  '_copy',
  'identity',
  'BlockGrad',
  'BatchNorm',
  'Convolution',
  'Activation',
  'Pooling',
  'elemwise_add',
  '_Plus',
  '_plus',
  'broadcast_add',
  'Flatten',
  'flatten',
  'FullyConnected',
  'SoftmaxOutput',
  'SoftmaxActivation',
  'softmax',
  'Dropout',
  'Concat',
  'concat',
  'LeakyReLU',
  'relu',
  'sigmoid',
  'tanh',
] as const

export interface ExportOptions {
  /** Name of the data input (default: the first variable that is not a parameter or label). */
  dataName?: string
  /** [N, C, H, W] (N is ignored: the batch dimension is dynamic). */
  inputShape: number[]
  params: Map<string, ExportParam>
  source?: string
}

/** A parameter: its values, or (from a lazily read params file) its size and float32 little-endian bytes. */
export interface ExportParam {
  readonly data: Float32Array
  raw?: () => Uint8Array
  shape: number[]
  size?: number
}

/** An initializer of the plan: its bytes are made (or viewed in the params file) only when written. */
interface PlannedInit {
  bytes: () => Uint8Array
  dims: number[]
  name: string
}

export interface Plan {
  inits: PlannedInit[]
  inputName: string
  /** The model without its initializers. */
  model: onnxProto.onnx.IModelProto
  outputNames: string[]
  outputShapes: number[][]
  /** Shapes (batch 1) of the tensors of known shape: the input and the MXNet nodes' outputs. */
  shapes: Map<string, number[]>
}

export interface ExportResult {
  bytes: Uint8Array
  inputName: string
  outputNames: string[]
  /** Output shapes for batch 1. */
  outputShapes: number[][]
}

const AT = onnx.AttributeProto.AttributeType
type Attr = onnxProto.onnx.IAttributeProto

function ints(name: string, v: number[]): Attr {
  return {ints: v, name, type: AT.INTS}
}

function int(name: string, v: number): Attr {
  return {i: v, name, type: AT.INT}
}

function float(name: string, v: number): Attr {
  return {f: v, name, type: AT.FLOAT}
}

const {FLOAT} = onnx.TensorProto.DataType

/** A plan's parts and what it tells the caller (ExportResult without the bytes). */
function resultOf(p: Plan): Omit<ExportResult, 'bytes'> & Pick<Plan, 'inits' | 'model'> {
  const {inits, inputName, model, outputNames, outputShapes} = p
  return {inits, inputName, model, outputNames, outputShapes}
}

/** The model encoded in memory. */
export function exportOnnx(sym: MxSymbol, options: ExportOptions): ExportResult {
  const {inits, model, ...rest} = resultOf(plan(sym, options))
  const initializer = inits.map((t) => ({dataType: FLOAT, dims: t.dims, name: t.name, rawData: t.bytes()}))
  const full = onnx.ModelProto.create({...model, graph: {...model.graph, initializer}})
  return {bytes: onnx.ModelProto.encode(full).finish(), ...rest}
}

export interface WriteResult extends Omit<ExportResult, 'bytes'> {
  /** Bytes written. */
  length: number
}

/** The model streamed to `path` (created or truncated), each initializer's bytes asked for as it is written. */
export async function writeOnnx(sym: MxSymbol, options: ExportOptions, path: string): Promise<WriteResult> {
  return writePlan(plan(sym, options), path)
}

/** A plan (or a part of one, splitPlan) streamed to `path`. */
export async function writePlan(p: Plan, path: string): Promise<WriteResult> {
  const {inits, model, ...rest} = resultOf(p)
  const {graph, ...top} = model
  const head = onnx.ModelProto.encode(onnx.ModelProto.create(top)).finish()
  const graphHead = onnx.GraphProto.encode(onnx.GraphProto.create(graph!)).finish()
  // each initializer: field 5 of GraphProto = a TensorProto of dims, type and name, then raw_data (field 9)
  const headers = inits.map((t) => {
    const header = onnx.TensorProto.encode({dataType: FLOAT, dims: t.dims, name: t.name}).finish()
    const n = byteLength(t.dims)
    const rawTag = concat([Uint8Array.of(0x4a), varint(n)])
    return {header, n, rawTag}
  })
  const entryLength = (h: (typeof headers)[number]) => h.header.length + h.rawTag.length + h.n
  const graphLength = headers.reduce((s, h) => s + fieldLength(entryLength(h)), graphHead.length)
  const file = await open(path, 'w')
  let length = 0
  const write = async (bytes: Uint8Array) => {
    let done = 0
    while (done < bytes.length) done += (await file.write(bytes, done, bytes.length - done)).bytesWritten
    length += bytes.length
  }

  try {
    await write(concat([head, Uint8Array.of(0x3a), varint(graphLength), graphHead]))
    for (const [i, h] of headers.entries()) {
      const bytes = inits[i].bytes()
      if (bytes.length !== h.n) {
        throw new ModelError(
          'BAD_PARAMS',
          `${inits[i].name}: ${bytes.length} bytes for dims ${inits[i].dims.join('x')}`,
        )
      }

      await write(concat([Uint8Array.of(0x2a), varint(entryLength(h)), h.header, h.rawTag]))
      await write(bytes)
    }
  } finally {
    await file.close()
  }

  return {length, ...rest}
}

/** Bytes of a float32 tensor of these dimensions. */
function byteLength(dims: number[]): number {
  return 4 * dims.reduce((a, b) => a * b, 1)
}

function varint(v: number): Uint8Array {
  const out: number[] = []
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80)
    v = Math.floor(v / 0x80)
  }

  out.push(v)
  return Uint8Array.from(out)
}

/** Length of a length-delimited field (one-byte tag) holding `n` bytes. */
function fieldLength(n: number): number {
  return 1 + varint(n).length + n
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }

  return out
}

function paramBytes(p: ExportParam): () => Uint8Array {
  return p.raw ?? (() => le32(p.data))
}

function sizeOf(p: ExportParam): number {
  return p.size ?? p.data.length
}

export function plan(sym: MxSymbol, options: ExportOptions): Plan {
  const source = options.source ?? 'symbol'
  const {params} = options
  const labelNames = new Set<string>()
  for (const n of sym.nodes) {
    if (n.op === 'SoftmaxOutput' || n.op.endsWith('RegressionOutput')) {
      for (const [j] of n.inputs.slice(1)) labelNames.add(sym.nodes[j].name)
    }
  }

  const dataName =
    options.dataName ??
    sym.nodes.find((n) => n.op === 'null' && !params.has(n.name) && !labelNames.has(n.name))?.name ??
    'data'
  const [, ...chw] = options.inputShape
  const known = new Map([...params].map(([k, v]) => [k, v.shape]))
  const inf = inferShapes(sym, {[dataName]: [1, ...chw]}, known, source)

  const nodes: onnxProto.onnx.INodeProto[] = []
  const inits: PlannedInit[] = []
  const initNames = new Set<string>()
  const outName: string[] = []
  const tensorOf = (n: SymbolNode, k: number): string => {
    const [j, o] = n.inputs[k]
    if (o !== 0) throw new ModelError('UNSUPPORTED_OP', `${source}: ${opName(n)} uses output ${o} of node ${j}`)
    return outName[j]
  }

  const param = (n: SymbolNode, k: number, what: string) => {
    const v = sym.nodes[n.inputs[k]?.[0] ?? -1]
    const p = v && params.get(v.name)
    if (!p) {
      throw new ModelError('MISSING_PARAM', `${source}: ${opName(n)} needs ${what}, not found in the params file`, {
        details: {param: v?.name},
        suggestions: ['Use the .params file saved with this symbol (same model prefix and epoch).'],
      })
    }

    return {bytes: paramBytes(p), name: v.name, p, shape: p.shape, size: sizeOf(p)}
  }

  const addInit = (name: string, dims: number[], bytes: () => Uint8Array) => {
    if (initNames.has(name)) return name
    initNames.add(name)
    inits.push({bytes, dims, name})
    return name
  }

  let counter = 0
  const tmp = (base: string) => `${base}__${counter++}`
  const add = (opType: string, input: string[], output: string[], name: string, attribute: Attr[] = []) =>
    nodes.push({attribute, input, name, opType, output})

  for (const [i, n] of sym.nodes.entries()) {
    const a = n.attrs
    const y = n.name
    const rank = inf.nodeShapes[n.inputs[0]?.[0] ?? -1]?.length ?? 0
    switch (n.op) {
      case 'null': {
        outName[i] = n.name
        break
      }

      case '_copy':
      case 'BlockGrad':
      case 'Dropout':
      case 'identity': {
        add('Identity', [tensorOf(n, 0)], [y], y)
        break
      }

      case 'BatchNorm': {
        const axis = parseNumber(a.axis, 1)
        if (axis !== 1) throw new ModelError('UNSUPPORTED_OP', `${source}: ${opName(n)}: axis=${axis} is not supported`)
        const gamma = param(n, 1, 'gamma')
        const beta = param(n, 2, 'beta')
        const mean = param(n, 3, 'moving_mean')
        const v = param(n, 4, 'moving_var')
        const c = beta.size
        for (const p of [gamma, mean, v]) {
          if (p.size !== c) {
            throw new ModelError('BAD_PARAMS', `${source}: ${opName(n)}: ${p.name} has ${p.size} values, expected ${c}`)
          }
        }

        const fix = parseBool(a.fix_gamma, true)
        const g = fix
          ? addInit(`${y}__gamma_fixed`, [c], () => le32(new Float32Array(c).fill(1)))
          : addInit(gamma.name, [c], gamma.bytes)
        add(
          'BatchNormalization',
          [
            tensorOf(n, 0),
            g,
            addInit(beta.name, [c], beta.bytes),
            addInit(mean.name, [c], mean.bytes),
            addInit(v.name, [c], v.bytes),
          ],
          [y],
          y,
          [float('epsilon', parseNumber(a.eps, 1e-3))],
        )
        break
      }

      case 'Convolution': {
        const w = param(n, 1, 'weight')
        const k = parseTuple(a.kernel)
        const nd = k.length
        const stride = parseTuple(a.stride, []).length > 0 ? parseTuple(a.stride) : k.map(() => 1)
        const pad = parseTuple(a.pad, []).length > 0 ? parseTuple(a.pad) : k.map(() => 0)
        const dil = parseTuple(a.dilate, []).length > 0 ? parseTuple(a.dilate) : k.map(() => 1)
        const input = [tensorOf(n, 0), addInit(w.name, w.shape, w.bytes)]
        if (!parseBool(a.no_bias, false)) {
          const b = param(n, 2, 'bias')
          input.push(addInit(b.name, b.shape, b.bytes))
        }

        if (a.layout && !['NCDHW', 'NCHW', 'NCW', 'None'].includes(a.layout)) {
          throw new ModelError('UNSUPPORTED_OP', `${source}: ${opName(n)}: layout ${a.layout} is not supported`)
        }

        add('Conv', input, [y], y, [
          ints('kernel_shape', k),
          ints('strides', stride),
          ints('pads', [...pad, ...pad].slice(0, 2 * nd)),
          ints('dilations', dil),
          int('group', parseNumber(a.num_group, 1)),
        ])
        break
      }

      case 'Activation':
      case 'relu':
      case 'sigmoid':
      case 'tanh': {
        const t = n.op === 'Activation' ? a.act_type : n.op
        const map: Record<string, string> = {
          relu: 'Relu',
          sigmoid: 'Sigmoid',
          softrelu: 'Softplus',
          softsign: 'Softsign',
          tanh: 'Tanh',
        }
        const op = map[t ?? '']
        if (!op) throw new ModelError('UNSUPPORTED_OP', `${source}: ${opName(n)}: act_type "${t}" is not supported`)
        add(op, [tensorOf(n, 0)], [y], y)
        break
      }

      case 'Pooling': {
        const type = a.pool_type ?? 'max'
        if (type !== 'max' && type !== 'avg') {
          throw new ModelError('UNSUPPORTED_OP', `${source}: ${opName(n)}: pool_type "${type}" is not supported`)
        }

        if (parseBool(a.global_pool, false)) {
          add(type === 'max' ? 'GlobalMaxPool' : 'GlobalAveragePool', [tensorOf(n, 0)], [y], y)
          break
        }

        const k = parseTuple(a.kernel)
        const stride = parseTuple(a.stride, []).length > 0 ? parseTuple(a.stride) : k.map(() => 1)
        const pad = parseTuple(a.pad, []).length > 0 ? parseTuple(a.pad) : k.map(() => 0)
        const conv = a.pooling_convention ?? 'valid'
        if (conv !== 'valid' && conv !== 'full') {
          throw new ModelError(
            'UNSUPPORTED_OP',
            `${source}: ${opName(n)}: pooling_convention "${conv}" is not supported`,
          )
        }

        const attrs = [
          ints('kernel_shape', k),
          ints('strides', stride),
          ints('pads', [...pad, ...pad]),
          int('ceil_mode', conv === 'full' ? 1 : 0),
        ]
        if (type === 'avg') attrs.push(int('count_include_pad', parseBool(a.count_include_pad, true) ? 1 : 0))
        add(type === 'max' ? 'MaxPool' : 'AveragePool', [tensorOf(n, 0)], [y], y, attrs)
        break
      }

      case '_Plus':
      case '_plus':
      case 'broadcast_add':
      case 'elemwise_add': {
        add('Add', [tensorOf(n, 0), tensorOf(n, 1)], [y], y)
        break
      }

      case 'Flatten':
      case 'flatten': {
        add('Flatten', [tensorOf(n, 0)], [y], y, [int('axis', 1)])
        break
      }

      case 'FullyConnected': {
        const w = param(n, 1, 'weight')
        const noBias = parseBool(a.no_bias, false)
        const b = noBias ? undefined : param(n, 2, 'bias')
        const [nh, inF] = w.shape
        if (parseBool(a.flatten, true)) {
          let x = tensorOf(n, 0)
          if (rank !== 2) {
            const f = tmp(`${y}_flatten`)
            add('Flatten', [x], [f], f, [int('axis', 1)])
            x = f
          }

          const input = [x, addInit(w.name, w.shape, w.bytes)]
          if (b) input.push(addInit(b.name, b.shape, b.bytes))
          add('Gemm', input, [y], y, [int('transB', 1)])
        } else {
          const transposed = () => {
            const wd = w.p.data
            const wt = new Float32Array(nh * inF)
            for (let r = 0; r < nh; r++) for (let c = 0; c < inF; c++) wt[c * nh + r] = wd[r * inF + c]
            return le32(wt)
          }

          const mm = b ? tmp(`${y}_matmul`) : y
          add('MatMul', [tensorOf(n, 0), addInit(`${w.name}__T`, [inF, nh], transposed)], [mm], mm)
          if (b) add('Add', [mm, addInit(b.name, b.shape, b.bytes)], [y], y)
        }

        break
      }

      case 'SoftmaxActivation':
      case 'SoftmaxOutput':
      case 'softmax': {
        const x = tensorOf(n, 0)
        const multi =
          (n.op === 'SoftmaxOutput' && parseBool(a.multi_output, false)) ||
          (n.op === 'SoftmaxActivation' && a.mode === 'channel')
        if (n.op === 'softmax') {
          add('Softmax', [x], [y], y, [int('axis', parseNumber(a.axis, -1))])
        } else if (multi || rank <= 2) {
          add('Softmax', [x], [y], y, [int('axis', 1)])
        } else {
          // Instance mode on a >2-D input: softmax over everything but the batch axis, shape kept.
          const f = tmp(`${y}_flat`)
          const s = tmp(`${y}_softmax`)
          const shapeName = tmp(`${y}_shape`)
          add('Flatten', [x], [f], f, [int('axis', 1)])
          add('Softmax', [f], [s], s, [int('axis', 1)])
          add('Shape', [x], [shapeName], shapeName)
          add('Reshape', [s, shapeName], [y], y)
        }

        break
      }

      case 'Concat':
      case 'concat': {
        add(
          'Concat',
          n.inputs.map((_, k) => tensorOf(n, k)),
          [y],
          y,
          [int('axis', parseNumber(a.dim, 1))],
        )
        break
      }

      case 'LeakyReLU': {
        const t = a.act_type ?? 'leaky'
        const slope = parseNumber(a.slope, 0.25)
        switch (t) {
          case 'leaky': {
            add('LeakyRelu', [tensorOf(n, 0)], [y], y, [float('alpha', slope)])
            break
          }

          case 'elu': {
            add('Elu', [tensorOf(n, 0)], [y], y, [float('alpha', slope)])
            break
          }

          case 'rrelu': {
            const mid = (parseNumber(a.lower_bound, 0.125) + parseNumber(a.upper_bound, 0.334)) / 2
            add('LeakyRelu', [tensorOf(n, 0)], [y], y, [float('alpha', mid)])

            break
          }

          case 'prelu': {
            const g = param(n, 1, 'gamma')
            const dims = rank > 2 ? [g.size, ...Array.from({length: rank - 2}, () => 1)] : [g.size]
            add('PRelu', [tensorOf(n, 0), addInit(`${g.name}__bcast`, dims, g.bytes)], [y], y)

            break
          }

          default:
            throw new ModelError('UNSUPPORTED_OP', `${source}: ${opName(n)}: act_type "${t}" is not supported`)
        }

        break
      }

      default: {
        throw new ModelError('UNSUPPORTED_OP', `${source}: unsupported op "${n.op}" in node "${n.name}"`, {
          details: {node: n.name, op: n.op},
          suggestions: [`Supported ops: ${SUPPORTED_OPS.join(', ')}.`],
        })
      }
    }

    if (n.op !== 'null') outName[i] = y
  }

  const [, c, h, w] = options.inputShape
  const outputNames = sym.heads.map(([j]) => outName[j])
  const outputShapes = sym.heads.map(([j]) => inf.nodeShapes[j] ?? [])
  const model: onnxProto.onnx.IModelProto = {
    graph: {
      input: [valueInfo(dataName, [1, c, h, w])],
      name: 'mxnet',
      node: nodes,
      output: outputNames.map((o, k) => valueInfo(o, outputShapes[k])),
    },
    irVersion: 7,
    opsetImport: [{domain: '', version: OPSET}],
    producerName: 'icc',
    producerVersion: CONVERTER_VERSION,
  }
  const shapes = new Map<string, number[]>()
  for (const [j, n] of sym.nodes.entries())
    if (n.op !== 'null' && inf.nodeShapes[j]) shapes.set(n.name, inf.nodeShapes[j])
  shapes.set(dataName, [1, c, h, w])
  return {inits, inputName: dataName, model, outputNames, outputShapes, shapes}
}

/** A float tensor's ValueInfoProto, its first dimension the dynamic batch `N`. */
function valueInfo(name: string, s: number[]): onnxProto.onnx.IValueInfoProto {
  const dim = s.map((d, k) => (k === 0 ? {dimParam: 'N'} : {dimValue: d}))
  return {name, type: {tensorType: {elemType: FLOAT, shape: {dim}}}}
}

/**
 * The plan cut into consecutive parts of about `maxBytes` of weights each, at the points where one tensor of known
 * shape alone flows from the nodes before to the nodes after (between the units of a ResNet): each part is a model
 * of its own, whose input is the previous part's output. A graph without such points stays whole.
 */
export function splitPlan(whole: Plan, maxBytes: number): Plan[] {
  const graph = whole.model.graph!
  const nodes = graph.node!
  const initBytes = new Map(whole.inits.map((t) => [t.name, byteLength(t.dims)]))
  const isInit = new Set(whole.inits.map((t) => t.name))
  const lastUse = new Map<string, number>()
  for (const [i, n] of nodes.entries()) for (const x of n.input!) if (!isInit.has(x)) lastUse.set(x, i)
  for (const o of whole.outputNames) lastUse.set(o, nodes.length)
  const parts: Plan[] = []
  let start = 0
  let input = whole.inputName
  let bytes = 0
  const live = new Set([whole.inputName])
  for (const [i, n] of nodes.entries()) {
    for (const x of n.input!) bytes += initBytes.get(x) ?? 0
    for (const o of n.output!) live.add(o)
    for (const x of live) if ((lastUse.get(x) ?? -1) <= i) live.delete(x)
    const [cut] = live
    if (bytes < maxBytes || live.size !== 1 || i === nodes.length - 1 || !whole.shapes.has(cut)) continue
    parts.push(subPlan(whole, nodes.slice(start, i + 1), input, cut))
    ;[start, input, bytes] = [i + 1, cut, 0]
  }

  if (parts.length === 0) return [whole]
  parts.push(subPlan(whole, nodes.slice(start), input, undefined))
  return parts
}

function subPlan(whole: Plan, nodes: onnxProto.onnx.INodeProto[], input: string, output: string | undefined): Plan {
  const used = new Set(nodes.flatMap((n) => n.input!))
  const outputNames = output === undefined ? whole.outputNames : [output]
  const outputShapes = output === undefined ? whole.outputShapes : [whole.shapes.get(output)!]
  const graph = {
    ...whole.model.graph,
    input: [valueInfo(input, whole.shapes.get(input)!)],
    node: nodes,
    output: outputNames.map((o, k) => valueInfo(o, outputShapes[k])),
  }
  return {
    ...whole,
    inits: whole.inits.filter((t) => used.has(t.name)),
    inputName: input,
    model: {...whole.model, graph},
    outputNames,
    outputShapes,
  }
}
