/**
 * The invocation route of `icc serve`'s native HTTP API, on node:http directly: `POST /invocations` (the first
 * service: the SageMaker container contract) and `POST /services/{ServiceName}/invocations`.
 *
 * Every inference request goes through here, so this route stays off the web framework that serves the other
 * routes (health, models, metrics): the request's headers are checked first, the body is collected into one
 * buffer with the size limit enforced as it arrives (413 and the connection closed as soon as it is exceeded, so
 * an oversize upload is never buffered), the dispatcher is called, and the answer is written in one go. On the
 * 2-core CI machine this took ~0.2 ms off every request compared with the same route in the framework
 * (docs/performance-log.md).
 *
 * Answers: 200 with the connector's body `[p0,...]` (or JSON `{"probabilities","top"}` with `?top_k=N` or
 * `Accept: application/json; verbose`) and a Server-Timing header (queue, decode, inference, total, batch).
 * Errors are `{"error":{"code","message"}}` with the status of {@link httpStatus} (and Retry-After when the error
 * carries one); a malformed query or service name is 400 BAD_REQUEST. Other methods and paths are left to the
 * caller (the framework's 404).
 */
import type {IncomingMessage, ServerResponse} from 'node:http'

import type {ServiceRequest} from './service.js'

import {isSupportedContentType, normaliseContentType} from '../model/content-type.js'
import {type ByteBudget, probeHalfClosed, readBody, sendJson} from './http-io.js'
import {ClientGone, type Dispatcher, type InferenceResult, ServeError, type ServeErrorCode} from './types.js'

const STATUS: Record<ServeErrorCode, number> = {
  BAD_IMAGE: 400,
  BODY_TOO_LARGE: 413,
  INTERNAL: 500,
  MEMORY_LIMIT: 500,
  OVERLOADED: 503,
  RUNNER_RESTARTING: 503,
  SERVICE_NOT_READY: 503,
  SHUTTING_DOWN: 503,
  TIMEOUT: 504,
  UNKNOWN_SERVICE: 404,
  UNSUPPORTED_CONTENT_TYPE: 415,
}

/** HTTP status of a serve error code on the native API. */
export function httpStatus(code: ServeErrorCode): number {
  return STATUS[code] ?? 500
}

export interface InvocationRouteOptions {
  /** The host's budget of request-body bytes held at once. */
  budget: ByteBudget
  dispatcher: Dispatcher & {infer(serviceName: string, request: ServiceRequest): Promise<InferenceResult>}
  /** The service `POST /invocations` goes to. */
  firstService: string
  maxBodyBytes: number
  /** Called once per answered request (the access log, ./access-log.ts); `result` on success. */
  onAnswered?(service: string, status: number, code: string, bytesIn: number, result?: InferenceResult): void
  /** Called for INTERNAL errors (the caller logs them). */
  onInternalError(service: string, message: string): void
  /**
   * Called for each answer this route gives itself (415, 400, 413, INTERNAL) and for a client gone before its body
   * was read (CLIENT_CLOSED); the answers of the dispatcher are counted where they are made.
   */
  onOutcome(service: string, outcome: string): void
}

const SERVICES = '/services/'
const INVOCATIONS = '/invocations'

function sendError(res: ServerResponse, status: number, code: string, message: string, extra?: Record<string, string>) {
  sendJson(res, status, JSON.stringify({error: {code, message}}), extra)
}

/** Answer a {@link ServeError} (Retry-After when it has one; a 413 also closes the connection). */
export function sendServeError(res: ServerResponse, error: ServeError): void {
  const extra: Record<string, string> = {}
  if (error.retryAfter !== undefined) extra['retry-after'] = String(error.retryAfter)
  // the unread rest of an oversize (or refused) body is not worth reading: close the connection after answering
  if (error.code === 'BODY_TOO_LARGE' || (error.code === 'OVERLOADED' && !res.req.complete)) extra.connection = 'close'
  sendError(res, httpStatus(error.code), error.code, error.message, extra)
}

/**
 * The route as a node:http request handler that returns false, having done nothing, for a request that is not an
 * invocation.
 */
