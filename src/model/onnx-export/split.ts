/**
 * Cutting a graph into parts of about a given size of weights each: a plan (./optimize.ts optimises each part on its
 * own) or a node list (../quantize-calibrate.ts calibrates one part at a time).
 */
import type onnxProto from 'onnx-proto'

import type {Plan} from './types.js'

import {valueInfo} from './plan.js'
import {byteLength} from './write.js'

/** A graph to cut (cutGraph). */
export interface CutGraph {
  /** The bytes of an initializer; undefined for a tensor that is not one. */
  initBytes: (name: string) => number | undefined
  /** The graph's input. */
  input: string
  /** Its nodes, in a topological order. */
  nodes: onnxProto.onnx.INodeProto[]
  /** Tensors the graph gives out (alive to the end). */
  outputs: string[]
  /** Whether a part may end with `tensor` (default: any). */
  canEnd?: (tensor: string) => boolean
}

/** One part of a cut graph: nodes `start` up to (not including) `end`, its input, the tensor it passes on. */
export interface Span {
  end: number
  input: string
  /** The one tensor that flows on to the next part; undefined for the last part. */
  output?: string
  start: number
}

/**
 * `g` cut into consecutive parts of at most `maxBytes` of weights each, at the points where one tensor alone flows
 * from the nodes before to the nodes after (between the units of a ResNet): each part's input is the previous part's
 * output. A part ends at the last such point before its weights would pass `maxBytes`; what lies between two points
 * and alone passes it (a big unit) is a part of its own. A graph without such points is one part.
 */
export function cutGraph(g: CutGraph, maxBytes: number): Span[] {
  const lastUse = new Map<string, number>()
  for (const [i, n] of g.nodes.entries()) for (const x of n.input!) if (g.initBytes(x) === undefined) lastUse.set(x, i)
  for (const o of g.outputs) lastUse.set(o, g.nodes.length)
  const spans: Span[] = []
  let [start, input, bytes] = [0, g.input, 0]
  // the last point where the part could end, and the part's weights up to it
  let point: undefined | {bytes: number; i: number; tensor: string}
  const close = (end: {bytes: number; i: number; tensor: string}) => {
    spans.push({end: end.i + 1, input, output: end.tensor, start})
    ;[start, input, bytes, point] = [end.i + 1, end.tensor, bytes - end.bytes, undefined]
  }

  const live = new Set([g.input])
  for (const [i, n] of g.nodes.entries()) {
    for (const x of n.input!) bytes += g.initBytes(x) ?? 0
    for (const o of n.output!) live.add(o)
    for (const x of live) if ((lastUse.get(x) ?? -1) <= i) live.delete(x)
    const [tensor] = live
    if (live.size !== 1 || i === g.nodes.length - 1 || !(g.canEnd?.(tensor) ?? true)) continue
    if (bytes > maxBytes && point) close(point)
    if (bytes >= maxBytes) close({bytes, i, tensor})
    else point = {bytes, i, tensor}
  }

  return [...spans, {end: g.nodes.length, input, start}]
}

/**
 * The plan cut into consecutive parts of at most `maxBytes` of weights each (cutGraph, at tensors of known shape):
 * each part is a model of its own, whose input is the previous part's output. A graph without such points stays
 * whole.
 */
export function splitPlan(whole: Plan, maxBytes: number): Plan[] {
  const nodes = whole.model.graph!.node!
  const initBytes = new Map(whole.inits.map((t) => [t.name, byteLength(t.dims)]))
  const spans = cutGraph(
    {
      canEnd: (tensor) => whole.shapes.has(tensor),
      initBytes: (name) => initBytes.get(name),
      input: whole.inputName,
      nodes,
      outputs: whole.outputNames,
    },
    maxBytes,
  )
  if (spans.length === 1) return [whole]
  return spans.map((p) => subPlan(whole, nodes.slice(p.start, p.end), p.input, p.output))
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
