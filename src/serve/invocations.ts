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

/** What the route's steps share: the options, the access-log callback and the answers of the route itself. */
interface RouteContext {
  answered: NonNullable<InvocationRouteOptions['onAnswered']>
  options: InvocationRouteOptions
  /** An answer of the route itself, counted. */
  refuse(res: ServerResponse, name: string, error: ServeError): void
  tooLarge(): ServeError
}

/** What the request's headers and query ask for. */
interface RequestAsk {
  accept: string
  declared: string | undefined
  /** Content-Length as a number (0 when absent), for the access log. */
  declaredBytes: number
  topK: number | undefined
  verbose: boolean
}

/** Build the shared context of the route's steps. */
function routeContext(options: InvocationRouteOptions): RouteContext {
  const {maxBodyBytes} = options
  return {
    answered: options.onAnswered ?? (() => {}),
    options,
    refuse(res, name, error) {
      options.onOutcome(name, error.code)
      sendServeError(res, error)
    },
    tooLarge: () =>
      new ServeError(
        'BODY_TOO_LARGE',
        `The request body is larger than the limit of ${maxBodyBytes} bytes (${(maxBodyBytes / 1024 / 1024).toFixed(1)} MiB); send a smaller image or raise --max-body-bytes.`,
      ),
  }
}

/** Check the request's Content-Type and query and read what it asks for; undefined once it has been refused. */
function readAsk(
  ctx: RouteContext,
  name: string,
  query: string,
  req: IncomingMessage,
  res: ServerResponse,
): RequestAsk | undefined {
  const declaredBytes = Number(req.headers['content-length']) || 0
  const declared = normaliseContentType(req.headers['content-type'])
  if (declared && !isSupportedContentType(declared)) {
    ctx.refuse(
      res,
      name,
      new ServeError(
        'UNSUPPORTED_CONTENT_TYPE',
        `Content-Type "${declared}" is not supported; send image/jpeg, image/png or application/x-image.`,
      ),
    )
    ctx.answered(name, 415, 'UNSUPPORTED_CONTENT_TYPE', declaredBytes)
    return undefined
  }

  let topK: number | undefined
  const topKText = query ? new URLSearchParams(query).get('top_k') : null
  if (topKText !== null) {
    topK = Number(topKText)
    if (!Number.isInteger(topK) || topK < 1) {
      ctx.options.onOutcome(name, 'BAD_REQUEST')
      sendError(res, 400, 'BAD_REQUEST', `top_k must be a positive integer, got "${topKText}"`)
      ctx.answered(name, 400, 'BAD_REQUEST', declaredBytes)
      return undefined
    }
  }

  const accept = req.headers.accept ?? ''
  const verbose = topK !== undefined || /application\/json\s*;\s*verbose/i.test(accept)
  if (verbose && topK === undefined) topK = 5
  return {accept, declared, declaredBytes, topK, verbose}
}

/**
 * Reserve the request's bytes in the host's budget (given back once its answer is done) and read its body;
 * undefined once the request has been refused or its client has gone.
 */
