/**
 * The Greengrass IPC API as a node:http request handler (./ipc-protocol.ts describes the protocol): the POST that
 * starts an inference (every check the headers allow before the body is read, the body within the host's byte
 * budget), the GET that hands its result out once, and the table of results waiting to be fetched (bounded in
 * number, expiring when nobody fetches them). Every call of the ML SDK is two requests, so the endpoint does no
 * more per request than the native invocation route does (./invocations.ts).
 */
import type {IncomingMessage, ServerResponse} from 'node:http'

import {randomUUID} from 'node:crypto'

import {UsageError} from '../errors.js'
import {type ByteBudget, readBody, sendJson} from './http-io.js'
import {
  type ClientContext,
  decodeClientContext,
  errorReply,
  HEADER_CLIENT_CONTEXT,
  HEADER_FUNCTION_ERROR,
  HEADER_INVOCATION_ID,
  HEADER_INVOCATION_TYPE,
  IPC_API_VERSION,
  JSON_TYPE,
  type Outcome,
  outcomeOf,
  parseFunctionArn,
  SERVICE_NAME,
  SUPPORTED_ALGO_TYPE,
} from './ipc-protocol.js'
import {tokenChecker} from './tokens.js'
import {ClientGone, DEFAULT_MAX_BODY_BYTES, type Dispatcher} from './types.js'

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

/** The IPC API as a node:http request handler, and its table of results waiting to be fetched. */
export interface IpcEndpoint {
  /** Drop every pending result (running inferences are aborted) and refuse new invocations with 503. */
  dispose(): void
  handle(req: IncomingMessage, res: ServerResponse): void
  pending(): number
}

interface Pending {
  gone: ClientGone
  arn: string
  done: boolean
  outcome: Promise<Outcome>
  timer?: NodeJS.Timeout
}

const FUNCTIONS = `/${IPC_API_VERSION}/functions/`
const WORK = '/work'

/** Results waiting to be fetched: bounded in number, each dropped `ttlMs` after it is done unless fetched. */
class Results {
  private readonly entries = new Map<string, Pending>()

  constructor(
    private readonly ttlMs: number,
    readonly max: number,
  ) {}

  get size(): number {
    return this.entries.size
  }

  /** Start waiting for `outcome` (the inference is running); resolves to the outcome once it is done. */
  add(arn: string, gone: ClientGone, outcome: Promise<Outcome>): string {
    const id = randomUUID()
    const entry: Pending = {arn, done: false, gone, outcome}
    entry.outcome = outcome.then((o) => {
      entry.done = true
      if (this.entries.get(id) === entry) {
        entry.timer = setTimeout(() => this.drop(id), this.ttlMs)
        entry.timer.unref()
      }

      return o
    })
    this.entries.set(id, entry)
    return id
  }

  /** Drop a result (its inference is aborted when it still runs). */
  drop(id: string): void {
    const entry = this.entries.get(id)
    if (!entry) return
    clearTimeout(entry.timer)
    this.entries.delete(id)
    if (!entry.done) entry.gone.abort()
  }

  dropAll(): void {
    for (const id of this.entries.keys()) this.drop(id)
  }

  /** Hand out the result of `id` for `arn`, once; undefined when there is none. */
  take(id: string, arn: string): Promise<Outcome> | undefined {
    const entry = this.entries.get(id)
    if (!entry || entry.arn !== arn) return undefined
    clearTimeout(entry.timer)
    this.entries.delete(id)
    return entry.outcome
  }
}

/** The endpoint's answers to calls it refuses. */
class Refusals {
  constructor(
    private readonly bodyLimit: number,
    private readonly maxPending: number,
  ) {}

  /** No or a wrong token: 401/403, the connection closed after the answer (the body of a refused call is unread). */
  unauthorized(req: IncomingMessage, res: ServerResponse): void {
    if (req.headers.authorization) {
      errorReply(res, 403, 'the Authorization token is not the one this icc serve accepts', 'AccessDenied', {
        connection: 'close',
      })
      return
    }

    errorReply(
      res,
      401,
      'missing Authorization header: set AWS_CONTAINER_AUTHORIZATION_TOKEN for the Lambda (icc serve --print-env)',
      'AccessDenied',
      {connection: 'close'},
    )
  }

  /** The unread rest of an oversize body is not worth reading: the connection is closed after answering. */
  tooLarge(res: ServerResponse): void {
    errorReply(res, 413, `request body is larger than the limit of ${this.bodyLimit} bytes`, 'RequestTooLarge', {
      connection: 'close',
    })
  }

  overBudget(res: ServerResponse): void {
    errorReply(
      res,
      503,
      `icc serve holds too many request bodies (--max-buffered-bytes); retry later`,
      'TooManyRequestsException',
      {connection: 'close', 'retry-after': '1'},
    )
  }

