/**
 * MXNet symbol + parameters -> the plan of an ONNX model (opset 13): shape inference and the checks of the graph,
 * then each node converted by its operator's handler (./registry.ts), then the graph's inputs and outputs. The batch
 * dimension is dynamic (`N`).
 */
import {totalmem} from 'node:os'
import onnxProto from 'onnx-proto'

import type {MxSymbol, ShapeInference, SymbolNode} from '../mxnet-symbol.js'
import type {OpContext, ParamRef} from './context.js'
import type {ExportOptions, ExportParam, Plan, PlannedInit} from './types.js'

import {ModelError} from '../../errors.js'
import {le32} from '../mxnet-params.js'
import {inferShapes, opName} from '../mxnet-symbol.js'
import {activationPeak, checkActivations, DEFAULT_ACTIVATION_BYTES} from './activations.js'
import {unsupportedError} from './context.js'
import {OP_HANDLERS, SUPPORTED_OPS} from './registry.js'

const {onnx} = onnxProto
const {FLOAT} = onnx.TensorProto.DataType
export const CONVERTER_VERSION = '1'
export const OPSET = 13

/** The data input: the option, else the first variable that is neither a parameter nor a label, else `data`. */
function dataNameOf(sym: MxSymbol, params: Map<string, ExportParam>, given?: string): string {
  const labelNames = new Set<string>()
  for (const n of sym.nodes) {
    if (n.op === 'SoftmaxOutput' || n.op.endsWith('RegressionOutput')) {
      for (const [j] of n.inputs.slice(1)) labelNames.add(sym.nodes[j].name)
    }
  }

  return (
    given ?? sym.nodes.find((n) => n.op === 'null' && !params.has(n.name) && !labelNames.has(n.name))?.name ?? 'data'
  )
}

/** The emitted ONNX nodes and initializers, and the calls that add to them. */
class PlanBuilder {
  readonly initNames = new Set<string>()
  readonly inits: PlannedInit[] = []
  readonly nodes: onnxProto.onnx.INodeProto[] = []
  /** The ONNX tensor of each MXNet node's output. */
  readonly outName: string[] = []
  private counter = 0

  constructor(
    readonly sym: MxSymbol,
    readonly params: Map<string, ExportParam>,
    readonly inf: ShapeInference,
    readonly source: string,
  ) {}

  /** The handler's view of node `i`. */
  context(i: number): OpContext {
    const n = this.sym.nodes[i]
    const {source} = this
    return {
      attrs: n.attrs,
      emit: (opType, input, output, name, attribute = []) => this.nodes.push({attribute, input, name, opType, output}),
      init: (name, dims, bytes) => this.init(name, dims, bytes),
      input: (k) => this.input(n, k),
      node: n,
      out: n.name,
      param: (k, what) => this.param(n, k, what),
      rank: this.inf.nodeShapes[n.inputs[0]?.[0] ?? -1]?.length ?? 0,
      source,
      tmp: (base) => `${base}__${this.counter++}`,
      unsupported(what) {
        throw unsupportedError(source, n, what)
      },
    }
  }

  private init(name: string, dims: number[], bytes: () => Uint8Array): string {
    if (this.initNames.has(name)) return name
    this.initNames.add(name)
    this.inits.push({bytes, dims, name})
    return name
  }

  private input(n: SymbolNode, k: number): string {
    const [j, o] = n.inputs[k]
    if (o !== 0) throw new ModelError('UNSUPPORTED_OP', `${this.source}: ${opName(n)} uses output ${o} of node ${j}`)
    return this.outName[j]
  }

  private param(n: SymbolNode, k: number, what: string): ParamRef {
    const v = this.sym.nodes[n.inputs[k]?.[0] ?? -1]
    const p = v && this.params.get(v.name)
    if (!p) {
      throw new ModelError(
        'MISSING_PARAM',
        `${this.source}: ${opName(n)} needs ${what}, not found in the params file`,
        {
          details: {param: v?.name},
          suggestions: ['Use the .params file saved with this symbol (same model prefix and epoch).'],
        },
      )
    }

    return {bytes: p.raw ?? (() => le32(p.data)), name: v.name, p, shape: p.shape, size: p.size ?? p.data.length}
  }
}

/** Each node converted by its handler; an op without one is UNSUPPORTED_OP naming it and the node. */
function convertNodes(b: PlanBuilder): void {
  for (const [i, n] of b.sym.nodes.entries()) {
    if (n.op === 'null') {
      b.outName[i] = n.name
      continue
    }

    const handler = OP_HANDLERS.get(n.op)
    if (!handler) {
      throw new ModelError('UNSUPPORTED_OP', `${b.source}: unsupported op "${n.op}" in node "${n.name}"`, {
        details: {node: n.name, op: n.op},
        suggestions: [`Supported ops: ${SUPPORTED_OPS.join(', ')}.`],
      })
    }

    handler(b.context(i))
    b.outName[i] = n.name
  }
}

/** The activation bound of ExportOptions: the caller's, else the default (never more than the machine's memory). */
export function activationBound(options: Pick<ExportOptions, 'maxActivationBytes'>): number {
  return options.maxActivationBytes ?? Math.min(DEFAULT_ACTIVATION_BYTES, totalmem())
}

export function plan(sym: MxSymbol, options: ExportOptions): Plan {
  const source = options.source ?? 'symbol'
  const {params} = options
  const dataName = dataNameOf(sym, params, options.dataName)
  const [, c, h, w] = options.inputShape
  const known = new Map([...params].map(([k, v]) => [k, v.shape]))
  const inf = inferShapes(sym, {[dataName]: [1, c, h, w]}, known, source)
  const peak = activationPeak(
    sym,
    inf.nodeShapes,
    sym.nodes.findIndex((n) => n.op === 'null' && n.name === dataName),
  )
  checkActivations(peak, activationBound(options), source)
  const b = new PlanBuilder(sym, params, inf, source)
  convertNodes(b)
  const outputNames = sym.heads.map(([j]) => b.outName[j])
  const outputShapes = sym.heads.map(([j]) => inf.nodeShapes[j] ?? [])
  const model: onnxProto.onnx.IModelProto = {
    graph: {
      input: [valueInfo(dataName, [1, c, h, w])],
      name: 'mxnet',
      node: b.nodes,
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
  return {activation: peak, inits: b.inits, inputName: dataName, model, outputNames, outputShapes, shapes}
}

/** A float tensor's ValueInfoProto, its first dimension the dynamic batch `N`. */
export function valueInfo(name: string, s: number[]): onnxProto.onnx.IValueInfoProto {
  const dim = s.map((d, k) => (k === 0 ? {dimParam: 'N'} : {dimValue: d}))
  return {name, type: {tensorType: {elemType: FLOAT, shape: {dim}}}}
}
