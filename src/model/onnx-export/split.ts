/**
 * A plan cut into parts of about a given size of weights each (./optimize.ts optimises each part on its own).
 */
import type onnxProto from 'onnx-proto'

import type {Plan} from './types.js'

import {valueInfo} from './plan.js'
import {byteLength} from './write.js'

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
