/**
 * Reader of MXNet `.params` files (the NDArray list format written by `mx.nd.save` / `save_checkpoint`).
 *
 * Layout (little-endian): uint64 magic 0x112, uint64 reserved, uint64 array count, the arrays, uint64 name count,
 * the names (uint64 length + UTF-8 bytes each). Each array is one record in one of the formats MXNet ever wrote:
 * - V3 (uint32 0xF993FACA, numpy shape semantics), V2 (0xF993FAC9, MXNet >= 1.0): int32 storage type, shape
 *   (uint32/int32 ndim + int64 dims), context (int32 dev_type, int32 dev_id), int32 type flag, raw data;
 * - V1 (0xF993FAC8, MXNet 0.11): the same without the storage type;
 * - legacy (no magic): uint32 ndim + uint32 dims, context, type flag, data.
 * Float32/float16/float64 data is returned as Float32Array. Every size is checked against the bytes left before
 * anything is allocated, so a truncated or hostile file is a ModelError, never a crash or a huge allocation.
 *
 * With `{lazy: true}` nothing is decoded up front: each array records where its data lies in the file, `data`
 * decodes it on each access (kept by no one), and `raw()` gives the float32 little-endian bytes ONNX stores, a view
 * of the file itself when it holds float32. That is how conversion streams (./onnx-export/, writeOnnx): the file's
 * bytes are the only copy of the weights it holds.
 */
import {ModelError} from '../errors.js'

export const LIST_MAGIC = 0x1_12
export const RECORD_MAGIC = {V1: 0xf9_93_fa_c8, V2: 0xf9_93_fa_c9, V3: 0xf9_93_fa_ca} as const
export type RecordFormat = 'legacy' | 'V1' | 'V2' | 'V3'
export type ParamDType = 'float16' | 'float32' | 'float64'
/** MXNet's type flags. */
export const TYPE_FLAG: Record<ParamDType, number> = {float16: 2, float32: 0, float64: 1}
const FLAG_NAMES: Record<number, string> = {
  0: 'float32',
  1: 'float64',
  2: 'float16',
  3: 'uint8',
  4: 'int32',
  5: 'int8',
  6: 'int64',
  7: 'bool',
}
const MAX_NDIM = 32
/** The largest params file icc reads (Node.js reads a file of at most 2 GiB - 1 into one buffer). */
export const MAX_PARAMS_BYTES = 2 ** 31 - 1

export interface ParamArray {
  /** The values (decoded on each access when read lazily). */
  readonly data: Float32Array
  dtype: ParamDType
  format: RecordFormat
  /** `arg` / `aux` from the name prefix; `none` when the name had no prefix or there were no names. */
  kind: 'arg' | 'aux' | 'none'
  /** Name without the `arg:` / `aux:` prefix ('' when the file has no names). */
  name: string
  /** The values as float32 little-endian bytes (a view of the file's bytes when read lazily as float32). */
  raw(): Uint8Array
  shape: number[]
  /** Number of values. */
  size: number
}

export interface ReadParamsOptions {
  /** Decode nothing up front (see above). */
  lazy?: boolean
}

export interface ParamsFile {
  arrays: ParamArray[]
  /** The record format of the arrays ('mixed' if they differ, 'empty' when there are none). */
  format: 'empty' | 'mixed' | RecordFormat
  /** Arrays by bare name. */
  byName: Map<string, ParamArray>
}

class Cursor {
  pos = 0

  constructor(
    readonly view: DataView,
    readonly source: string,
  ) {}

  fail(what: string): never {
    throw new ModelError('BAD_PARAMS', `${this.source}: ${what} (at byte ${this.pos} of ${this.view.byteLength})`, {
      suggestions: [
        'The .params file is truncated or not an MXNet NDArray file; copy it again from the model archive.',
      ],
    })
  }

  i32(): number {
    this.need(4, 'an int32')
    const v = this.view.getInt32(this.pos, true)
    this.pos += 4
    return v
  }

