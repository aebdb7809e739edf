/**
 * MXNet symbol + parameters -> ONNX model (opset 13), with MXNet's exact inference semantics and defaults.
 *
 * The supported ops are those of SageMaker's image-classification ResNets and of common MXNet classifiers:
 * BatchNorm (eps 1e-3 when absent; fix_gamma, default True, makes gamma 1 whatever is stored), Convolution,
 * Activation, Pooling (max/avg, global, `full` = ceil mode, avg counting padding), elementwise add, Flatten,
 * FullyConnected, SoftmaxOutput / SoftmaxActivation / softmax, Dropout and copies (identity), Concat, LeakyReLU.
 * Anything else is a ModelError naming the op and the node. The batch dimension is dynamic (`N`).
 */
import onnxProto from 'onnx-proto'

import type {MxSymbol, SymbolNode} from './mxnet-symbol.js'

import {ModelError} from '../errors.js'
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
  params: Map<string, {data: Float32Array; shape: number[]}>
  source?: string
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

function floatTensor(name: string, dims: number[], data: Float32Array): onnxProto.onnx.ITensorProto {
  const copy = new Float32Array(data)
  return {dataType: onnx.TensorProto.DataType.FLOAT, dims, name, rawData: new Uint8Array(copy.buffer)}
}

export function exportOnnx(sym: MxSymbol, options: ExportOptions): ExportResult {
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
  const inits: onnxProto.onnx.ITensorProto[] = []
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

    return {name: v.name, ...p}
  }

  const addInit = (name: string, dims: number[], data: Float32Array) => {
    if (initNames.has(name)) return name
    initNames.add(name)
    inits.push(floatTensor(name, dims, data))
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
        const c = beta.data.length
        for (const p of [gamma, mean, v]) {
          if (p.data.length !== c) {
            throw new ModelError(
              'BAD_PARAMS',
              `${source}: ${opName(n)}: ${p.name} has ${p.data.length} values, expected ${c}`,
            )
          }
        }

        const fix = parseBool(a.fix_gamma, true)
        const g = fix
          ? addInit(`${y}__gamma_fixed`, [c], new Float32Array(c).fill(1))
          : addInit(gamma.name, [c], gamma.data)
        add(
          'BatchNormalization',
          [
            tensorOf(n, 0),
            g,
            addInit(beta.name, [c], beta.data),
            addInit(mean.name, [c], mean.data),
            addInit(v.name, [c], v.data),
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
        const input = [tensorOf(n, 0), addInit(w.name, w.shape, w.data)]
        if (!parseBool(a.no_bias, false)) {
          const b = param(n, 2, 'bias')
          input.push(addInit(b.name, b.shape, b.data))
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

          const input = [x, addInit(w.name, w.shape, w.data)]
          if (b) input.push(addInit(b.name, b.shape, b.data))
          add('Gemm', input, [y], y, [int('transB', 1)])
        } else {
          const wt = new Float32Array(nh * inF)
          for (let r = 0; r < nh; r++) for (let c = 0; c < inF; c++) wt[c * nh + r] = w.data[r * inF + c]
          const mm = b ? tmp(`${y}_matmul`) : y
          add('MatMul', [tensorOf(n, 0), addInit(`${w.name}__T`, [inF, nh], wt)], [mm], mm)
          if (b) add('Add', [mm, addInit(b.name, b.shape, b.data)], [y], y)
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
            const dims = rank > 2 ? [g.data.length, ...Array.from({length: rank - 2}, () => 1)] : [g.data.length]
            add('PRelu', [tensorOf(n, 0), addInit(`${g.name}__bcast`, dims, g.data)], [y], y)

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
  const dimsOf = (s: number[]) => s.map((d, k) => (k === 0 ? {dimParam: 'N'} : {dimValue: d}))
  const valueInfo = (name: string, s: number[]) => ({
    name,
    type: {tensorType: {elemType: onnx.TensorProto.DataType.FLOAT, shape: {dim: dimsOf(s)}}},
  })
  const outputNames = sym.heads.map(([j]) => outName[j])
  const outputShapes = sym.heads.map(([j]) => inf.nodeShapes[j] ?? [])
  const model = onnx.ModelProto.create({
    graph: {
      initializer: inits,
      input: [valueInfo(dataName, [1, c, h, w])],
      name: 'mxnet',
      node: nodes,
      output: outputNames.map((o, k) => valueInfo(o, outputShapes[k])),
    },
    irVersion: 7,
    opsetImport: [{domain: '', version: OPSET}],
    producerName: 'icc',
    producerVersion: CONVERTER_VERSION,
  })
  return {bytes: onnx.ModelProto.encode(model).finish(), inputName: dataName, outputNames, outputShapes}
}
