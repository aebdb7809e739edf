/**
 * The Greengrass IPC endpoint of `icc serve`: existing Lambda code that calls the connector through the
 * Greengrass Machine Learning SDK (`invoke_inference_service`) keeps working unchanged.
 *
 * The SDK speaks the Lambda-invoke-style protocol of the Greengrass V1 core (its IPC daemon):
 *
 *   POST /2016-11-01/functions/arn:aws:lambda:<region>:aws:function:GG-ML-INF-<AlgoType>-<ServiceName>
 *        body = raw image, `X-Amz-Client-Context` = base64 of `{"custom":{"Content-Type":..,"Accept":..}}`,
 *        `Authorization` = the core's token, `X-Amz-Invocation-Type: RequestResponse`
 *        -> 202 with `X-Amz-InvocationId`
 *   GET  the same URL with `X-Amz-InvocationId` and `Authorization`
 *        -> 200 `{"Body":"[0.3,0.1,...]","ContentType":"application/json"}` on success
 *        -> 200 + `X-Amz-Function-Error: Handled` + `{"errorMessage":..}` for an inference failure (bad image,
 *           unsupported content type, timeout, memory limit): the SDK raises GreengrassInferenceException
 *        -> 200 + `X-Amz-Function-Error: Unhandled`, or an HTTP 4xx/5xx (wrong token, unknown function, service not
 *           ready, unknown invocation id): the SDK raises GreengrassDependencyException
 *
 * Results are handed out once, expire when nobody fetches them, and are bounded in number. The endpoint binds
 * loopback only, and runs on node:http directly, like the native invocation route (a call is two requests).
 * {@link lambdaEnvironment} gives the variables a Lambda process needs to find it.
 */
import type {IncomingMessage, ServerResponse} from 'node:http'

import {randomBytes, randomUUID} from 'node:crypto'

import {UsageError} from '../errors.js'
import {
  type ByteBudget,
  DEFAULT_MAX_CONNECTIONS,
  limitedServer,
  type ListenerLimits,
  readBody,
  sendJson,
} from './http-io.js'
import {tokenChecker} from './tokens.js'
import {
  ClientGone,
  DEFAULT_MAX_BODY_BYTES,
  type Dispatcher,
  type InferenceResult,
  ServeError,
  type ServeErrorCode,
} from './types.js'

/** Version segment of the IPC API path. */
export const IPC_API_VERSION = '2016-11-01'
/** The only algorithm type the connector serves. */
export const SUPPORTED_ALGO_TYPE = 'image-classification'
/** Interface version icc announces to Lambda code (the ML SDK needs 1.x with x >= 2). */
export const GGC_INTERFACE_VERSION = '1.5'
/** Lambda's limit on a base64 client context; the core enforced the same. */
export const MAX_CLIENT_CONTEXT_BYTES = 3583

export const HEADER_INVOCATION_ID = 'x-amz-invocationid'
export const HEADER_CLIENT_CONTEXT = 'x-amz-client-context'
export const HEADER_INVOCATION_TYPE = 'x-amz-invocation-type'
export const HEADER_FUNCTION_ERROR = 'x-amz-function-error'

/** Serve error codes that are the caller's input problem: reported as Handled (GreengrassInferenceException). */
const HANDLED_CODES: ReadonlySet<ServeErrorCode> = new Set<ServeErrorCode>([
  'BAD_IMAGE',
  'BODY_TOO_LARGE',
  'MEMORY_LIMIT',
  'TIMEOUT',
  'UNSUPPORTED_CONTENT_TYPE',
])

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost'])
const FUNCTION_ARN = /^arn:aws:lambda:([a-z0-9-]+):aws:function:GG-ML-INF-(.+)$/
const SERVICE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9-]{1,62}$/

