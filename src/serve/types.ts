/**
 * Contracts between the parts of `icc serve`: the host (HTTP, admission, supervision), the protocol front ends
 * (native HTTP routes, the Greengrass IPC endpoint) and the clients.
 */

/** Largest request body (image) `icc serve` accepts unless told otherwise (`--max-body-bytes`): 20 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024

/**
 * Most images per ONNX Runtime run unless told otherwise (`--max-batch`): requests already waiting in the runner
 * when ONNX Runtime is free run together (a lone request never waits). Two images in one run cost ~10 % less CPU
 * per image than two runs of one for a ResNet on 2 cores, for ~28 MB more runner memory with a ResNet-50
 * (docs/performance-log.md). A model whose batch dimension is fixed runs one image at a time.
 */
export const DEFAULT_MAX_BATCH = 2

/**
 * How a front end tells the host that the client of a request went away: an AbortSignal, or anything that has its
 * `aborted` and `addEventListener('abort')` (the HTTP route's is a plain object, not an EventTarget per request).
 */
export interface ClientGoneSignal {
  readonly aborted: boolean
  addEventListener(type: 'abort', listener: () => void, options?: {once?: boolean}): void
}

/**
 * The {@link ClientGoneSignal} both front ends (the HTTP route, the Greengrass IPC endpoint) make per request: what
 * the service needs of an AbortSignal, without an AbortController and an EventTarget on the hot path. Like an
 * AbortSignal, a listener added after the abort is not called (the service looks at `aborted` first).
 */
export class ClientGone implements ClientGoneSignal {
  aborted = false
  private listeners: (() => void)[] = []

  abort(): void {
    if (this.aborted) return
    this.aborted = true
    for (const listener of this.listeners.splice(0)) listener()
  }

  addEventListener(_type: 'abort', listener: () => void): void {
    if (this.aborted) return
    this.listeners.push(listener)
  }
}

/** One inference request, as every front end hands it to the host. */
export interface InferenceRequest {
  /** Value of the Accept header (`application/json`, `application/json; verbose`). */
  accept?: string
  body: Buffer
  /** Declared content type: image/jpeg, image/png, application/x-image (sniffed). */
  contentType?: string
  /** Aborted when the client went away. */
  signal?: ClientGoneSignal
  /** Return the top-k classes too. */
  topK?: number
}

export interface TopClass {
  index: number
  label?: string
  probability: number
}

export interface InferenceResult {
  /** Images in the ONNX Runtime run that served this request (1 unless requests were batched). */
  batchSize: number
  /** The connector's exact body: `[p0,p1,...]`, no spaces, each value round-trips to the same float32. */
  body: string
  probabilities: Float32Array
  /** Milliseconds spent queued, decoding, and in ONNX Runtime. */
  timings: {decodeMs: number; inferenceMs: number; queueMs: number; totalMs: number}
  top?: TopClass[]
}

/**
 * Error codes every front end maps to its own protocol (HTTP status for the native API; Handled function error
 * vs dependency error for the Greengrass IPC endpoint).
 */
export type ServeErrorCode =
  | 'BAD_IMAGE'
  | 'BODY_TOO_LARGE'
  | 'INTERNAL'
  | 'MEMORY_LIMIT'
  | 'OVERLOADED'
  | 'RUNNER_RESTARTING'
  | 'SERVICE_NOT_READY'
  | 'SHUTTING_DOWN'
  | 'TIMEOUT'
  | 'UNKNOWN_SERVICE'
  | 'UNSUPPORTED_CONTENT_TYPE'

export class ServeError extends Error {
  readonly code: ServeErrorCode
  /** Seconds the client should wait before retrying (503s). */
  readonly retryAfter?: number

  constructor(code: ServeErrorCode, message: string, retryAfter?: number) {
    super(message)
    this.name = 'ServeError'
    this.code = code
    this.retryAfter = retryAfter
  }
}

/** What the host exposes to the protocol front ends. */
export interface Dispatcher {
  /** Run one inference on the named service; rejects with a {@link ServeError}. */
  infer(serviceName: string, request: InferenceRequest): Promise<InferenceResult>
  /** The names of the services the host runs. */
  serviceNames(): string[]
  /** Whether the named service exists and is ready (undefined: unknown service). */
  status(serviceName: string): undefined | {ready: boolean; reason?: string}
}
