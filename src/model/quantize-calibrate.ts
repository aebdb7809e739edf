/**
 * The calibration of int8 quantization (./quantize.ts), with a fraction of the weights in memory: the weights file
 * the calibration's initializers lie in (appended one tensor at a time, 4 KiB aligned, so that ONNX Runtime maps
 * them rather than copying them); the calibration graph (the float graph up to the last tensor to measure, plus a
 * ReduceMin and a ReduceMax of each) cut into parts of at most a quarter of the weights (./onnx-export/split.ts
 * cutGraph), each streamed to a file and run by a session of its own on every calibration image, so that one
 * part's weights are mapped at a time (ResNet-200: one session mapped all 247 MB of them, a 408 MB peak; now at
 * most 32 MB at a time, and the float conversion before it is the peak); the tensor one part passes to the next,
 * kept for every image in a file; and each tensor's lowest and highest value.
 */
import {closeSync, openSync, rmSync, writeSync} from 'node:fs'
import {join} from 'node:path'
import onnxProto from 'onnx-proto'

import {BugError, ModelError} from '../errors.js'
import {
  alignedOffset,
  cutGraph,
  EXTERNAL_MIN_BYTES,
  externalHeader,
  type StreamedTensor,
  valueInfo,
  writeModel,
} from './onnx-export/index.js'
import {type LazyTensor, readAt} from './onnx-lazy.js'
import {partBytesFor} from './optimize.js'
import {type Backend, type Feed, openSession} from './session.js'

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

/**
 * A file of tensors in the directory `dir` (private to this quantization): the calibration model's weights
 * (`weights.data`), or what one part passes to the next. Tensors are appended 4 KiB aligned and read back when asked.
 */
export class WeightFile {
  private closed = false
  private readonly fd: number
  private length = 0
  private readonly path: string

  constructor(dir: string, name = WEIGHTS) {
    this.path = join(dir, name)
    this.fd = openSync(this.path, 'w+', 0o600)
  }

