/**
 * A plan cut into parts of about a given size of weights each (./optimize.ts optimises each part on its own).
 */
import type onnxProto from 'onnx-proto'

import type {Plan} from './types.js'

import {valueInfo} from './plan.js'
import {byteLength} from './write.js'

/**
 * The plan cut into consecutive parts of at most `maxBytes` of weights each, at the points where one tensor of known
 * shape alone flows from the nodes before to the nodes after (between the units of a ResNet): each part is a model
 * of its own, whose input is the previous part's output. A part ends at the last such point before its weights
 * would pass `maxBytes`; what lies between two points and alone passes it (a big unit) is a part of its own. A graph
 * without such points stays whole.
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
  // the last point where the part could end, and the part's weights up to it
  let point: undefined | {bytes: number; i: number; tensor: string}
  const close = (end: {bytes: number; i: number; tensor: string}) => {
    parts.push(subPlan(whole, nodes.slice(start, end.i + 1), input, end.tensor))
    ;[start, input, bytes, point] = [end.i + 1, end.tensor, bytes - end.bytes, undefined]
  }

  const live = new Set([whole.inputName])
  for (const [i, n] of nodes.entries()) {
    for (const x of n.input!) bytes += initBytes.get(x) ?? 0
    for (const o of n.output!) live.add(o)
    for (const x of live) if ((lastUse.get(x) ?? -1) <= i) live.delete(x)
    const [tensor] = live
    if (live.size !== 1 || i === nodes.length - 1 || !whole.shapes.has(tensor)) continue
    if (bytes > maxBytes && point) close(point)
    if (bytes >= maxBytes) close({bytes, i, tensor})
    else point = {bytes, i, tensor}
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