export interface IpcOptions {
  /** The host's budget of request-body bytes held at once (shared with the native API). */
  budget?: ByteBudget
  /** Largest request body (image) in bytes; default {@link DEFAULT_MAX_BODY_BYTES}, as on the native API. */
  bodyLimitBytes?: number
  dispatcher: Dispatcher
  /** The token Lambda code sends in `Authorization` (AWS_CONTAINER_AUTHORIZATION_TOKEN). Required. */
  authToken: string
  /** Most results kept waiting to be fetched (running or done); default 1000. */
  maxPendingResults?: number
  /** When set, function ARNs must name this region (the Lambda's AWS_REGION). */
  region?: string
  /** How long a finished result waits to be fetched, in ms; default 60000. */
  resultTtlMs?: number
}

export interface IpcServerOptions extends IpcOptions {
  /** Loopback address to bind: 127.0.0.1 (default), ::1 or localhost. */
  host?: string
  /** Client timeouts and connection cap: those of the native listeners (default: theirs with a 30 s client timeout). */
  limits?: ListenerLimits
  /** TCP port; 0 (default) picks a free one. The ML SDK uses 8000 unless GG_DAEMON_PORT says otherwise. */
  port?: number
}

export interface IpcServer {
  /** Stop accepting calls, drop pending results, close the socket. */
  close(): Promise<void>
  host: string
  /** Results waiting to be fetched (for diagnostics and tests). */
  pendingResults(): number
  port: number
}

export interface ParsedFunctionArn {
  algoType: string
  region: string
  serviceName: string
}

/** The function ARN the ML SDK addresses for a service. */
export function functionArn(region: string, algoType: string, serviceName: string): string {
  return `arn:aws:lambda:${region}:aws:function:GG-ML-INF-${algoType}-${serviceName}`
}

/**
 * Split a `GG-ML-INF-<AlgoType>-<ServiceName>` function ARN. Both parts may contain hyphens, so the known service
 * names decide the split where they can; otherwise the supported algorithm type is taken as the prefix.
 */
export function parseFunctionArn(arn: string, knownServices: readonly string[] = []): ParsedFunctionArn | undefined {
  const m = FUNCTION_ARN.exec(arn)
  if (!m) return undefined
  const [, region, rest] = m
  const known = [...knownServices].sort((a, b) => b.length - a.length).find((s) => rest.endsWith(`-${s}`))
  if (known && rest.length > known.length + 1) {
    return {algoType: rest.slice(0, -known.length - 1), region, serviceName: known}
  }

  if (rest.startsWith(`${SUPPORTED_ALGO_TYPE}-`)) {
    return {algoType: SUPPORTED_ALGO_TYPE, region, serviceName: rest.slice(SUPPORTED_ALGO_TYPE.length + 1)}
  }

  const dash = rest.indexOf('-')
  if (dash <= 0) return undefined
  return {algoType: rest.slice(0, dash), region, serviceName: rest.slice(dash + 1)}
}

/** Environment variables a Lambda process needs to reach this endpoint through the ML SDK. */
export function lambdaEnvironment(options: {port: number; region: string; token: string}): Record<string, string> {
  return {
    AWS_CONTAINER_AUTHORIZATION_TOKEN: options.token,
    AWS_REGION: options.region,
    GG_DAEMON_PORT: String(options.port),
    GGC_MAX_INTERFACE_VERSION: GGC_INTERFACE_VERSION,
  }
}

/** A fresh random token for `--ipc-auth-token` when none is given. */
export function generateAuthToken(): string {
  return randomBytes(24).toString('base64url')
}

/** Decoded `X-Amz-Client-Context`: the SDK's `custom` map. */
export interface ClientContext {
  accept?: string
  contentType?: string
}

