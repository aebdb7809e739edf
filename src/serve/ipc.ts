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
 * loopback only. {@link lambdaEnvironment} gives the variables a Lambda process needs to find it.
 */
import Fastify, {type FastifyInstance, type FastifyReply, type FastifyRequest} from 'fastify'
import {createHash, randomBytes, randomUUID, timingSafeEqual} from 'node:crypto'

import {UsageError} from '../errors.js'
import {type Dispatcher, type InferenceResult, ServeError, type ServeErrorCode} from './types.js'

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
  /** Largest request body (image) in bytes; default 16 MiB. */
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
  abort: AbortController
  arn: string
  done: boolean
  outcome: Promise<Outcome>
  timer?: NodeJS.Timeout
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest()
}

function errorReply(reply: FastifyReply, status: number, message: string, type: string): FastifyReply {
  return reply.code(status).header('content-type', 'application/json').send({errorMessage: message, errorType: type})
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

/**
 * Register the IPC routes on a fastify instance. The instance must leave body parsing of these routes to this
 * function (it adds a catch-all buffer parser). Returns a function that drops all pending results.
 */
export function registerIpcRoutes(app: FastifyInstance, options: IpcOptions): {dispose(): void; pending(): number} {
  if (typeof options.authToken !== 'string' || options.authToken.length === 0) {
    throw new UsageError('IPC_TOKEN_MISSING', 'the Greengrass IPC endpoint needs a non-empty auth token', {
      suggestions: ['pass --ipc-auth-token TOKEN or set AWS_CONTAINER_AUTHORIZATION_TOKEN'],
    })
  }

  const {dispatcher} = options
  const ttlMs = options.resultTtlMs ?? 60_000
  const maxPending = options.maxPendingResults ?? 1000
  const bodyLimit = options.bodyLimitBytes ?? 16 * 1024 * 1024
  const tokenDigest = digest(options.authToken)
  const pending = new Map<string, Pending>()

  const authorized = (request: FastifyRequest): boolean => {
    const given = request.headers.authorization
    if (typeof given !== 'string' || given.length === 0) return false
    return timingSafeEqual(digest(given), tokenDigest)
  }

  const refuse = (request: FastifyRequest, reply: FastifyReply): FastifyReply =>
    request.headers.authorization
      ? errorReply(reply, 403, 'the Authorization token is not the one this icc serve accepts', 'AccessDenied')
      : errorReply(
          reply,
          401,
          'missing Authorization header: set AWS_CONTAINER_AUTHORIZATION_TOKEN for the Lambda (icc serve --print-env)',
          'AccessDenied',
        )

  const drop = (id: string): void => {
    const entry = pending.get(id)
    if (!entry) return
    clearTimeout(entry.timer)
    pending.delete(id)
    if (!entry.done) entry.abort.abort()
  }

  app.addContentTypeParser('*', {bodyLimit, parseAs: 'buffer'}, (_request, body, done) => {
    done(null, body)
  })

  const path = `/${IPC_API_VERSION}/functions/:arn`

  app.post(path, {bodyLimit}, async (request, reply) => {
    if (!authorized(request)) return refuse(request, reply)
    const {arn} = request.params as {arn: string}
    const invocationType = request.headers[HEADER_INVOCATION_TYPE]
    if (invocationType !== undefined && invocationType !== 'RequestResponse') {
      return errorReply(
        reply,
        400,
        `X-Amz-Invocation-Type "${String(invocationType)}" is not supported; inference services answer RequestResponse only`,
        'InvalidRequest',
      )
    }

    const parsed = parseFunctionArn(arn, dispatcher.serviceNames())
    if (!parsed) {
      return errorReply(
        reply,
        404,
        `function ${arn} is not an inference service; expected arn:aws:lambda:<region>:aws:function:GG-ML-INF-${SUPPORTED_ALGO_TYPE}-<ServiceName>`,
        'ResourceNotFound',
      )
    }

    if (options.region !== undefined && parsed.region !== options.region) {
      return errorReply(
        reply,
        404,
        `function ${arn} names region ${parsed.region}, but this icc serve runs as ${options.region}; set AWS_REGION=${options.region} for the Lambda`,
        'ResourceNotFound',
      )
    }

    if (parsed.algoType !== SUPPORTED_ALGO_TYPE) {
      return errorReply(
        reply,
        404,
        `AlgoType "${parsed.algoType}" is not supported; only "${SUPPORTED_ALGO_TYPE}" is`,
        'ResourceNotFound',
      )
    }

    const status = SERVICE_NAME.test(parsed.serviceName) ? dispatcher.status(parsed.serviceName) : undefined
    if (!status) {
      const names = dispatcher.serviceNames()
      return errorReply(
        reply,
        404,
        `no local inference service named "${parsed.serviceName}"; this icc serve runs: ${names.length > 0 ? names.join(', ') : '(none)'}`,
        'ResourceNotFound',
      )
    }

    if (!status.ready) {
      reply.header('retry-after', '1')
      return errorReply(
        reply,
        503,
        `inference service "${parsed.serviceName}" is not ready${status.reason ? `: ${status.reason}` : ''}`,
        'ServiceUnavailable',
      )
    }

    let context: ClientContext
    try {
      const header = request.headers[HEADER_CLIENT_CONTEXT]
      context = decodeClientContext(Array.isArray(header) ? header.join(',') : header)
    } catch (error) {
      return errorReply(reply, 400, (error as Error).message, 'InvalidRequest')
    }

    if (pending.size >= maxPending) {
      reply.header('retry-after', '1')
      return errorReply(
        reply,
        429,
        `too many inference results are waiting to be fetched (${maxPending}); fetch results with GET before posting more`,
        'TooManyRequests',
      )
    }

    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0)
    const id = randomUUID()
    const abort = new AbortController()
    const entry: Pending = {abort, arn, done: false, outcome: Promise.resolve({} as Outcome)}
    entry.outcome = dispatcher
      .infer(parsed.serviceName, {accept: context.accept, body, contentType: context.contentType, signal: abort.signal})
      .then(
        (result): Outcome => ({kind: 'ok', result}),
        (error: unknown) => outcomeOf(error),
      )
      .then((outcome) => {
        entry.done = true
        if (pending.get(id) === entry) {
          entry.timer = setTimeout(() => drop(id), ttlMs)
          entry.timer.unref()
        }

        return outcome
      })
    pending.set(id, entry)
    return reply.code(202).header('X-Amz-InvocationId', id).send('')
  })

  app.get(path, async (request, reply) => {
    if (!authorized(request)) return refuse(request, reply)
    const {arn} = request.params as {arn: string}
    const id = request.headers[HEADER_INVOCATION_ID]
    if (typeof id !== 'string' || id.length === 0) {
      return errorReply(reply, 400, 'missing X-Amz-InvocationId header', 'InvalidRequest')
    }

    const entry = pending.get(id)
    if (!entry || entry.arn !== arn) {
      return errorReply(
        reply,
        404,
        `no result for invocation ${id} of ${arn}: unknown id, already fetched, or expired after ${ttlMs} ms`,
        'ResourceNotFound',
      )
    }

    clearTimeout(entry.timer)
    pending.delete(id)
    const outcome = await entry.outcome
    reply.header('content-type', 'application/json')
    if (outcome.kind === 'ok') {
      return reply.code(200).send({Body: outcome.result.body, ContentType: 'application/json'})
    }

    return reply
      .code(200)
      .header('X-Amz-Function-Error', outcome.functionError)
      .send({errorMessage: outcome.message, errorType: outcome.type})
  })

  const unsupported = async (_request: FastifyRequest, reply: FastifyReply) =>
    errorReply(reply, 404, 'icc serve answers inference invocations only (no /work API)', 'ResourceNotFound')
  app.all(`/${IPC_API_VERSION}/functions/:arn/work`, unsupported)

  return {
    dispose() {
      for (const id of pending.keys()) drop(id)
    },
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

  const bodyLimit = options.bodyLimitBytes ?? 16 * 1024 * 1024
  const app = Fastify({bodyLimit, logger: false})
  app.removeAllContentTypeParsers()
  app.setErrorHandler((error: {message?: string; statusCode?: number}, _request, reply) => {
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500
    const message =
      status === 413 ? `request body is larger than the limit of ${bodyLimit} bytes` : (error.message ?? 'error')
    return errorReply(reply, status, message, status === 413 ? 'RequestTooLarge' : 'InvalidRequest')
  })
  app.setNotFoundHandler((request, reply) =>
    errorReply(
      reply,
      404,
      `${request.method} ${request.url.split('?')[0]} is not part of the Greengrass IPC API; the ML SDK posts to /${IPC_API_VERSION}/functions/<function ARN>`,
      'ResourceNotFound',
    ),
  )
  const routes = registerIpcRoutes(app, {...options, bodyLimitBytes: bodyLimit})
  try {
    await app.listen({host, port: options.port ?? 0})
  } catch (error) {
    routes.dispose()
    await app.close()
    throw new UsageError(
      'IPC_LISTEN_FAILED',
      `cannot listen on ${host}:${options.port ?? 0} for the Greengrass IPC endpoint: ${(error as Error).message}`,
      {cause: error, suggestions: ['choose another --ipc-port, or stop the process that holds it']},
    )
  }

  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : (options.port ?? 0)
  return {
    async close() {
      routes.dispose()
      await app.close()
    },
    host,
    pendingResults: routes.pending,
    port,
  }
}