  tooManyResults(res: ServerResponse): void {
    errorReply(
      res,
      429,
      `too many inference results are waiting to be fetched (${this.maxPending}); fetch results with GET before posting more`,
      'TooManyRequests',
      {'retry-after': '1'},
    )
  }

  shuttingDown(res: ServerResponse): void {
    errorReply(res, 503, 'icc serve is shutting down; no new inference is started', 'ServiceUnavailable')
  }

  notFound(req: IncomingMessage, res: ServerResponse, path: string): void {
    errorReply(
      res,
      404,
      `${req.method} ${path} is not part of the Greengrass IPC API; the ML SDK posts to ${FUNCTIONS}<function ARN>`,
      'ResourceNotFound',
    )
  }
}

/** The service a POST addresses (undefined, having answered 404 or 503, when there is none or it is not ready). */
function target(arn: string, res: ServerResponse, dispatcher: Dispatcher, region?: string): string | undefined {
  const notFound = (message: string) => {
    errorReply(res, 404, message, 'ResourceNotFound')
    return undefined
  }

  const parsed = parseFunctionArn(arn, dispatcher.serviceNames())
  if (!parsed) {
    return notFound(
      `function ${arn} is not an inference service; expected arn:aws:lambda:<region>:aws:function:GG-ML-INF-${SUPPORTED_ALGO_TYPE}-<ServiceName>`,
    )
  }

  if (region !== undefined && parsed.region !== region) {
    return notFound(
      `function ${arn} names region ${parsed.region}, but this icc serve runs as ${region}; set AWS_REGION=${region} for the Lambda`,
    )
  }

  if (parsed.algoType !== SUPPORTED_ALGO_TYPE) {
    return notFound(`AlgoType "${parsed.algoType}" is not supported; only "${SUPPORTED_ALGO_TYPE}" is`)
  }

  const status = SERVICE_NAME.test(parsed.serviceName) ? dispatcher.status(parsed.serviceName) : undefined
  if (!status) {
    const names = dispatcher.serviceNames()
    return notFound(
      `no local inference service named "${parsed.serviceName}"; this icc serve runs: ${names.length > 0 ? names.join(', ') : '(none)'}`,
    )
  }

  if (!status.ready) {
    const why = status.reason ? `: ${status.reason}` : ''
    const message = `inference service "${parsed.serviceName}" is not ready${why}`
    errorReply(res, 503, message, 'ServiceUnavailable', {'retry-after': '1'})
    return undefined
  }

  return parsed.serviceName
}

/** What a POST's headers ask for (undefined, having answered 400/404/503, when they cannot be served). */
function postHeaders(
  arn: string,
  req: IncomingMessage,
  res: ServerResponse,
  options: IpcOptions,
): undefined | {context: ClientContext; serviceName: string} {
  const invocationType = req.headers[HEADER_INVOCATION_TYPE]
  if (invocationType !== undefined && invocationType !== 'RequestResponse') {
    errorReply(
      res,
      400,
      `X-Amz-Invocation-Type "${String(invocationType)}" is not supported; inference services answer RequestResponse only`,
      'InvalidRequest',
    )
    return undefined
  }

  const serviceName = target(arn, res, options.dispatcher, options.region)
  if (serviceName === undefined) return undefined
  try {
    const header = req.headers[HEADER_CLIENT_CONTEXT]
    return {context: decodeClientContext(Array.isArray(header) ? header.join(',') : header), serviceName}
  } catch (error) {
    errorReply(res, 400, (error as Error).message, 'InvalidRequest')
    return undefined
  }
}

/** The function ARN a request's path names (undefined, having answered 400/404/405, when there is none). */
function functionOf(req: IncomingMessage, res: ServerResponse, refusals: Refusals): string | undefined {
  const url = req.url ?? '/'
  const q = url.indexOf('?')
  const path = q === -1 ? url : url.slice(0, q)
  const rest = path.startsWith(FUNCTIONS) ? path.slice(FUNCTIONS.length) : ''
  const slash = rest.indexOf('/')
  if (rest.length === 0 || (slash !== -1 && (slash === 0 || rest.slice(slash) !== WORK))) {
    refusals.notFound(req, res, path)
    return undefined
  }

  if (slash !== -1) {
    errorReply(res, 404, 'icc serve answers inference invocations only (no /work API)', 'ResourceNotFound')
    return undefined
  }

  let arn: string
  try {
    arn = decodeURIComponent(rest)
  } catch {
    errorReply(res, 400, `the function ARN "${rest}" in the path is not valid URL encoding`, 'InvalidRequest')
    return undefined
  }

  if (req.method !== 'POST' && req.method !== 'GET') {
    errorReply(
      res,
      405,
      `${req.method} is not part of the Greengrass IPC API: POST starts an invocation, GET fetches its result`,
      'InvalidRequest',
      {allow: 'GET, POST'},
    )
    return undefined
  }

  return arn
}

/** What the POST and GET handlers share. */
interface Endpoint {
  bodyLimit: number
  disposed: boolean
  options: IpcOptions
  refusals: Refusals
  results: Results
  ttlMs: number
}