/** Decode and check an `X-Amz-Client-Context` header; throws an Error with a specific message. */
export function decodeClientContext(header: string | undefined): ClientContext {
  if (header === undefined || header === '') return {}
  if (header.length > MAX_CLIENT_CONTEXT_BYTES) {
    throw new Error(
      `X-Amz-Client-Context is ${header.length} bytes; the limit is ${MAX_CLIENT_CONTEXT_BYTES} bytes of base64`,
    )
  }

  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(header) || header.length % 4 !== 0) {
    throw new Error('X-Amz-Client-Context is not valid base64')
  }

  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(header, 'base64').toString('utf8'))
  } catch {
    throw new Error('X-Amz-Client-Context is not base64 of a JSON object (expected {"custom":{"Content-Type":..}})')
  }

  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error('X-Amz-Client-Context must decode to a JSON object (expected {"custom":{"Content-Type":..}})')
  }

  const {custom} = parsed as {custom?: unknown}
  if (custom === undefined || custom === null) return {}
  if (typeof custom !== 'object' || Array.isArray(custom)) {
    throw new TypeError('X-Amz-Client-Context "custom" must be a JSON object')
  }

  const result: ClientContext = {}
  for (const [key, field] of [
    ['Content-Type', 'contentType'],
    ['Accept', 'accept'],
  ] as const) {
    const value = (custom as Record<string, unknown>)[key]
    if (value === undefined || value === null) continue
    if (typeof value !== 'string') throw new Error(`X-Amz-Client-Context custom["${key}"] must be a string`)
    result[field] = value
  }

  return result
}

type Outcome =
  | {kind: 'error'; functionError: 'Handled' | 'Unhandled'; message: string; type: string}
  | {kind: 'ok'; result: InferenceResult}

interface Pending {
  gone: ClientGone
  arn: string
  done: boolean
  outcome: Promise<Outcome>
  timer?: NodeJS.Timeout
}

/** IPC answers are JSON without a charset parameter, as the Greengrass core sent them. */
const JSON_TYPE = 'application/json'

/** Answer with `{errorMessage, errorType}`, the shape Lambda's invoke API (and the ML SDK) reads errors in. */
function errorReply(
  res: ServerResponse,
  status: number,
  message: string,
  type: string,
  extra: Record<string, string> = {},
): void {
  sendJson(res, status, JSON.stringify({errorMessage: message, errorType: type}), extra, JSON_TYPE)
}

function outcomeOf(error: unknown): Outcome {
  if (error instanceof ServeError) {
    return {
      functionError: HANDLED_CODES.has(error.code) ? 'Handled' : 'Unhandled',
      kind: 'error',
      message: error.message,
      type: error.code,
    }
  }

  return {
    functionError: 'Unhandled',
    kind: 'error',
    message: `internal error: ${error instanceof Error ? error.message : String(error)}`,
    type: 'INTERNAL',
  }
}

/** The IPC API as a node:http request handler, and its table of results waiting to be fetched. */
export interface IpcEndpoint {
  /** Drop every pending result (running inferences are aborted) and refuse new invocations with 503. */
  dispose(): void
  handle(req: IncomingMessage, res: ServerResponse): void
  pending(): number
}

const FUNCTIONS = `/${IPC_API_VERSION}/functions/`
const WORK = '/work'

/**
 * The IPC API on node:http directly: every call of the ML SDK is two requests (POST the image, GET the result),
 * so the endpoint does no more per request than the native invocation route does (./invocations.ts).
 */
