/**
 * A plan's two ways out: `encodePlan` encodes the whole model in memory; `writePlan` streams it to a file, the graph
 * first and then each initializer as its bytes are asked for, so that converting holds no copy of the weights beyond
 * the params file's bytes (protobuf lets a message's fields come in any order, so the initializers may follow the
 * graph's other fields).
 */
import {type FileHandle, open} from 'node:fs/promises'
import {basename} from 'node:path'
import onnxProto from 'onnx-proto'

import type {ExportResult, Plan, PlannedInit} from './types.js'

import {ModelError} from '../../errors.js'

const {onnx} = onnxProto
const {FLOAT} = onnx.TensorProto.DataType

export interface WriteResult extends Omit<ExportResult, 'bytes'> {
  /** Bytes written. */
  length: number
}

/** A plan's parts and what it tells the caller (ExportResult without the bytes). */
function resultOf(p: Plan): Omit<ExportResult, 'bytes'> & Pick<Plan, 'inits' | 'model'> {
  const {activation, inits, inputName, model, outputNames, outputShapes} = p
  return {activation, inits, inputName, model, outputNames, outputShapes}
}

/** The model encoded in memory. */
export function encodePlan(p: Plan): ExportResult {
  const {inits, model, ...rest} = resultOf(p)
  const initializer = inits.map((t) => ({dataType: FLOAT, dims: t.dims, name: t.name, rawData: finite(t, t.bytes())}))
  const full = onnx.ModelProto.create({...model, graph: {...model.graph, initializer}})
  return {bytes: onnx.ModelProto.encode(full).finish(), ...rest}
}

/**
 * Where writeModel puts the initializers of at least `minBytes`: in the file `path` beside the model (the model names
 * it by its base name), each at an offset aligned to 4 KiB, so that ONNX Runtime maps them instead of reading them
 * into memory with the model's protobuf.
 */
export interface ExternalData {
  minBytes: number
  path: string
}

/** Alignment of the external initializers: ONNX Runtime maps the ones at a multiple of the page size. */
export const EXTERNAL_ALIGN = 4096

/** Initializers at least this big go to an external data file (smaller ones stay in the model: one page at most). */
export const EXTERNAL_MIN_BYTES = 4096

/** The first offset at or after `end` where an external initializer may start. */
export function alignedOffset(end: number): number {
  return Math.ceil(end / EXTERNAL_ALIGN) * EXTERNAL_ALIGN
}

/** `header` of a tensor whose `length` bytes lie at `offset` in the file `location` (beside the model). */
export function externalHeader(
  header: onnxProto.onnx.ITensorProto,
  location: string,
  offset: number,
  length: number,
): onnxProto.onnx.ITensorProto {
  const externalData = [
    {key: 'location', value: location},
    {key: 'offset', value: String(offset)},
    {key: 'length', value: String(length)},
  ]
  return {...header, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL, externalData}
}

/** A plan (or a part of one, splitPlan) streamed to `path` (created or truncated); big initializers to `external`. */
export async function writePlan(p: Plan, path: string, external?: ExternalData): Promise<WriteResult> {
  const {inits, model, ...rest} = resultOf(p)
  const tensors = inits.map((t) => {
    const n = byteLength(t.dims)
    const bytes = () => {
      const b = t.bytes()
      if (b.length !== n)
        throw new ModelError('BAD_PARAMS', `${t.name}: ${b.length} bytes for dims ${t.dims.join('x')}`)
      return finite(t, b)
    }

    return {bytes, header: {dataType: FLOAT, dims: t.dims, name: t.name}, length: n}
  })
  return {length: await writeModel(model, tensors, path, external), ...rest}
}

/** An initializer to stream: its TensorProto without raw_data, and raw_data's bytes (asked for when written). */
export interface StreamedTensor {
  /** raw_data, `length` bytes (absent: the tensor has none, e.g. its data is external or in header). */
  bytes?: () => Uint8Array
  header: onnxProto.onnx.ITensorProto
  length: number
}

/**
 * `model` (its graph without initializers) and then `tensors` as the graph's initializers, streamed to `path`
 * (created or truncated), one tensor's bytes at a time; those of at least `external.minBytes` to `external.path`.
 * Returns the bytes written to `path`.
 */
