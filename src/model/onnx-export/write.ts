/**
 * A plan's two ways out: `encodePlan` encodes the whole model in memory; `writePlan` streams it to a file, the graph
 * first and then each initializer as its bytes are asked for, so that converting holds no copy of the weights beyond
 * the params file's bytes (protobuf lets a message's fields come in any order, so the initializers may follow the
 * graph's other fields).
 */
import {open} from 'node:fs/promises'
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

/** A plan (or a part of one, splitPlan) streamed to `path` (created or truncated). */
export async function writePlan(p: Plan, path: string): Promise<WriteResult> {
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
  return {length: await writeModel(model, tensors, path), ...rest}
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
 * (created or truncated), one tensor's bytes at a time. Returns the bytes written.
 */
export async function writeModel(
  model: onnxProto.onnx.IModelProto,
  tensors: StreamedTensor[],
  path: string,
): Promise<number> {
  const {graph, ...top} = model
  const head = onnx.ModelProto.encode(onnx.ModelProto.create(top)).finish()
  const graphHead = onnx.GraphProto.encode(onnx.GraphProto.create({...graph!, initializer: []})).finish()
  // each initializer: field 5 of GraphProto = a TensorProto of dims, type and name, then raw_data (field 9)
  const headers = tensors.map((t) => {
    const header = onnx.TensorProto.encode(t.header).finish()
    const rawTag = t.bytes ? concat([Uint8Array.of(0x4a), varint(t.length)]) : new Uint8Array(0)
    return {header, n: t.bytes ? t.length : 0, rawTag}
  })
  const entryLength = (h: (typeof headers)[number]) => h.header.length + h.rawTag.length + h.n
  const graphLength = headers.reduce((s, h) => s + fieldLength(entryLength(h)), graphHead.length)
  const file = await open(path, 'w')
  let length = 0
  const write = async (bytes: Uint8Array) => {
    let done = 0
    while (done < bytes.length) done += (await file.write(bytes, done, bytes.length - done)).bytesWritten
    length += bytes.length
  }

  try {
    await write(concat([head, Uint8Array.of(0x3a), varint(graphLength), graphHead]))
    for (const [i, h] of headers.entries()) {
      const bytes = tensors[i].bytes?.()
      if (bytes && bytes.length !== h.n) {
        throw new ModelError('BAD_PARAMS', `${tensors[i].header.name}: ${bytes.length} bytes, ${h.n} expected`)
      }

      await write(concat([Uint8Array.of(0x2a), varint(entryLength(h)), h.header, h.rawTag]))
      if (bytes) await write(bytes)
    }
  } finally {
    await file.close()
  }

  return length
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