export function ipcEndpoint(options: IpcOptions): IpcEndpoint {
  if (typeof options.authToken !== 'string' || options.authToken.length === 0) {
    throw new UsageError('IPC_TOKEN_MISSING', 'the Greengrass IPC endpoint needs a non-empty auth token', {
      suggestions: ['pass --ipc-auth-token TOKEN or set AWS_CONTAINER_AUTHORIZATION_TOKEN'],
    })
  }

  const {dispatcher} = options
  const ttlMs = options.resultTtlMs ?? 60_000
  const maxPending = options.maxPendingResults ?? 1000
  const bodyLimit = options.bodyLimitBytes ?? DEFAULT_MAX_BODY_BYTES
  const isToken = tokenChecker(options.authToken)
  const pending = new Map<string, Pending>()
  let disposed = false

  const authorized = (req: IncomingMessage): boolean => isToken(req.headers.authorization)

  // the connection is closed after the answer: the body of a refused call is never read (a trickled one would
  // otherwise hold the connection until the request timeout)
  const refuse = (req: IncomingMessage, res: ServerResponse): void =>
    req.headers.authorization
      ? errorReply(res, 403, 'the Authorization token is not the one this icc serve accepts', 'AccessDenied', {
          connection: 'close',
        })
      : errorReply(
          res,
          401,
          'missing Authorization header: set AWS_CONTAINER_AUTHORIZATION_TOKEN for the Lambda (icc serve --print-env)',
          'AccessDenied',
          {connection: 'close'},
        )

  const tooLarge = (res: ServerResponse): void =>
    // the unread rest of an oversize body is not worth reading: close the connection after answering
    errorReply(res, 413, `request body is larger than the limit of ${bodyLimit} bytes`, 'RequestTooLarge', {
      connection: 'close',
    })

  const drop = (id: string): void => {
    const entry = pending.get(id)
    if (!entry) return
    clearTimeout(entry.timer)
    pending.delete(id)
    if (!entry.done) entry.gone.abort()
  }

  /** The service a POST addresses, or undefined when it has been answered with an error. */
  const target = (arn: string, res: ServerResponse): string | undefined => {
    const parsed = parseFunctionArn(arn, dispatcher.serviceNames())
    if (!parsed) {
      errorReply(
        res,
        404,
        `function ${arn} is not an inference service; expected arn:aws:lambda:<region>:aws:function:GG-ML-INF-${SUPPORTED_ALGO_TYPE}-<ServiceName>`,
        'ResourceNotFound',
      )
      return undefined
    }

    if (options.region !== undefined && parsed.region !== options.region) {
      errorReply(
        res,
        404,
        `function ${arn} names region ${parsed.region}, but this icc serve runs as ${options.region}; set AWS_REGION=${options.region} for the Lambda`,
        'ResourceNotFound',
      )
      return undefined
    }

    if (parsed.algoType !== SUPPORTED_ALGO_TYPE) {
      errorReply(
        res,
        404,
        `AlgoType "${parsed.algoType}" is not supported; only "${SUPPORTED_ALGO_TYPE}" is`,
        'ResourceNotFound',
      )
      return undefined
    }

    const status = SERVICE_NAME.test(parsed.serviceName) ? dispatcher.status(parsed.serviceName) : undefined
    if (!status) {
      const names = dispatcher.serviceNames()
      errorReply(
        res,
        404,
        `no local inference service named "${parsed.serviceName}"; this icc serve runs: ${names.length > 0 ? names.join(', ') : '(none)'}`,
        'ResourceNotFound',
      )
      return undefined
    }

    if (!status.ready) {
      errorReply(
        res,
        503,
        `inference service "${parsed.serviceName}" is not ready${status.reason ? `: ${status.reason}` : ''}`,
        'ServiceUnavailable',
        {'retry-after': '1'},
      )
      return undefined
    }

    return parsed.serviceName
  }

  /** True, having answered 429, when the table of waiting results is full. */
  const full = (res: ServerResponse): boolean => {
    if (pending.size < maxPending) return false
    errorReply(
      res,
      429,
      `too many inference results are waiting to be fetched (${maxPending}); fetch results with GET before posting more`,
      'TooManyRequests',
      {'retry-after': '1'},
    )
    return true
  }

  /** True, having answered 503, once the endpoint has been disposed of (icc serve is shutting down). */
  const stopped = (res: ServerResponse): boolean => {
    if (!disposed) return false
    errorReply(res, 503, 'icc serve is shutting down; no new inference is started', 'ServiceUnavailable')
    return true
  }

  // POST: check everything the headers say before reading the body, then start the inference and answer 202
  const post = async (arn: string, req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const invocationType = req.headers[HEADER_INVOCATION_TYPE]
    if (invocationType !== undefined && invocationType !== 'RequestResponse') {
      errorReply(
        res,
        400,
        `X-Amz-Invocation-Type "${String(invocationType)}" is not supported; inference services answer RequestResponse only`,
        'InvalidRequest',
      )
      return
    }

    const serviceName = target(arn, res)
    if (serviceName === undefined) return
    let context: ClientContext
    try {
      const header = req.headers[HEADER_CLIENT_CONTEXT]
      context = decodeClientContext(Array.isArray(header) ? header.join(',') : header)
    } catch (error) {
      errorReply(res, 400, (error as Error).message, 'InvalidRequest')
      return
    }

    if (full(res) || stopped(res)) return
    // the body's bytes count against the host's budget (./http-io.ts ByteBudget) until its inference is done
    const declared = Number(req.headers['content-length'])
    const reserve = Number.isFinite(declared) ? Math.min(declared, bodyLimit) : bodyLimit
    if (options.budget && !options.budget.take(reserve)) {
      errorReply(
        res,
        503,
        `icc serve holds too many request bodies (--max-buffered-bytes); retry later`,
        'TooManyRequestsException',
        {
          connection: 'close',
          'retry-after': '1',
        },
      )
      return
    }

    let given = false
    const giveBack = () => {
      if (!given) options.budget?.give(reserve)
      given = true
    }

    const body = await readBody(req, bodyLimit)
    if (body === 'too-large') {
      giveBack()
      tooLarge(res)
      return
    }

    if (body === 'aborted') {
      giveBack()
      return
    }

    // checked again: the table may have filled, or the endpoint closed, while the body arrived
    if (full(res) || stopped(res)) {
      giveBack()
      return
    }

    const id = randomUUID()
    const gone = new ClientGone()
    const entry: Pending = {arn, done: false, gone, outcome: Promise.resolve({} as Outcome)}
    entry.outcome = dispatcher
      .infer(serviceName, {accept: context.accept, body, contentType: context.contentType, signal: gone})
      .then(
        (result): Outcome => ({kind: 'ok', result}),
        (error: unknown) => outcomeOf(error),
      )
      .then((outcome) => {
        giveBack()
        entry.done = true
        if (pending.get(id) === entry) {
          entry.timer = setTimeout(() => drop(id), ttlMs)
          entry.timer.unref()
        }

        return outcome
      })
    pending.set(id, entry)
    if (res.headersSent || res.destroyed) return
    res.writeHead(202, {'content-length': 0, 'x-amz-invocationid': id})
    res.end()
  }

  // GET: hand out the result once (waiting for it when the inference is still running)
  const get = async (arn: string, req: IncomingMessage, res: ServerResponse): Promise<void> => {
    req.resume()
    const id = req.headers[HEADER_INVOCATION_ID]
    if (typeof id !== 'string' || id.length === 0) {
      errorReply(res, 400, 'missing X-Amz-InvocationId header', 'InvalidRequest')
      return
    }

    const entry = pending.get(id)
    if (!entry || entry.arn !== arn) {
      errorReply(
        res,
        404,
        `no result for invocation ${id} of ${arn}: unknown id, already fetched, or expired after ${ttlMs} ms`,
        'ResourceNotFound',
      )
      return
    }

    clearTimeout(entry.timer)
    pending.delete(id)
    const outcome = await entry.outcome
    if (outcome.kind === 'ok') {
      // the connector body is digits, '-', '+', '.', ',', 'e', brackets and the letters of NaN and Infinity: nothing
      // JSON escapes, so in quotes it is its own JSON string (no escaping pass over ~12 KB per call)
      sendJson(res, 200, `{"Body":"${outcome.result.body}","ContentType":"application/json"}`, {}, JSON_TYPE)
      return
    }

    errorReply(res, 200, outcome.message, outcome.type, {[HEADER_FUNCTION_ERROR]: outcome.functionError})
  }

  const notFound = (req: IncomingMessage, res: ServerResponse, path: string): void =>
    errorReply(
      res,
      404,
      `${req.method} ${path} is not part of the Greengrass IPC API; the ML SDK posts to ${FUNCTIONS}<function ARN>`,
      'ResourceNotFound',
    )

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    const rest = path.startsWith(FUNCTIONS) ? path.slice(FUNCTIONS.length) : ''
    const slash = rest.indexOf('/')
    if (rest.length === 0 || (slash !== -1 && (slash === 0 || rest.slice(slash) !== WORK))) {
      notFound(req, res, path)
      return
    }

    if (slash !== -1) {
      errorReply(res, 404, 'icc serve answers inference invocations only (no /work API)', 'ResourceNotFound')
      return
    }

    let arn: string
    try {
      arn = decodeURIComponent(rest)
    } catch {
      errorReply(res, 400, `the function ARN "${rest}" in the path is not valid URL encoding`, 'InvalidRequest')
      return
    }

    if (req.method !== 'POST' && req.method !== 'GET') {
      errorReply(
        res,
        405,
        `${req.method} is not part of the Greengrass IPC API: POST starts an invocation, GET fetches its result`,
        'InvalidRequest',
        {allow: 'GET, POST'},
      )
      return
    }

    if (!authorized(req)) {
      refuse(req, res)
      return
    }

    const answer = req.method === 'POST' ? post(arn, req, res) : get(arn, req, res)
    answer.catch((error: unknown) => {
      errorReply(res, 500, `internal error: ${(error as Error)?.message ?? String(error)}`, 'ServiceException')
    })
  }

  return {
    dispose() {
      disposed = true
      for (const id of pending.keys()) drop(id)
    },
    handle,
    pending: () => pending.size,
  }
}