export async function writeModel(
  model: onnxProto.onnx.IModelProto,
  tensors: StreamedTensor[],
  path: string,
  external?: ExternalData,
): Promise<number> {
  const {graph, ...top} = model
  const head = onnx.ModelProto.encode(onnx.ModelProto.create(top)).finish()
  const graphHead = onnx.GraphProto.encode(onnx.GraphProto.create({...graph!, initializer: []})).finish()
  const headers = initHeaders(tensors, external)
  const entryLength = (h: InitHeader) => h.header.length + (h.offset === undefined ? h.rawTag.length + h.n : 0)
  const graphLength = headers.reduce((s, h) => s + fieldLength(entryLength(h)), graphHead.length)
  const file = await open(path, 'w')
  const data = external && headers.some((h) => h.offset !== undefined) ? await open(external.path, 'w') : undefined
  let length = 0
  const write = async (bytes: Uint8Array) => {
    await writeAt(file, bytes, length)
    length += bytes.length
  }

  try {
    await write(concat([head, Uint8Array.of(0x3a), varint(graphLength), graphHead]))
    for (const [i, h] of headers.entries()) {
      const bytes = tensors[i].bytes?.()
      if (bytes && bytes.length !== h.n) {
        throw new ModelError('BAD_PARAMS', `${tensors[i].header.name}: ${bytes.length} bytes, ${h.n} expected`)
      }

      const inline = h.offset === undefined
      await write(concat([Uint8Array.of(0x2a), varint(entryLength(h)), h.header, inline ? h.rawTag : new Uint8Array()]))
      // the weights themselves are written as they come (from the params file's bytes), never copied
      if (bytes && inline) await write(bytes)
      else if (bytes) await writeAt(data!, bytes, h.offset!)
    }
  } finally {
    await file.close()
    await data?.close()
  }

  return length
}

interface InitHeader {
  /** The TensorProto of dims, type and name (and, when external, where its data lies). */
  header: Uint8Array
  n: number
  /** Where its bytes lie in the external data file; undefined: in the model (raw_data after the header). */
  offset?: number
  rawTag: Uint8Array
}

/** Each initializer's header: field 5 of GraphProto = a TensorProto, then raw_data (field 9) or a data reference. */
function initHeaders(tensors: StreamedTensor[], external?: ExternalData): InitHeader[] {
  let end = 0
  return tensors.map((t) => {
    const n = t.bytes ? t.length : 0
    const rawTag = t.bytes ? concat([Uint8Array.of(0x4a), varint(n)]) : new Uint8Array(0)
    if (!external || !t.bytes || n < external.minBytes)
      return {header: onnx.TensorProto.encode(t.header).finish(), n, rawTag}
    const offset = alignedOffset(end)
    end = offset + n
    const header = onnx.TensorProto.encode(externalHeader(t.header, basename(external.path), offset, n)).finish()
    return {header, n, offset, rawTag}
  })
}

async function writeAt(file: FileHandle, bytes: Uint8Array, offset: number): Promise<void> {
  let done = 0
  while (done < bytes.length) {
    done += (await file.write(bytes, done, bytes.length - done, offset + done)).bytesWritten
  }
}

/**
 * The bytes of a float32 initializer, when every value is finite: a NaN or infinite weight (its exponent bits all
 * set) makes the model answer NaN, which is no probability and no JSON, so it is refused (BAD_PARAMS naming it).
 */
function finite(t: PlannedInit, bytes: Uint8Array): Uint8Array {
  for (let i = 3; i < bytes.length; i += 4) {
    if ((bytes[i] & 0x7f) === 0x7f && bytes[i - 1] & 0x80) {
      const view = new DataView(bytes.buffer, bytes.byteOffset + i - 3, 4)
      throw new ModelError(
        'BAD_PARAMS',
        `parameter ${t.name} holds ${view.getFloat32(0, true)} at value ${(i - 3) / 4} of ${bytes.length / 4}`,
        {
          details: {index: (i - 3) / 4, name: t.name},
          suggestions: [
            'Training diverged or the file is damaged: export the model again from a checkpoint whose weights are finite.',
          ],
        },
      )
    }
  }

  return bytes
}

/** Bytes of a float32 tensor of these dimensions. */
export function byteLength(dims: number[]): number {
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