/** True, having answered 429 or 503, when no inference can start now (results table full, shutting down). */
function cannotStart(e: Endpoint, res: ServerResponse): boolean {
  if (e.results.size >= e.results.max) e.refusals.tooManyResults(res)
  else if (e.disposed) e.refusals.shuttingDown(res)
  else return false
  return true
}

/** POST: check everything the headers say before reading the body, then start the inference and answer 202. */
async function post(e: Endpoint, arn: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const {budget, dispatcher} = e.options
  const call = postHeaders(arn, req, res, e.options)
  if (!call || cannotStart(e, res)) return
  // a body declared over the limit is refused first (413: retrying cannot help); the body's bytes count against
  // the host's budget (./http-io.ts ByteBudget) until its inference is done
  const declared = Number(req.headers['content-length'])
  if (declared > e.bodyLimit) {
    e.refusals.tooLarge(res)
    return
  }

  const reserve = Number.isFinite(declared) ? declared : e.bodyLimit
  if (budget && !budget.take(reserve)) {
    e.refusals.overBudget(res)
    return
  }

  let given = false
  const giveBack = () => {
    if (!given) budget?.give(reserve)
    given = true
  }

  const body = await readBody(req, e.bodyLimit)
  if (body === 'too-large') e.refusals.tooLarge(res)
  // checked again: the table may have filled, or the endpoint closed, while the body arrived
  if (typeof body === 'string' || cannotStart(e, res)) {
    giveBack()
    return
  }

  const gone = new ClientGone()
  const {accept, contentType} = call.context
  const outcome = dispatcher
    .infer(call.serviceName, {accept, body, contentType, signal: gone})
    .then(
      (result): Outcome => ({kind: 'ok', result}),
      (error: unknown) => outcomeOf(error),
    )
    .finally(giveBack)
  const id = e.results.add(arn, gone, outcome)
  if (res.headersSent || res.destroyed) return
  res.writeHead(202, {'content-length': 0, [HEADER_INVOCATION_ID]: id})
  res.end()
}

/** GET: hand out the result once (waiting for it when the inference is still running). */
async function get(e: Endpoint, arn: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  req.resume()
  const id = req.headers[HEADER_INVOCATION_ID]
  if (typeof id !== 'string' || id.length === 0) {
    errorReply(res, 400, 'missing X-Amz-InvocationId header', 'InvalidRequest')
    return
  }

  const pending = e.results.take(id, arn)
  if (!pending) {
    const why = `unknown id, already fetched, or expired after ${e.ttlMs} ms`
    errorReply(res, 404, `no result for invocation ${id} of ${arn}: ${why}`, 'ResourceNotFound')
    return
  }

  const outcome = await pending
  if (outcome.kind === 'ok') {
    // the connector body is digits, '-', '+', '.', ',', 'e', brackets and the letters of NaN and Infinity: nothing
    // JSON escapes, so in quotes it is its own JSON string (no escaping pass over ~12 KB per call)
    sendJson(res, 200, `{"Body":"${outcome.result.body}","ContentType":"application/json"}`, {}, JSON_TYPE)
    return
  }

  errorReply(res, 200, outcome.message, outcome.type, {[HEADER_FUNCTION_ERROR]: outcome.functionError})
}

/** The IPC API on node:http directly: a call of the ML SDK is two requests (POST the image, GET the result). */
export function ipcEndpoint(options: IpcOptions): IpcEndpoint {
  if (typeof options.authToken !== 'string' || options.authToken.length === 0) {
    throw new UsageError('IPC_TOKEN_MISSING', 'the Greengrass IPC endpoint needs a non-empty auth token', {
      suggestions: ['pass --ipc-auth-token TOKEN or set AWS_CONTAINER_AUTHORIZATION_TOKEN'],
    })
  }

  const ttlMs = options.resultTtlMs ?? 60_000
  const bodyLimit = options.bodyLimitBytes ?? DEFAULT_MAX_BODY_BYTES
  const isToken = tokenChecker(options.authToken)
  const results = new Results(ttlMs, options.maxPendingResults ?? 1000)
  const e: Endpoint = {
    bodyLimit,
    disposed: false,
    options,
    refusals: new Refusals(bodyLimit, results.max),
    results,
    ttlMs,
  }
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const arn = functionOf(req, res, e.refusals)
    if (arn === undefined) return
    if (!isToken(req.headers.authorization)) {
      e.refusals.unauthorized(req, res)
      return
    }

    const answer = req.method === 'POST' ? post(e, arn, req, res) : get(e, arn, req, res)
    answer.catch((error: unknown) => {
      errorReply(res, 500, `internal error: ${(error as Error)?.message ?? String(error)}`, 'ServiceException')
    })
  }

  return {
    dispose() {
      e.disposed = true
      results.dropAll()
    },
    handle,
    pending: () => results.size,
  }
}