export function invocationRoute(
  options: InvocationRouteOptions,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const {dispatcher, maxBodyBytes} = options
  const tooLarge = () =>
    new ServeError(
      'BODY_TOO_LARGE',
      `The request body is larger than the limit of ${maxBodyBytes} bytes (${(maxBodyBytes / 1024 / 1024).toFixed(1)} MiB); send a smaller image or raise --max-body-bytes.`,
    )

  /** An answer of the route itself, counted. */
  const refuse = (res: ServerResponse, name: string, error: ServeError) => {
    options.onOutcome(name, error.code)
    sendServeError(res, error)
  }

  const answered = options.onAnswered ?? (() => {})
  const answer = async (name: string, query: string, req: IncomingMessage, res: ServerResponse) => {
    const declaredBytes = Number(req.headers['content-length']) || 0
    const declared = normaliseContentType(req.headers['content-type'])
    if (declared && !isSupportedContentType(declared)) {
      refuse(
        res,
        name,
        new ServeError(
          'UNSUPPORTED_CONTENT_TYPE',
          `Content-Type "${declared}" is not supported; send image/jpeg, image/png or application/x-image.`,
        ),
      )
      answered(name, 415, 'UNSUPPORTED_CONTENT_TYPE', declaredBytes)
      return
    }

    let topK: number | undefined
    const topKText = query ? new URLSearchParams(query).get('top_k') : null
    if (topKText !== null) {
      topK = Number(topKText)
      if (!Number.isInteger(topK) || topK < 1) {
        options.onOutcome(name, 'BAD_REQUEST')
        sendError(res, 400, 'BAD_REQUEST', `top_k must be a positive integer, got "${topKText}"`)
        answered(name, 400, 'BAD_REQUEST', declaredBytes)
        return
      }
    }

    const accept = req.headers.accept ?? ''
    const verbose = topK !== undefined || /application\/json\s*;\s*verbose/i.test(accept)
    if (verbose && topK === undefined) topK = 5
    // the bytes this request will hold, reserved before reading and given back once its answer is done; a body
    // declared over the limit is refused first (413: retrying cannot help), unread
    const declaredLength = Number(req.headers['content-length'])
    if (declaredLength > maxBodyBytes) {
      refuse(res, name, tooLarge())
      answered(name, 413, 'BODY_TOO_LARGE', declaredBytes)
      return
    }

    const reserve = Number.isFinite(declaredLength) ? Math.min(declaredLength, maxBodyBytes) : maxBodyBytes
    if (!options.budget.take(reserve)) {
      refuse(
        res,
        name,
        new ServeError(
          'OVERLOADED',
          `icc serve holds ${options.budget.used} bytes of request bodies (--max-buffered-bytes ${options.budget.limit}); retry later.`,
          1,
        ),
      )
      return
    }

    res.once('close', () => options.budget.give(reserve))
    const body = await readBody(req, maxBodyBytes)
    if (body === 'too-large') {
      refuse(res, name, tooLarge())
      answered(name, 413, 'BODY_TOO_LARGE', declaredBytes)
      return
    }

    if (body === 'aborted') {
      options.onOutcome(name, 'CLIENT_CLOSED')
      answered(name, 499, 'CLIENT_CLOSED', declaredBytes)
      return
    }

    const gone = new ClientGone()
    // the response closes early only when the client went away before the answer
    res.once('close', () => {
      if (!res.writableFinished) gone.abort()
    })
    probeHalfClosed(req, res)
    try {
      const result = await dispatcher.infer(name, {
        accept,
        body,
        contentType: declared,
        signal: gone,
        topK,
      })
      const t = result.timings
      const timing =
        `queue;dur=${t.queueMs.toFixed(2)}, decode;dur=${t.decodeMs.toFixed(2)}, ` +
        `inference;dur=${t.inferenceMs.toFixed(2)}, total;dur=${t.totalMs.toFixed(2)}, batch;desc=${result.batchSize}`
      const text = verbose ? `{"probabilities":${result.body},"top":${JSON.stringify(result.top ?? [])}}` : result.body
      sendJson(res, 200, text, {'server-timing': timing})
      answered(name, 200, 'OK', body.length, result)
    } catch (error) {
      const e =
        error instanceof ServeError ? error : new ServeError('INTERNAL', (error as Error)?.message ?? String(error))
      if (e.code === 'INTERNAL') options.onInternalError(name, e.message)
      sendServeError(res, e)
      answered(name, httpStatus(e.code), e.code, body.length)
    }
  }

  return (req, res) => {
    if (req.method !== 'POST') return false
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    let name = options.firstService
    if (path !== INVOCATIONS) {
      if (!path.startsWith(SERVICES) || !path.endsWith(INVOCATIONS)) return false
      if (path.length < SERVICES.length + INVOCATIONS.length) return false
      const raw = path.slice(SERVICES.length, -INVOCATIONS.length)
      if (raw.includes('/')) return false
      try {
        name = decodeURIComponent(raw)
      } catch {
        options.onOutcome('', 'BAD_REQUEST')
        sendError(res, 400, 'BAD_REQUEST', `The service name "${raw}" in the path is not valid URL encoding.`)
        return true
      }
    }

    answer(name, q === -1 ? '' : url.slice(q + 1), req, res).catch((error: unknown) => {
      options.onInternalError(name, (error as Error)?.message ?? String(error))
      options.onOutcome(name, 'INTERNAL')
      sendError(res, 500, 'INTERNAL', 'The request could not be answered.')
    })
    return true
  }
}
