/**
 * The memory a graph's tensors need for one image, from shape inference: walking the nodes in order, each node's
 * output is held from the node that makes it to the last node that reads it (a graph output to the end), as ONNX
 * Runtime's memory planner does; the peak of that sum is the graph's activation bytes (float32, batch 1, weights
 * not counted). A graph whose peak is over a bound is refused at conversion (BAD_SYMBOL), before anything is
 * written or run: a 2 KB symbol with a Convolution `pad (9000, 9000)` needs gigabytes and is refused in
 * milliseconds instead of being killed for memory. The bound: the memory limit where the caller has one
 * (`icc serve`, `icc doctor --model --memory-limit-kb`), else DEFAULT_ACTIVATION_BYTES (docs/reliability.md).
 */
import type {MxSymbol} from '../mxnet-symbol.js'

import {formatBytes} from '../../aws/progress.js'
import {ModelError} from '../../errors.js'

/** 4 GiB: several times what a large classifier needs at a large input (ResNet-152 at 224x224: ~30 MB). */
export const DEFAULT_ACTIVATION_BYTES = 4 * 1024 ** 3

/** The peak of a graph's tensor bytes for one image, and the node computed at it. */
export interface ActivationPeak {
  bytes: number
  /** The node (name and op) computed at the peak, and its output's shape. */
  node: string
  op: string
  shape: number[]
}

const bytesOf = (shape: number[] | undefined) => 4 * (shape ?? []).reduce((a, b) => a * b, 1)

/** The peak bytes of the tensors held at once; `dataIndex` is the data input's node. */
export function activationPeak(sym: MxSymbol, nodeShapes: (number[] | undefined)[], dataIndex: number): ActivationPeak {
  const lastUse = new Map<number, number>()
  for (const [i, n] of sym.nodes.entries()) for (const [j] of n.inputs) lastUse.set(j, i)
  for (const [j] of sym.heads) lastUse.set(j, sym.nodes.length)
  const held = (j: number) => (sym.nodes[j].op !== 'null' || j === dataIndex ? bytesOf(nodeShapes[j]) : 0)
  let live = dataIndex >= 0 ? held(dataIndex) : 0
  let peak = {bytes: live, node: Math.max(dataIndex, 0)}
  for (const [i, n] of sym.nodes.entries()) {
    if (n.op === 'null') continue
    live += held(i)
    if (live > peak.bytes) peak = {bytes: live, node: i}
    for (const j of new Set([i, ...n.inputs.map(([k]) => k)])) if ((lastUse.get(j) ?? i) <= i) live -= held(j)
  }

  const node = sym.nodes[peak.node]
  return {bytes: peak.bytes, node: node.name, op: node.op, shape: nodeShapes[peak.node] ?? []}
}

/** BAD_SYMBOL when the peak is over `bound`, naming the node and its output's size. */
export function checkActivations(peak: ActivationPeak, bound: number, source: string): void {
  if (peak.bytes <= bound) return
  const {shape} = peak
  throw new ModelError(
    'BAD_SYMBOL',
    `${source}: ${peak.op} node "${peak.node}" makes a ${shape.join('x')} tensor (${formatBytes(bytesOf(shape))}); the graph needs ${formatBytes(peak.bytes)} for its tensors per image, over the ${formatBytes(bound)} allowed`,
    {
      details: {activationBytes: peak.bytes, boundBytes: bound, node: peak.node, shape},
      suggestions: [
        "Check the node's attributes (kernel, pad, stride, num_filter) and the input shape (model-shapes.json, --input-shape): as written, the graph cannot run in this memory.",
        'If the model is right, give it more memory (--memory-limit-kb, LocalInferenceServiceMemoryLimitKB).',
      ],
    },
  )
}