  i64(): number {
    this.need(8, 'an int64')
    const v = this.view.getBigInt64(this.pos, true)
    this.pos += 8
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER))
      this.fail(`integer ${v} out of range`)
    return Number(v)
  }

  need(n: number, what: string): void {
    if (n < 0 || this.pos + n > this.view.byteLength) this.fail(`file ends inside ${what}`)
  }

  get remaining(): number {
    return this.view.byteLength - this.pos
  }

  u32(): number {
    this.need(4, 'a uint32')
    const v = this.view.getUint32(this.pos, true)
    this.pos += 4
    return v
  }

  u64(): number {
    this.need(8, 'a uint64')
    const v = this.view.getBigUint64(this.pos, true)
    this.pos += 8
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`size ${v} is absurd`)
    return Number(v)
  }
}

export function halfToFloat(h: number): number {
  const s = h & 0x80_00 ? -1 : 1
  const e = (h >> 10) & 0x1f
  const f = h & 0x3_ff
  if (e === 0) return s * 2 ** -14 * (f / 1024)
  if (e === 31) return f ? Number.NaN : s * Number.POSITIVE_INFINITY
  return s * 2 ** (e - 15) * (1 + f / 1024)
}

function readShape(c: Cursor, format: RecordFormat): number[] | undefined {
  let ndim: number
  if (format === 'legacy') ndim = c.u32()
  else if (format === 'V3') ndim = c.i32()
  else ndim = c.u32()
  if (format === 'V3' && ndim === -1) return undefined
  if (ndim < 0 || ndim > MAX_NDIM) c.fail(`array has ${ndim} dimensions`)
  if (ndim === 0 && format !== 'V3') return undefined
  const dims: number[] = []
  for (let i = 0; i < ndim; i++) {
    const d = format === 'legacy' ? c.u32() : c.i64()
    if (d < 0) c.fail(`negative dimension ${d}`)
    dims.push(d)
  }

  return dims
}

type RawArray = Omit<ParamArray, 'kind' | 'name'>

const WIDTH: Record<ParamDType, number> = {float16: 2, float32: 4, float64: 8}