  /** Close the file (once; again does nothing), and with `remove` delete it. */
  close(remove = false): void {
    if (this.closed) return
    this.closed = true
    closeSync(this.fd)
    if (remove) rmSync(this.path, {force: true})
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
      // a file this quantization wrote: short is a bug
      if (readAt(fd, out, offset) < length) throw new BugError(`${this.path} ended early.`)
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

/** The nodes of `nodes` that lead to a tensor of `names` (what follows the last one is left out). */
function neededNodes(nodes: NodeProto[], names: Set<string>): NodeProto[] {
  const needed = new Set(names)
  const kept: NodeProto[] = []
  for (const n of nodes.toReversed()) {
    if (!n.output!.some((o) => needed.has(o))) continue
    kept.push(n)
    for (const i of n.input!) needed.add(i)
  }

  return kept.toReversed()
}

/**
 * A ReduceMin and a ReduceMax of each tensor of `made` (in the order they are made) that is in `names`, the deepest
 * first. Why that order: ONNX Runtime runs nodes in the order of a depth-first walk up from the graph's leaves, the
 * leaf listed last first; so the shallowest tensor's reductions run right after it is made, the next one's after the
 * nodes up to it, and each activation is freed as it would be without them. Listed in the other order, every
 * measured activation was alive at once until the end of the run (ResNet-50: +80 MB).
 */
function reductions(made: string[], names: Set<string>): NodeProto[] {
  const keepdims = {i: 0, name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT}
  return made
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
}

export interface CalibrationGraph {
  /** The model (its graph's nodes, inputs and outputs are replaced). */
  model: onnxProto.onnx.IModelProto
  nodes: NodeProto[]
  /** Its initializers, those big enough already in the weights file. */
  inits: Map<string, LazyTensor>
}

export interface CalibrateOptions {
  backend?: Backend
  calibration: CalibrationImages | Float32Array[]
  inputShape: [number, number, number]
  /** Weights per part at most (default: ./optimize.ts partBytesFor of the weights). */
  partBytes?: number
}

/** One part of the calibration graph: its nodes, its input, the tensor it passes on (none for the last one). */
interface CalibrationPart {
  input: string
  nodes: NodeProto[]
  output?: string
}

/** The nodes leading to `names`, cut into parts of at most `partBytes` of weights (cutGraph). */
function calibrationParts(g: CalibrationGraph, names: Set<string>, partBytes?: number): CalibrationPart[] {
  const nodes = neededNodes(g.nodes, names)
  const input = g.model.graph!.input![0].name!
  const weights = usedInitializers(nodes, g.inits).reduce((sum, t) => sum + t.rawLength, 0)
  const spans = cutGraph(
    {initBytes: (name) => g.inits.get(name)?.rawLength, input, nodes, outputs: []},
    partBytes ?? partBytesFor(weights),
  )
  return spans.map((p) => ({input: p.input, nodes: nodes.slice(p.start, p.end), output: p.output}))
}

/**
 * Lowest and highest value of each tensor in `names` over the calibration images, running the float model `g` one
 * part at a time (calibrationParts), each part on every image, so that only one part's weights are mapped at once;
 * the tensor that flows from one part to the next is kept for every image in a file of the directory `dir` (where
 * the parts' models are written too). The native runtime maps each part's weights from the weights file; the wasm
 * runtime gets them inside the part's model, as it reads a model into memory anyway.
 */
export async function calibrate(
  g: CalibrationGraph,
  names: string[],
  dir: string,
  options: CalibrateOptions,
): Promise<Map<string, {max: number; min: number}>> {
  const ranges = new Map(names.map((n) => [n, {max: -Infinity, min: Infinity}]))
  const {calibration} = options
  const count = Array.isArray(calibration) ? calibration.length : calibration.count
  const [c, h, w] = options.inputShape
  let feed: (i: number) => Promise<Feed> = async (i) => ({
    data: Array.isArray(calibration) ? calibration[i] : await calibration.image(i),
    dims: [1, c, h, w],
  })
  const handoffs: Handoff[] = []
  try {
    const wanted = new Set(names)
    for (const [k, part] of calibrationParts(g, wanted, options.partBytes).entries()) {
      const previous = handoffs.at(-1)
      const graphInput = k === 0 ? g.model.graph!.input! : [valueInfo(part.input, [...previous!.dims])]
      const path = join(dir, `calibration.${k}.onnx`)
      const measured = await writePart(g, part, graphInput, wanted, path, options.backend)
      const handoff = part.output === undefined ? undefined : new Handoff(dir, k)
      if (handoff) handoffs.push(handoff)
      await runPart(path, part, {count, feed, handoff, measured, ranges}, options.backend)
      previous?.close()
      if (handoff) feed = async (i) => ({data: handoff.read(i), dims: handoff.dims})
      // the part's outputs and the images are garbage (under --expose-gc, as the runner and the bench run)
      ;(globalThis as {gc?: () => void}).gc?.()
    }
  } finally {
    for (const h of handoffs) h.close()
  }

  return ranges
}

/**
 * Write the model of one part to `path`: its nodes, a ReduceMin and a ReduceMax of each tensor of `names` it makes
 * (or takes as the model's input), those as outputs with the tensor it passes on (its graph's input is `input`).
 * Returns the tensors it measures.
 */
async function writePart(
  g: CalibrationGraph,
  part: CalibrationPart,
  input: onnxProto.onnx.IValueInfoProto[],
  names: Set<string>,
  path: string,
  backend?: Backend,
): Promise<string[]> {
  // the part's input is measured where it is made: in the part before, unless it is the model's input
  const first = part.input === g.model.graph!.input![0].name
  const made = [...(first ? [part.input] : []), ...part.nodes.flatMap((n) => n.output!)]
  const node = [...part.nodes, ...reductions(made, names)]
  const measured = made.filter((name) => names.has(name))
  const fetches = [
    ...measured.flatMap((name) => [`${name}__Min`, `${name}__Max`]),
    ...(part.output === undefined ? [] : [part.output]),
  ]
  const output = fetches.map((name) => ({name, type: {tensorType: {elemType: onnx.TensorProto.DataType.FLOAT}}}))
  const graph = {...g.model.graph, initializer: [], input, node, output}
  const external = (backend ?? 'native') === 'native'
  const inits = usedInitializers(part.nodes, g.inits).map((t) => calibrationTensor(t, external))
  await writeModel({...g.model, graph}, inits, path)
  return measured
}

/** What runPart runs on and keeps. */
interface PartRun {
  count: number
  feed: (i: number) => Promise<Feed>
  handoff?: Handoff
  /** The tensors the part measures (writePart). */
  measured: string[]
  ranges: Map<string, {max: number; min: number}>
}

/** Run one part's model (writePart) on every image: the ranges of what it measures, what it passes on kept. */
async function runPart(path: string, part: CalibrationPart, run: PartRun, backend?: Backend): Promise<void> {
  // no memory arena: it keeps each run's activations on top of the next (ResNet-50: +86 MB from the second run on)
  const session = await openSession(
    path,
    {enableCpuMemArena: false, graphOptimizationLevel: 'basic', logSeverityLevel: 3},
    backend,
  )
  try {
    for (let i = 0; i < run.count; i++) {
      const out = await session.runShaped({[session.inputNames[0]]: await run.feed(i)})
      for (const name of run.measured) {
        const r = run.ranges.get(name)!
        r.min = Math.min(r.min, out[`${name}__Min`].data[0])
        r.max = Math.max(r.max, out[`${name}__Max`].data[0])
      }

      if (part.output !== undefined) run.handoff!.write(out[part.output])
    }
  } finally {
    await session.release()
  }
}

/** The tensor one part passes to the next, for every calibration image, in a WeightFile of its own. */
class Handoff {
  dims: readonly number[] = []
  private readonly file: WeightFile
  private readonly images: LazyTensor[] = []

  constructor(dir: string, k: number) {
    this.file = new WeightFile(dir, `handoff.${k}.data`)
  }

  /** Close and remove the file (once; again does nothing). */
  close(): void {
    this.file.close(true)
  }

  /** The tensor of image `i`. */
  read(i: number): Float32Array {
    const bytes = this.images[i].raw!()
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4)
  }

  /** Keep `t` as the next image's tensor (every image's has the same dims). */
  write(t: Feed): void {
    if (!(t.data instanceof Float32Array)) {
      throw new ModelError('QUANTIZE_FAILED', `Cannot calibrate in parts: the tensor between two parts is not float32.`)
    }

    this.dims = t.dims
    this.images.push(this.file.put({}, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)))
  }
}
