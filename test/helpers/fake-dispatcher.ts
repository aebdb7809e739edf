/**
 * A stand-in for the `icc serve` host, used ONLY by the Greengrass IPC protocol tests (test/ipc/): it implements
 * the {@link Dispatcher} contract without a model, so the tests exercise the IPC endpoint, the Python SDK and the
 * TypeScript client over real HTTP. It "classifies" with a deterministic function of the body bytes (a softmax over
 * a byte histogram), checks image magic bytes, and can be told to fail with any ServeError code. End-to-end tests
 * against the real host (`icc serve`) live elsewhere.
 */
import {
  type Dispatcher,
  type InferenceRequest,
  type InferenceResult,
  ServeError,
  type ServeErrorCode,
} from '../../src/serve/types.js'

export interface FakeService {
  classes: number
  /** Fail every request with this code (until cleared). */
  failWith?: ServeErrorCode
  ready: boolean
  reason?: string
}

const SUPPORTED = new Set(['application/x-image', 'image/jpeg', 'image/png'])

/** The probabilities the fake host gives for a body: softmax over a byte histogram folded into `classes` bins. */
export function fakeProbabilities(body: Buffer, classes: number): Float32Array {
  const bins = new Float64Array(classes)
  for (let i = 0; i < body.length; i++) bins[(body[i] + i) % classes] += 1
  const scale = body.length > 0 ? 8 / body.length : 1
  const max = Math.max(...bins) * scale
  const exp = [...bins].map((v) => Math.exp(v * scale - max))
  const sum = exp.reduce((a, b) => a + b, 0)
  return Float32Array.from(exp.map((v) => v / sum))
}

export class FakeDispatcher implements Dispatcher {
  readonly calls: Array<{request: InferenceRequest; service: string}> = []
  /** Delay before answering, in ms (to test pending results). */
  delayMs = 0
  readonly services = new Map<string, FakeService>()

  /** @param services name -> settings; default: one ready 5-class service named imageClassification. */
  constructor(services?: Record<string, Partial<FakeService>>) {
    for (const [name, s] of Object.entries(services ?? {imageClassification: {}})) {
      this.services.set(name, {classes: 5, ready: true, ...s})
    }
  }

  async infer(serviceName: string, request: InferenceRequest): Promise<InferenceResult> {
    this.calls.push({request, service: serviceName})
    const service = this.services.get(serviceName)
    if (!service) throw new ServeError('UNKNOWN_SERVICE', `no service named ${serviceName}`)
    if (!service.ready) throw new ServeError('SERVICE_NOT_READY', `service ${serviceName} is loading`, 1)
    if (this.delayMs > 0) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, this.delayMs)
        request.signal?.addEventListener('abort', () => {
          clearTimeout(timer)
          reject(new ServeError('SHUTTING_DOWN', 'aborted'))
        })
      })
    }

    if (service.failWith) throw new ServeError(service.failWith, `forced ${service.failWith} failure`)
    if (request.contentType !== undefined && !SUPPORTED.has(request.contentType)) {
      throw new ServeError(
        'UNSUPPORTED_CONTENT_TYPE',
        `content type ${request.contentType} is not supported; use image/jpeg or image/png`,
      )
    }

    const b = request.body
    const jpeg = b.length > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff
    const png = b.length > 8 && b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))
    if (!jpeg && !png) throw new ServeError('BAD_IMAGE', 'the body is not a JPEG or PNG image')
    const probabilities = fakeProbabilities(b, service.classes)
    return {
      batchSize: 1,
      body: `[${[...probabilities].join(',')}]`,
      probabilities,
      timings: {decodeMs: 0, inferenceMs: 0, queueMs: 0, totalMs: 0},
    }
  }

  serviceNames(): string[] {
    return [...this.services.keys()]
  }

  status(serviceName: string): undefined | {ready: boolean; reason?: string} {
    const s = this.services.get(serviceName)
    return s ? {ready: s.ready, reason: s.reason} : undefined
  }
}