/** Start the IPC endpoint on its own loopback listener (`icc serve --ipc-port`). */
export async function startIpcServer(options: IpcServerOptions): Promise<IpcServer> {
  const host = options.host ?? '127.0.0.1'
  if (!LOOPBACK_HOSTS.has(host)) {
    throw new UsageError('IPC_NOT_LOOPBACK', `the Greengrass IPC endpoint binds loopback only, not ${host}`, {
      suggestions: ['use 127.0.0.1 (default) or ::1'],
    })
  }

  const endpoint = ipcEndpoint(options)
  // answers being worked on; when the endpoint closes, they close their connection as they finish
  const active = new Map<ServerResponse, IncomingMessage>()
  let closing = false
  // Lambda code calls at its own pace: an idle connection is kept for a while, so that the next call does not
  // connect again (the client replaces one that the endpoint closed just as it was reused)
  const limits = options.limits ?? {
    clientTimeoutMs: 30_000,
    maxConnections: DEFAULT_MAX_CONNECTIONS,
    requestTimeoutMs: 30_000 + 60_000,
  }
  const server = limitedServer(limits, (req, res) => {
    if (closing) res.shouldKeepAlive = false
    active.set(res, req)
    res.once('close', () => active.delete(res))
    endpoint.handle(req, res)
  })
  server.keepAliveTimeout = 72_000
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({host, port: options.port ?? 0}, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (error) {
    endpoint.dispose()
    throw new UsageError(
      'IPC_LISTEN_FAILED',
      `cannot listen on ${host}:${options.port ?? 0} for the Greengrass IPC endpoint: ${(error as Error).message}`,
      {cause: error, suggestions: ['choose another --ipc-port, or stop the process that holds it']},
    )
  }

  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : (options.port ?? 0)
  let closed: Promise<void> | undefined
  return {
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing = true
        endpoint.dispose()
        // idle kept-alive connections are closed at once, and so is an upload still under way (its POST would be
        // refused now); a GET still waiting for its result is answered first, and its connection closed after it
        for (const [res, req] of active) {
          res.shouldKeepAlive = false
          if (!req.complete) req.socket.destroy()
        }

        server.close(() => resolve())
        server.closeIdleConnections()
      })
      return closed
    },
    host,
    pendingResults: endpoint.pending,
    port,
  }
}
