/**
 * The calibration of int8 quantization (./quantize.ts), with about one copy of the weights: the weights file the
 * calibration model's initializers lie in (appended one tensor at a time, 4 KiB aligned, so that ONNX Runtime maps
 * them rather than copying them), the calibration model (the float graph plus a ReduceMin and a ReduceMax of each
 * tensor to measure, streamed to a file), and the run over the calibration images that keeps each tensor's lowest
 * and highest value.
 */
import {closeSync, openSync, readSync, writeSync} from 'node:fs'
import {join} from 'node:path'
import onnxProto from 'onnx-proto'

import type {LazyTensor} from './onnx-lazy.js'

import {
  alignedOffset,
  EXTERNAL_MIN_BYTES,
  externalHeader,
  type StreamedTensor,
  writeModel,
} from './onnx-export/index.js'
import {type Backend, openSession} from './session.js'

const {onnx} = onnxProto
type NodeProto = onnxProto.onnx.INodeProto

/** Calibration images made one at a time, when the calibration gets to each (instead of an array of all). */
export interface CalibrationImages {
  count: number
  image(index: number): Promise<Float32Array>
}

const WEIGHTS = 'weights.data'

/** A tensor kept in the weights file: where its bytes lie. */
export interface SpilledTensor extends LazyTensor {
  offset: number
}

/** The calibration model's weights file in the directory `dir` (private to this quantization). */
export class WeightFile {
  private readonly fd: number
  private length = 0

  constructor(dir: string) {
    this.fd = openSync(join(dir, WEIGHTS), 'w+', 0o600)
  }

  close(): void {
    closeSync(this.fd)
  }

  /** Append `bytes` (the raw data of a tensor of `header`); the tensor, read back from the file when asked. */
  put(header: onnxProto.onnx.ITensorProto, bytes: Uint8Array): SpilledTensor {
    const offset = alignedOffset(this.length) // the page size ONNX Runtime maps at
    let done = 0
    while (done < bytes.length) done += writeSync(this.fd, bytes, done, bytes.length - done, offset + done)
    const {length} = bytes // not `bytes`: the tensor must not keep them alive
    this.length = offset + length
    const {fd} = this
    const raw = () => {
      const out = new Uint8Array(length)
      let got = 0
      while (got < out.length) got += readSync(fd, out, got, out.length - got, offset + got)
      return out
    }

    return {header, offset, raw, rawLength: length}
  }

  /** `t` in the file (as it is if there already, or small, or without raw data). */
  spill(t: LazyTensor): LazyTensor {
    if ('offset' in t || !t.raw || t.rawLength < EXTERNAL_MIN_BYTES) return t
    return this.put(t.header, t.raw())
  }
}

/** The initializers some node reads. */
export function usedInitializers<T extends LazyTensor>(nodes: NodeProto[], inits: Map<string, T>): T[] {
  const used = new Set(nodes.flatMap((n) => n.input!))
  return [...inits.values()].filter((t) => used.has(t.header.name!))
}

/** How the calibration model holds tensor `t`: external (in the weights file) or its own bytes. */
function calibrationTensor(t: LazyTensor, external: boolean): StreamedTensor {
  if (!external || !('offset' in t)) return {bytes: t.raw, header: t.header, length: t.rawLength}
  return {header: externalHeader(t.header, WEIGHTS, (t as SpilledTensor).offset, t.rawLength), length: 0}
}

/**
 * The calibration graph's nodes: those of `nodes` that lead to a tensor of `names` (what follows the last one is
 * left out), then a ReduceMin and a ReduceMax of each of those tensors, the deepest first. Why that order: ONNX
 * Runtime runs nodes in the order of a depth-first walk up from the graph's leaves, the leaf listed last first;
 * so the shallowest tensor's reductions run right after it is made, the next one's after the nodes up to it, and
 * each activation is freed as it would be without them. Listed in the other order, every measured activation was
 * alive at once until the end of the run (ResNet-50: +80 MB).
 */
function withReductions(inputs: onnxProto.onnx.IValueInfoProto[], nodes: NodeProto[], names: Set<string>): NodeProto[] {
  const needed = new Set(names)
  const kept: NodeProto[] = []
  for (const n of nodes.toReversed()) {
    if (!n.output!.some((o) => needed.has(o))) continue
    kept.push(n)
    for (const i of n.input!) needed.add(i)
  }

  const keepdims = {i: 0, name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT}
  const made = [...inputs.map((i) => i.name!), ...kept.toReversed().flatMap((n) => n.output!)]
  const reductions = made
    .filter((name) => names.has(name))
    .toReversed()
    .flatMap((name) =>
      (['Min', 'Max'] as const).map((m) => ({
        attribute: [keepdims],
        input: [name],
        name: `${name}__calibration_${m}`,
        opType: `Reduce${m}`,
        output: [`${name}__${m}`],
      })),
    )
  return [...kept.toReversed(), ...reductions]
}

export interface CalibrationGraph {
  /** The model (its graph's nodes, inputs and outputs are replaced). */
  model: onnxProto.onnx.IModelProto
  nodes: NodeProto[]
  /** Its initializers, those big enough already in the weights file. */
  inits: Map<string, LazyTensor>
}

/**
 * Lowest and highest value of each tensor in `names` over the calibration images, running the float model `g`
 * (written to `dir`, its weights mapped from the weights file on the native runtime; the wasm runtime gets them
 * inside the model, as it reads a model into memory anyway).
 */
export async function calibrate(
  g: CalibrationGraph,
  names: string[],
  dir: string,
  options: {backend?: Backend; calibration: CalibrationImages | Float32Array[]; inputShape: [number, number, number]},
): Promise<Map<string, {max: number; min: number}>> {
  const node = withReductions(g.model.graph!.input!, g.nodes, new Set(names))
  const fetches = names.flatMap((name) => [`${name}__Min`, `${name}__Max`])
  const output = fetches.map((name) => ({name, type: {tensorType: {elemType: onnx.TensorProto.DataType.FLOAT}}}))
  const graph = {...g.model.graph, initializer: [], node, output}
  const path = join(dir, 'calibration.onnx')
  const external = (options.backend ?? 'native') === 'native'
  const inits = usedInitializers(g.nodes, g.inits).map((t) => calibrationTensor(t, external))
  await writeModel({...g.model, graph}, inits, path)
  // no memory arena: it keeps each run's activations on top of the next (ResNet-50: +86 MB from the second run on)
  const session = await openSession(
    path,
    {enableCpuMemArena: false, graphOptimizationLevel: 'basic', logSeverityLevel: 3},
    options.backend,
  )
  const ranges = new Map(names.map((n) => [n, {max: -Infinity, min: Infinity}]))
  try {
    const [c, h, w] = options.inputShape
    const {calibration} = options
    const count = Array.isArray(calibration) ? calibration.length : calibration.count
    for (let i = 0; i < count; i++) {
      const image = Array.isArray(calibration) ? calibration[i] : await calibration.image(i)
      const out = await session.run({[session.inputNames[0]]: {data: image, dims: [1, c, h, w]}}, fetches)
      for (const name of names) {
        const r = ranges.get(name)!
        r.min = Math.min(r.min, out[`${name}__Min`][0])
        r.max = Math.max(r.max, out[`${name}__Max`][0])
      }
    }
  } finally {
    await session.release()
  }

  return ranges
}