function decode(view: DataView, start: number, size: number, dtype: ParamDType): Float32Array {
  const data = new Float32Array(size)
  let p = start
  if (dtype === 'float32') for (let i = 0; i < size; i++, p += 4) data[i] = view.getFloat32(p, true)
  else if (dtype === 'float64') for (let i = 0; i < size; i++, p += 8) data[i] = view.getFloat64(p, true)
  else for (let i = 0; i < size; i++, p += 2) data[i] = halfToFloat(view.getUint16(p, true))
  return data
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/** The float32 little-endian bytes of some values. */
export function le32(data: Float32Array): Uint8Array {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  if (littleEndian) return bytes
  const out = new Uint8Array(data.length * 4)
  const view = new DataView(out.buffer)
  for (const [i, v] of data.entries()) view.setFloat32(i * 4, v, true)
  return out
}

function lazyArray(
  c: Cursor,
  start: number,
  size: number,
  dtype: ParamDType,
  rest: Pick<RawArray, 'format' | 'shape'>,
) {
  const {view} = c
  return {
    ...rest,
    get data() {
      return decode(view, start, size, dtype)
    },
    dtype,
    raw: () =>
      dtype === 'float32'
        ? new Uint8Array(view.buffer, view.byteOffset + start, size * 4)
        : le32(decode(view, start, size, dtype)),
    size,
  }
}

function readArray(c: Cursor, index: number, lazy = false): RawArray | undefined {
  const first = c.u32()
  let format: RecordFormat
  switch (first) {
    case RECORD_MAGIC.V2: {
      format = 'V2'
      break
    }

    case RECORD_MAGIC.V3: {
      format = 'V3'
      break
    }

    case RECORD_MAGIC.V1: {
      format = 'V1'
      break
    }

    default: {
      format = 'legacy'
      c.pos -= 4
    }
  }

  if (format === 'V2' || format === 'V3') {
    const stype = c.i32()
    if (stype !== 0) {
      throw new ModelError(
        'SPARSE_PARAMS',
        `${c.source}: array #${index} uses sparse storage (type ${stype}); only dense arrays are supported`,
        {suggestions: ['Convert the array to dense storage (arr.tostype("default")) and save the model again.']},
      )
    }
  }

  const shape = readShape(c, format)
  if (shape === undefined) return undefined
  c.i32() // dev_type
  c.i32() // dev_id
  const flag = c.i32()
  let size = 1
  for (const d of shape) {
    size *= d
    if (size > c.remaining) c.fail(`array #${index} declares shape (${shape.join(',')}), larger than the file`)
  }

  const dtype = (['float32', 'float64', 'float16'] as const)[flag]
  if (dtype === undefined) {
    throw new ModelError('BAD_PARAMS', `${c.source}: array #${index} has type ${FLAG_NAMES[flag] ?? `flag ${flag}`}`, {
      suggestions: ['Only float32, float16 and float64 parameters are supported.'],
    })
  }

  c.need(size * WIDTH[dtype], `array #${index} data (${size} x ${dtype})`)
  const start = c.pos
  c.pos += size * WIDTH[dtype]
  if (lazy) return lazyArray(c, start, size, dtype, {format, shape})
  const data = decode(c.view, start, size, dtype)
  return {data, dtype, format, raw: () => le32(data), shape, size}
}

/** Parse a `.params` file. `source` names it in error messages. */
export function readParams(bytes: Uint8Array, source = 'params file', options: ReadParamsOptions = {}): ParamsFile {
  const c = new Cursor(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), source)
  if (bytes.byteLength < 16) c.fail('too short to be an MXNet .params file')
  const magic = c.u64()
  if (magic !== LIST_MAGIC) c.fail(`bad magic 0x${magic.toString(16)} (expected 0x112)`)
  c.u64() // reserved
  const count = c.u64()
  // The smallest record is 4 bytes (a legacy empty shape).
  if (count * 4 > c.remaining) c.fail(`declares ${count} arrays, more than the file can hold`)
  const raw: (RawArray | undefined)[] = []
  for (let i = 0; i < count; i++) raw.push(readArray(c, i, options.lazy))
  let names: string[] = []
  if (c.remaining > 0) {
    const n = c.u64()
    if (n !== 0 && n !== count) c.fail(`has ${count} arrays but ${n} names`)
    if (n * 8 > c.remaining) c.fail(`declares ${n} names, more than the file can hold`)
    const decoder = new TextDecoder()
    for (let i = 0; i < n; i++) {
      const len = c.u64()
      c.need(len, `name #${i}`)
      names.push(decoder.decode(bytes.subarray(c.pos, c.pos + len)))
      c.pos += len
    }
  } else names = []

  const arrays: ParamArray[] = []
  const byName = new Map<string, ParamArray>()
  for (const [i, r] of raw.entries()) {
    const full = names[i] ?? ''
    let kind: ParamArray['kind'] = 'none'
    let name = full
    if (full.startsWith('arg:')) [kind, name] = ['arg', full.slice(4)]
    else if (full.startsWith('aux:')) [kind, name] = ['aux', full.slice(4)]
    const a: ParamArray = r ? Object.assign(r, {kind, name}) : emptyArray(kind, name)
    arrays.push(a)
    if (name) byName.set(name, a)
  }

  const formats = new Set(raw.filter(Boolean).map((r) => r!.format))
  const format = formats.size === 0 ? 'empty' : formats.size === 1 ? [...formats][0] : 'mixed'
  return {arrays, byName, format}
}

function emptyArray(kind: ParamArray['kind'], name: string): ParamArray {
  const data = new Float32Array(0)
  return {data, dtype: 'float32', format: 'V2', kind, name, raw: () => le32(data), shape: [], size: 0}
}
