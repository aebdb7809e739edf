/**
 * The host <-> runner wire protocol of `icc serve`.
 *
 * Host and runner talk over one bidirectional pipe (the runner's fd 3) in binary, length-prefixed frames:
 *
 *   u32 BE header length | u32 BE payload length | header (UTF-8 JSON, small) | payload (raw bytes)
 *
 * The payload carries the image bytes (host -> runner) and the float32 probabilities (runner -> host) as they
 * are: no JSON arrays, no base64. Headers are a few dozen bytes of JSON (request id, content type, timings).
 */
import type {Writable} from 'node:stream'

/** Header of a frame sent by the host. */
export type HostMessage = {contentType?: string; id: number; t: 'infer'}

/** What the runner reports once the model is loaded and warmed up. */
export interface RunnerReadyInfo {
  /** [C, H, W] of one image. */
  inputShape: [number, number, number]
  inputName: string
  labels?: string[]
  loadMs: number
  modelHash: string
  numClasses: number
  onnxPath: string
  outputName: string
  /** Peak RSS of the runner after load + warm-up (KiB, VmHWM). */
  peakRssKb: number
  provider: 'cpu' | 'cuda'
  rssKb: number
  /** The ONNX Runtime that runs the model: onnxruntime-node (native) or onnxruntime-web (wasm). */
  runtime: 'native' | 'wasm'
  summary: Record<string, unknown>
  warmupMs: number
  warnings: string[]
}

/** Header of a frame sent by the runner. */
export type RunnerMessage =
  | {code: string; id: number; message: string; t: 'error'}
  /** The runner started decoding this request (its memory was admitted): what the host blames a memory kill on. */
  | {id: number; t: 'decoding'}
  | {code: string; details?: Record<string, unknown>; kind: string; message: string; suggestions?: string[]; t: 'fatal'}
  | {batch?: number; decodeMs: number; id: number; inferenceMs: number; t: 'result'}
  | {info: RunnerReadyInfo; t: 'ready'}

export interface Frame<H> {
  header: H
  payload: Buffer
}

const EMPTY = Buffer.alloc(0)

/**
 * Write one frame; the payload buffer is handed to the stream as is (no concatenation copy). Prefix and payload
 * leave in one `writev` (the stream is corked around them): written apart, the reader could wake up for the prefix
 * alone and sleep again until the payload came. A caller may cork around several frames to send them together.
 */
export function writeFrame(stream: Writable, header: object, payload: Uint8Array = EMPTY): boolean {
  const json = Buffer.from(JSON.stringify(header), 'utf8')
  const prefix = Buffer.allocUnsafe(8 + json.length)
  prefix.writeUInt32BE(json.length, 0)
  prefix.writeUInt32BE(payload.byteLength, 4)
  json.copy(prefix, 8)
  if (payload.byteLength === 0) return stream.write(prefix)
  stream.cork()
  try {
    stream.write(prefix)
    return stream.write(payload)
  } finally {
    stream.uncork()
  }
}

/** Largest frame accepted (guards against a corrupted stream allocating without bound). */
export const MAX_FRAME_BYTES = 1024 * 1024 * 1024

/**
 * Incremental frame decoder: feed it chunks as they arrive, get whole frames back. Buffers only the bytes of the
 * frame being assembled.
 */
export class FrameDecoder<H> {
  private chunks: Buffer[] = []
  private length = 0

  constructor(private readonly onFrame: (frame: Frame<H>) => void) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk)
    this.length += chunk.length
    for (;;) {
      if (this.length < 8) return
      const head = this.peek(8)
      const headerLength = head.readUInt32BE(0)
      const payloadLength = head.readUInt32BE(4)
      const total = 8 + headerLength + payloadLength
      if (total > MAX_FRAME_BYTES) throw new Error(`protocol error: frame of ${total} bytes`)
      if (this.length < total) return
      const all = this.take(total)
      const header = JSON.parse(all.subarray(8, 8 + headerLength).toString('utf8')) as H
      this.onFrame({header, payload: all.subarray(8 + headerLength)})
    }
  }

  private peek(n: number): Buffer {
    if (this.chunks[0].length >= n) return this.chunks[0]
    const merged = Buffer.concat(this.chunks)
    this.chunks = [merged]
    return merged
  }

  private take(n: number): Buffer {
    const first = this.chunks[0].length >= n ? this.chunks[0] : Buffer.concat(this.chunks)
    const out = first.subarray(0, n)
    const rest = first.subarray(n)
    this.chunks = first === this.chunks[0] ? [rest, ...this.chunks.slice(1)] : [rest]
    if (this.chunks[0].length === 0) this.chunks.shift()
    this.length -= n
    return out
  }
}

/** View a payload as float32 values (copies only when the bytes are not 4-byte aligned). */
export function payloadToFloat32(payload: Buffer): Float32Array {
  if (payload.byteOffset % 4 === 0) return new Float32Array(payload.buffer, payload.byteOffset, payload.length / 4)
  const copy = new Uint8Array(payload)
  return new Float32Array(copy.buffer, 0, copy.length / 4)
}
