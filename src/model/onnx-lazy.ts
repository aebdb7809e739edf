/**
 * An ONNX model read without its weights: the graph is decoded, each initializer's raw_data is left where it lies
 * (in the file, read one tensor at a time when asked for, or in the caller's bytes), so that a model is never held
 * twice. Protobuf fields are walked by hand only down to raw_data; everything else is decoded by onnx-proto.
 */
import {closeSync, fstatSync, openSync, readSync} from 'node:fs'
import onnxProto from 'onnx-proto'

import {ModelError} from '../errors.js'

const {onnx} = onnxProto

/** An initializer: its TensorProto without raw_data (other data fields kept), and raw_data's bytes when asked. */
export interface LazyTensor {
  header: onnxProto.onnx.ITensorProto
  /** raw_data, read when called (absent: the tensor has none). */
  raw?: () => Uint8Array
  /** raw_data's length in bytes (0 without). */
  rawLength: number
}

export interface LazyModel {
  /** Stop reading the file (the tensors' `raw` no longer work). */
  close(): void
  inits: LazyTensor[]
  /** The model, its graph without initializers. */
  model: onnxProto.onnx.ModelProto
}

/** Bytes at an offset, from a file or from memory. */
interface Source {
  read(offset: number, length: number): Uint8Array
  size: number
}

const GRAPH = 7 // ModelProto.graph
const INITIALIZER = 5 // GraphProto.initializer
const RAW_DATA = 9 // TensorProto.raw_data

/** Fill `out` from `position` of the file `fd`, as far as the file goes; how many bytes were read. */
export function readAt(fd: number, out: Uint8Array, position: number): number {
  let done = 0
  while (done < out.length) {
    const n = readSync(fd, out, done, out.length - done, position + done)
    if (n === 0) break
    done += n
  }

  return done
}

function fileSource(fd: number): Source {
  return {
    read(offset, length) {
      const out = new Uint8Array(length)
      return out.subarray(0, readAt(fd, out, offset))
    },
    size: fstatSync(fd).size,
  }
}

function varintAt(b: Uint8Array, at: number): [number, number] {
  let value = 0
  let scale = 1
  for (let p = at; p < b.length; p++) {
    value += (b[p] & 0x7f) * scale
    if (b[p] < 0x80) return [value, p + 1]
    scale *= 0x80
  }

  throw new ModelError('BAD_ONNX', 'The ONNX file is truncated or not protobuf (a varint runs past its end).')
}

/** One field of a message: its number, and where it starts (tag), its payload starts and it ends. */
interface Field {
  end: number
  number: number
  payload: number
  start: number
  wire: number
}

/**
 * The fields of the message between `start` and `end` of `src`.
 * @yields each field, in the file's order
 */
function* fields(src: Source, start: number, end: number): Generator<Field> {
  let at = start
  while (at < end) {
    const head = src.read(at, Math.min(20, end - at))
    const [tag, p] = varintAt(head, 0)
    const wire = tag & 7
    let payload = at + p
    let next: number
    switch (wire) {
      case 0: {
        next = at + varintAt(head, p)[1]
        break
      }

      case 1: {
        next = payload + 8
        break
      }

      case 2: {
        const [length, q] = varintAt(head, p)
        payload = at + q
        next = payload + length
        break
      }

      case 5: {
        next = payload + 4
        break
      }

      default: {
        throw new ModelError('BAD_ONNX', `The ONNX file has a protobuf field of wire type ${wire} at byte ${at}.`)
      }
    }

    if (next > end)
      throw new ModelError('BAD_ONNX', `The ONNX file is truncated: a field at byte ${at} runs past its end.`)
    yield {end: next, number: Math.floor(tag / 8), payload, start: at, wire}
    at = next
  }
}

/** An initializer whose message lies at `f`: everything but raw_data decoded, raw_data where it is. */
function lazyTensor(src: Source, f: Field): LazyTensor {
  const rest: Uint8Array[] = []
  let raw: Field | undefined
  for (const g of fields(src, f.payload, f.end)) {
    if (g.number === RAW_DATA && g.wire === 2) raw = g
    else rest.push(src.read(g.start, g.end - g.start))
  }

  const header = onnx.TensorProto.decode(Buffer.concat(rest))
  if (!raw) return {header, rawLength: 0}
  const {end, payload} = raw
  return {header, raw: () => src.read(payload, end - payload), rawLength: end - payload}
}

/** Read `source` (a path, or the model's bytes), leaving its initializers' raw_data unread (see the module comment). */
export function readLazyModel(source: string | Uint8Array): LazyModel {
  const fd = typeof source === 'string' ? openSync(source, 'r') : undefined
  const src: Source =
    fd === undefined
      ? {read: (o, n) => (source as Uint8Array).subarray(o, o + n), size: (source as Uint8Array).length}
      : fileSource(fd)
  try {
    const top: Uint8Array[] = []
    const graph: Uint8Array[] = []
    const inits: LazyTensor[] = []
    for (const f of fields(src, 0, src.size)) {
      if (f.number !== GRAPH || f.wire !== 2) {
        top.push(src.read(f.start, f.end - f.start))
        continue
      }

      for (const g of fields(src, f.payload, f.end)) {
        if (g.number === INITIALIZER && g.wire === 2) inits.push(lazyTensor(src, g))
        else graph.push(src.read(g.start, g.end - g.start))
      }
    }

    const model = onnx.ModelProto.decode(Buffer.concat(top))
    model.graph = onnx.GraphProto.decode(Buffer.concat(graph))
    return {close: () => fd !== undefined && closeSync(fd), inits, model}
  } catch (error) {
    if (fd !== undefined) closeSync(fd)
    throw error
  }
}