async function takeBody(
  ctx: RouteContext,
  name: string,
  declaredBytes: number,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<Buffer | undefined> {
  const {budget, maxBodyBytes} = ctx.options
  // the bytes this request will hold, reserved before reading and given back once its answer is done; a body
  // declared over the limit is refused first (413: retrying cannot help), unread
  const declaredLength = Number(req.headers['content-length'])
  if (declaredLength > maxBodyBytes) {
    ctx.refuse(res, name, ctx.tooLarge())
    ctx.answered(name, 413, 'BODY_TOO_LARGE', declaredBytes)
    return undefined
  }

  const reserve = Number.isFinite(declaredLength) ? Math.min(declaredLength, maxBodyBytes) : maxBodyBytes
  if (!budget.take(reserve)) {
    ctx.refuse(
      res,
      name,
      new ServeError(
        'OVERLOADED',
        `icc serve holds ${budget.used} bytes of request bodies (--max-buffered-bytes ${budget.limit}); retry later.`,
        1,
      ),
    )
    return undefined
  }

  res.once('close', () => budget.give(reserve))
  const body = await readBody(req, maxBodyBytes)
  if (body === 'too-large') {
    ctx.refuse(res, name, ctx.tooLarge())
    ctx.answered(name, 413, 'BODY_TOO_LARGE', declaredBytes)
    return undefined
  }

  if (body === 'aborted') {
    ctx.options.onOutcome(name, 'CLIENT_CLOSED')
    ctx.answered(name, 499, 'CLIENT_CLOSED', declaredBytes)
    return undefined
  }

  return body
}

/** Hand the body to the dispatcher and write its answer (or its error), cancelled if the client goes away. */
async function inferAndAnswer(
  ctx: RouteContext,
  name: string,
  ask: RequestAsk,
  body: Buffer,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const gone = new ClientGone()
  // the response closes early only when the client went away before the answer
  res.once('close', () => {
    if (!res.writableFinished) gone.abort()
  })
  probeHalfClosed(req, res)
  try {
    const result = await ctx.options.dispatcher.infer(name, {
      accept: ask.accept,
      body,
      contentType: ask.declared,
      signal: gone,
      topK: ask.topK,
    })
    const t = result.timings
    const timing =
      `queue;dur=${t.queueMs.toFixed(2)}, decode;dur=${t.decodeMs.toFixed(2)}, ` +
      `inference;dur=${t.inferenceMs.toFixed(2)}, total;dur=${t.totalMs.toFixed(2)}, batch;desc=${result.batchSize}`
    const text = ask.verbose
      ? `{"probabilities":${result.body},"top":${JSON.stringify(result.top ?? [])}}`
      : result.body
    sendJson(res, 200, text, {'server-timing': timing})
    ctx.answered(name, 200, 'OK', body.length, result)
  } catch (error) {
    const e =
      error instanceof ServeError ? error : new ServeError('INTERNAL', (error as Error)?.message ?? String(error))
    if (e.code === 'INTERNAL') ctx.options.onInternalError(name, e.message)
    sendServeError(res, e)
    ctx.answered(name, httpStatus(e.code), e.code, body.length)
  }
}

/** Answer one invocation request of service `name`: check it, read its body, infer, answer. */
async function answer(ctx: RouteContext, name: string, query: string, req: IncomingMessage, res: ServerResponse) {
  const ask = readAsk(ctx, name, query, req, res)
  if (!ask) return
  const body = await takeBody(ctx, name, ask.declaredBytes, req, res)
  if (!body) return
  await inferAndAnswer(ctx, name, ask, body, req, res)
}

/**
 * The service a POST path invokes: the first service for `/invocations`, the decoded name for
 * `/services/{name}/invocations`, `{raw}` for a name that is not valid URL encoding, undefined for another path.
 */
function serviceOfPath(path: string, firstService: string): string | undefined | {raw: string} {
  if (path === INVOCATIONS) return firstService
  if (!path.startsWith(SERVICES) || !path.endsWith(INVOCATIONS)) return undefined
  if (path.length < SERVICES.length + INVOCATIONS.length) return undefined
  const raw = path.slice(SERVICES.length, -INVOCATIONS.length)
  if (raw.includes('/')) return undefined
  try {
    return decodeURIComponent(raw)
  } catch {
    return {raw}
  }
}

/**
 * The route as a node:http request handler that returns false, having done nothing, for a request that is not an
 * invocation.
 */
export function invocationRoute(
  options: InvocationRouteOptions,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const ctx = routeContext(options)
  return (req, res) => {
    if (req.method !== 'POST') return false
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const name = serviceOfPath(q === -1 ? url : url.slice(0, q), options.firstService)
    if (name === undefined) return false
    if (typeof name !== 'string') {
      options.onOutcome('', 'BAD_REQUEST')
      sendError(res, 400, 'BAD_REQUEST', `The service name "${name.raw}" in the path is not valid URL encoding.`)
      return true
    }

    answer(ctx, name, q === -1 ? '' : url.slice(q + 1), req, res).catch((error: unknown) => {
      options.onInternalError(name, (error as Error)?.message ?? String(error))
      options.onOutcome(name, 'INTERNAL')
      sendError(res, 500, 'INTERNAL', 'The request could not be answered.')
    })
    return true
  }
}
