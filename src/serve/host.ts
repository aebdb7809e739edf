/**
 * The inference host of `icc serve`: starts one supervised runner per service (./service.ts), then answers HTTP
 * on a unix socket (default) and optionally TCP.
 *
 * Routes: POST /services/{ServiceName}/invocations and POST /invocations (the first service; SageMaker container
 * contract), answered by ./invocations.ts on node:http directly (the hot path); GET /ping, /v2/health/live,
 * /v2/health/ready, /v2/models/{name}, /metrics, served by Fastify on the same listeners. Invocation bodies are
 * the image bytes (Content-Type image/jpeg, image/png, application/x-image or none: sniffed); success returns
 * the connector's body `[p0,...]` (or JSON with `Accept: application/json; verbose` / `?top_k=N`) and a
 * Server-Timing header. Errors are `{"error":{"code","message"}}` with the status of `httpStatus`.
 *
 * Programmatic API: `startHost(options)` resolves once every service is ready (or rejects with the typed start-up
 * error after stopping what it started) to `{addresses, close(), dispatcher, app, services}`; the Greengrass IPC
 * endpoint plugs into `dispatcher` (the `Dispatcher` interface of ./types.ts).
 */
import type {IncomingMessage, Server, ServerResponse} from 'node:http'

import Fastify, {type FastifyInstance, type FastifyReply} from 'fastify'
import {chmod, unlink} from 'node:fs/promises'
import {createServer} from 'node:net'
import {basename, join} from 'node:path'
import pino, {type Logger} from 'pino'

import type {Runtime} from '../model/session.js'
import type {ServiceConfig} from './config.js'

import {asIccError, IccError, UsageError} from '../errors.js'
import {DEFAULT_RESIZE_MODE, type ResizeMode} from '../model/types.js'
import {type AccessLog, accessLog, logDestination, type LogFormat} from './access-log.js'
import {
  ByteBudget,
  DEFAULT_MAX_BUFFERED_BYTES,
  DEFAULT_MAX_CONNECTIONS,
  limitedServer,
  type ListenerLimits,
  sendJson,
} from './http-io.js'
import {httpStatus, invocationRoute} from './invocations.js'
import {memoryLimitSuggestions} from './memory.js'
import {Metrics} from './metrics.js'
import {defaultSocketPath, prepareSocketPath} from './paths.js'
import {type ModelWatch, registerReloadRoute, watchServices} from './reload-triggers.js'
import {ModelReloader} from './reload.js'
import {Service, type ServiceRequest} from './service.js'
import {handleServeSignals} from './signals.js'
import {RecentErrors, registerStatusPage} from './status-page.js'
import {tokenChecker} from './tokens.js'
import {tierUpServingCode} from './tuning.js'
import {DEFAULT_MAX_BODY_BYTES, type Dispatcher, type InferenceResult, ServeError} from './types.js'

export {httpStatus} from './invocations.js'

export interface HostOptions {
  /** One `info` line per inference request (default true; ./access-log.ts). */
  accessLog?: boolean
  /** Bearer tokens that allow a model reload over TCP (`--admin-token`, the IPC auth token); the socket needs none. */
  adminTokens?: string[]
  /**
   * The TCP listener asks for `Authorization: Bearer <token>` on every route (401 and the connection closed
   * otherwise); required with a non-loopback `host`. The unix socket is guarded by its folder's permissions.
   */
  authToken?: string
  cacheDir?: string
  /** --input-shape C,H,W for models without model-shapes.json (otherwise inferred from their parameters). */
  inputShape?: number[]
  /** --labels: class names for every service (../model/labels.ts). */
  labelsFile?: string
  /**
   * Slow or idle clients: the request headers must arrive within this many ms of the connection (default 30000),
   * the whole request within this plus the longest service timeout.
   */
  clientTimeoutMs?: number
  /** Crash-loop detection (default 5 crashes within 60 s, then a 60 s cool-down). */
  crashLoop?: {cooldownMs?: number; limit?: number; windowMs?: number}
  /** Bounded wait for in-flight requests at shutdown (default: the longest service timeout + 1 s). */
  drainMs?: number
  /** TCP host; default 127.0.0.1. */
  host?: string
  intraOpThreads?: number
  /** Which ONNX Runtime the runners use (../model/session.ts; default: $ICC_RUNTIME, else auto). */
  runtime?: Runtime
  /** pino level (default info). */
  logLevel?: string
  /** Write `<dir>/<ServiceName>.log` per service (as well as the main log stream). */
  logDir?: string
  /** Main log stream (default: stderr). */
  logStream?: NodeJS.WritableStream
  /** Request-body bytes held at once across listeners (default 256 MiB); beyond, 503 OVERLOADED at once. */
  maxBufferedBytes?: number
  /** Open connections per listener (default 1024); beyond, new connections are closed at once. */
  maxConnections?: number
  /** JSON lines (default) or pino-pretty's short human format on the main stream; --log-dir files stay JSON. */
  logFormat?: LogFormat
  /** Largest accepted request body (default 20 MiB). */
  maxBodyBytes?: number
  /** Most memory all runners together may use while a reload runs two for one service (KiB; default: MemAvailable). */
  memoryBudgetKb?: number
  /** Most images per ONNX Runtime run when requests are waiting (dynamic batching; default 2). */
  maxBatch?: number
  /**
   * Requests sent to each runner ahead of time (default 2 x maxBatch, at least 2), so the runner decodes the next
   * images while ONNX Runtime runs the current batch. On a runner kill, the requests sent behind the one running are
   * re-queued.
   */
  pipelineDepth?: number
  /** TCP port (0: any free port); undefined: no TCP listener. */
  port?: number
  /** Image preprocessing of every runner (default `exact`, the connector's OpenCV arithmetic; `fast` may change answers). */
  resize?: ResizeMode
  /** Bounded queue per service (default 64). */
  queueLimit?: number
  /** Extra environment for the runners (tests). */
  runnerEnv?: Record<string, string>
  services: HostServices
  /** Unix socket path (default: $XDG_RUNTIME_DIR/icc/icc.sock or /tmp/icc-$UID/icc.sock); false: none. */
  socket?: false | string
  /**
   * Any service that cannot start fails start-up (default: with several services, one whose model is missing or
   * fails to load is reported not ready and the others serve).
   */
  strict?: boolean
  /** Reload a service when the file or folder of its model changes (./reload-triggers.ts). */
  watch?: boolean | {quietMs: number}
}

/** The services to run; `notReady`: known not to start (its model is missing), reported not ready for that. */
export type HostServices = (ServiceConfig & {modelPath: string; notReady?: string})[]

export interface HostAddresses {
  socket?: string
  tcp?: {host: string; port: number; url: string}
}

export interface StartedService {
  loadMs: number
  memoryMode?: string
  modelHash: string
  name: string
  numClasses: number
  provider: string
  rssKb: number
  runtime: string
  warmupMs: number
}

export interface Host {
  /** Sees every answered request: the access line (unless off) and the status page's recent errors. */
  accessLog: AccessLog
  addresses: HostAddresses
  app: FastifyInstance
  /** Stop accepting, drain (bounded), stop the runners. */
  close(): Promise<void>
  dispatcher: Dispatcher & {infer(serviceName: string, request: ServiceRequest): Promise<InferenceResult>}
  /** The request-body bytes held at once (the Greengrass IPC endpoint takes from the same budget). */
  budget: ByteBudget
  /** The client timeouts and connection cap of the listeners (the Greengrass IPC listener takes the same). */
  limits: ListenerLimits
  logger: Logger
  /** Model reloads (SIGHUP, the HTTP route, --watch): ./reload.ts. */
  reloader: ModelReloader
  services: Map<string, Service>
  started: StartedService[]
  /** Warnings worth showing to the user at start-up (non-loopback TCP, CPU fallback...). */
  warnings: string[]
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host)
}

function makeLogger(options: HostOptions, name: string): Logger {
  const level = options.logLevel ?? 'info'
  const main = logDestination(options.logStream ?? process.stderr, options.logFormat)
  const streams: pino.StreamEntry[] = [{level: level as pino.Level, stream: main}]
  if (options.logDir) {
    streams.push({
      level: level as pino.Level,
      stream: pino.destination({dest: join(options.logDir, `${name}.log`), mkdir: true, sync: true}),
    })
  }

  return pino({base: {service: name}, level, timestamp: pino.stdTimeFunctions.isoTime}, pino.multistream(streams))
}

/** A check of `Authorization: Bearer <token>`: false (401 sent, connection closed) when it is missing or wrong. */
function bearerGuard(token: string): (req: IncomingMessage, res: ServerResponse) => boolean {
  const isToken = tokenChecker(token)
  return (req, res) => {
    const given = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1]
    if (isToken(given)) return true
    const message = 'This TCP listener needs "Authorization: Bearer <token>" (the token of --auth-token-file).'
    sendJson(res, 401, JSON.stringify({error: {code: 'UNAUTHORIZED', message}}), {
      connection: 'close',
      'www-authenticate': 'Bearer',
    })
    return false
  }
}

/** A TCP port someone else listens on fails fast (PORT_IN_USE, exit 2), before any runner starts. */
export async function assertPortFree(host: string, port: number, flag: string): Promise<void> {
  const probe = createServer()
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject)
      probe.listen({exclusive: true, host, port}, () => resolve())
    })
  } catch (error) {
    const e = error as NodeJS.ErrnoException
    if (e.code === 'EADDRINUSE') {
      throw new UsageError(
        'PORT_IN_USE',
        `TCP port ${port} on ${host} (${flag}) is already in use by another server.`,
        {
          details: {host, port},
          suggestions: [`Stop it, or pass ${flag} with another port (0: any free one).`],
        },
      )
    }

    throw new UsageError('LISTEN_FAILED', `icc serve cannot listen on ${host}:${port} (${flag}): ${e.message}`, {
      suggestions: [`Pass ${flag} with another port, or another --host.`],
    })
  } finally {
    await new Promise((resolve) => {
      probe.close(resolve)
    })
  }
}

/**
 * Start every service's runner in parallel. With several services and not `strict`, a service whose model is
 * missing or fails to load stays failed with the reason (its requests get SERVICE_NOT_READY, readiness says why,
 * a warning is returned) while the others serve; otherwise, or when none starts, the first failure is returned.
 */
async function startServices(
  services: Map<string, Service>,
  options: HostOptions,
): Promise<{error?: IccError; notReady: string[]}> {
  const list = [...services.values()]
  const results = await Promise.allSettled(
    list.map(async (s) => {
      const missing = options.services.find((c) => c.name === s.name)?.notReady
      if (missing) throw new UsageError('MODEL_NOT_FOUND', missing)
      return s.start()
    }),
  )
  const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [{error: r.reason as unknown, s: list[i]}] : []))
  if (failed.length > 0 && (options.strict || list.length === 1 || failed.length === list.length)) {
    return {error: asIccError(failed[0].error, 'A service failed to start'), notReady: []}
  }

  const notReady: string[] = []
  for (const {error, s} of failed) {
    const reason = asIccError(error, 'A service failed to start').message
    s.markFailed(reason)
    notReady.push(`${s.name}: not ready (serving the other services; --strict fails start-up instead): ${reason}`)
  }

  return {notReady}
}

function sendError(reply: FastifyReply, error: ServeError): FastifyReply {
  if (error.retryAfter !== undefined) reply.header('Retry-After', String(error.retryAfter))
  return reply
    .code(httpStatus(error.code))
    .type('application/json')
    .send({error: {code: error.code, message: error.message}})
}

/** Start the services and the HTTP listeners. */
export async function startHost(options: HostOptions): Promise<Host> {
  if (options.services.length === 0) throw new UsageError('NO_SERVICES', 'No service to run.')
  const metrics = new Metrics()
  const services = new Map<string, Service>()
  const loggers = new Map<string, Logger>()
  const warnings: string[] = []
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
  const makeService = (name: string) => {
    const s = options.services.find((c) => c.name === name)!
    return new Service({
      allowCpuFallback: s.allowCpuFallback,
      cacheDir: options.cacheDir,
      inputShape: options.inputShape,
      labelsFile: options.labelsFile,
      crashLoopCooldownMs: options.crashLoop?.cooldownMs,
      crashLoopLimit: options.crashLoop?.limit,
      crashLoopWindowMs: options.crashLoop?.windowMs,
      gpu: s.gpu,
      intraOpThreads: options.intraOpThreads,
      logger: loggers.get(name)!,
      runtime: options.runtime,
      memoryLimitKb: s.memoryLimitKb,
      metrics,
      modelPath: s.modelPath,
      name: s.name,
      maxBatch: options.maxBatch,
      pipelineDepth: options.pipelineDepth,
      queueLimit: options.queueLimit ?? 64,
      resize: options.resize,
      runnerEnv: options.runnerEnv,
      timeoutSeconds: s.timeoutSeconds,
    })
  }

  for (const s of options.services) {
    loggers.set(s.name, makeLogger(options, s.name))
    services.set(s.name, makeService(s.name))
  }

  const firstLogger = loggers.values().next().value as Logger
  const logAll = (level: 'error' | 'info' | 'warn', obj: object, msg: string) => {
    for (const l of loggers.values()) l[level](obj, msg)
  }

  if (options.port !== undefined && !isLoopback(options.host ?? '127.0.0.1') && !options.authToken) {
    throw new UsageError(
      'TCP_AUTH_REQUIRED',
      `--host ${options.host} makes the TCP listener reachable from other machines; it needs a token.`,
      {suggestions: ['Pass --auth-token-file FILE (mode 0600; clients send "Authorization: Bearer <token>").']},
    )
  }

  // a socket already served by someone else fails fast, before any runner starts
  const socketPath = options.socket === false ? undefined : (options.socket ?? defaultSocketPath())
  if (socketPath) await prepareSocketPath(socketPath, options.socket === undefined)

  // SIGUSR1 (Node's inspector), SIGUSR2 and SIGHUP: ./signals.ts, until the host has stopped; SIGHUP reloads
  // every service's model once the reloader exists (./reload.ts), and is logged and ignored before that
  let onHangup = () => logAll('warn', {signal: 'SIGHUP'}, 'SIGHUP received while starting; ignored')
  const removeSignalHandlers = handleServeSignals((signal, what) => logAll('warn', {signal}, what), {
    onHangup: () => onHangup(),
  })
  const stopAll = async () => {
    await Promise.all([...services.values()].map((s) => s.stop(0)))
    removeSignalHandlers()
  }

  // a TCP port in use fails fast too, before any runner starts
  if (options.port) await assertPortFree(options.host ?? '127.0.0.1', options.port, '--port')
  // start the runners in parallel (./startServices: which failures fail start-up)
  const started: StartedService[] = []
  const {error: startError, notReady} = await startServices(services, options)
  if (startError) {
    await stopAll()
    throw startError
  }

  warnings.push(...notReady)
  const ready = () => [...services.values()].filter((s) => s.state === 'ready' && s.info)
  for (const s of ready()) {
    const info = s.info!
    for (const w of info.warnings) warnings.push(`${s.name}: ${w}`)
    started.push({
      loadMs: info.loadMs,
      memoryMode: s.memoryMode,
      modelHash: info.modelHash,
      name: s.name,
      numClasses: info.numClasses,
      provider: info.provider,
      rssKb: info.rssKb,
      runtime: info.runtime,
      warmupMs: info.warmupMs,
    })
  }

  // over the memory cap already after load (the watchdog may not have seen the peak)
  for (const s of ready()) {
    const cfg = options.services.find((c) => c.name === s.name)!
    if (s.info!.peakRssKb > cfg.memoryLimitKb && !s.memoryMode?.startsWith('cgroup-')) {
      await stopAll()
      throw new IccError(
        'MEMORY_LIMIT_TOO_SMALL',
        `The model of service "${s.name}" cannot be loaded within LocalInferenceServiceMemoryLimitKB=${cfg.memoryLimitKb}: the runner needed ${s.info!.peakRssKb} KB (measured peak) while loading it.`,
        {
          details: {limitKb: cfg.memoryLimitKb, measuredKb: s.info!.peakRssKb},
          exitCode: 4,
          suggestions: memoryLimitSuggestions(s.info!.peakRssKb),
        },
      )
    }
  }

  const drainMs = options.drainMs ?? Math.max(...options.services.map((s) => s.timeoutSeconds)) * 1000 + 1000
  const reloader = new ModelReloader({
    drainMs,
    logger: (name) => loggers.get(name)!,
    makeService,
    memoryBudgetKb: options.memoryBudgetKb,
    services,
    sourceOf: (name) => options.services.find((c) => c.name === name)!.modelPath,
  })
  onHangup = () => {
    reloader.reloadAll('SIGHUP').catch(() => {})
  }

  let closing = false
  const dispatcher: Host['dispatcher'] = {
    // a plain function that returns the service's promise (rejected, never thrown): no async wrapper per request
    infer(serviceName, request) {
      const s = services.get(serviceName)
      // refused here, before any service: counted here (a name that is not a service is counted under "")
      const refuse = (error: ServeError) => {
        metrics.outcome(s ? serviceName : '', error.code)
        return Promise.reject(error)
      }

      if (!s) {
        return refuse(
          new ServeError(
            'UNKNOWN_SERVICE',
            `No service named "${serviceName}"; this host runs: ${[...services.keys()].join(', ')}.`,
          ),
        )
      }

      if (closing) return refuse(new ServeError('SHUTTING_DOWN', 'icc serve is shutting down.', 5))
      if (!request.body || request.body.length === 0)
        return refuse(new ServeError('BAD_IMAGE', 'The request body is empty; send the image bytes.'))
      return s.infer(request)
    },
    serviceNames: () => [...services.keys()],
    status(serviceName) {
      const s = services.get(serviceName)
      if (!s) return undefined
      return {ready: s.state === 'ready', reason: s.state === 'ready' ? undefined : (s.reason ?? `runner ${s.state}`)}
    },
  }

  // slow clients: the headers must arrive within clientTimeoutMs, the whole request (headers + body) within that
  // plus the longest service timeout; the same limits for the Greengrass IPC listener (./index.ts)
  const clientTimeoutMs = options.clientTimeoutMs ?? 30_000
  const limits: ListenerLimits = {
    clientTimeoutMs,
    maxConnections: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    requestTimeoutMs: clientTimeoutMs + Math.max(...options.services.map((s) => s.timeoutSeconds)) * 1000,
  }
  // the invocations are answered by ./invocations.ts on node:http directly (the hot path); the framework serves
  // the other routes, on the same listeners
  const accessLine = options.accessLog === false ? undefined : accessLog((name) => loggers.get(name), firstLogger)
  const recentErrors = new RecentErrors()
  const access: AccessLog = (entry) => {
    accessLine?.(entry)
    if (entry.code !== 'OK') recentErrors.add(entry)
  }

  const budget = new ByteBudget(options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES)
  const invocations = invocationRoute({
    budget,
    dispatcher,
    firstService: options.services[0].name,
    maxBodyBytes,
    onAnswered: (service, status, code, bytesIn, result) =>
      access({batch: result?.batchSize, bytesIn, code, service, status, timings: result?.timings, transport: 'http'}),
    onInternalError: (name, message) => loggers.get(name)?.error({err: message}, 'request failed'),
    // answers of the route itself (415, 400, 413, a client gone before its body): a name that is not a service
    // of this host is counted under ""
    onOutcome: (name, outcome) => metrics.outcome(services.has(name) ? name : '', outcome),
  })
  // every listener (unix socket, TCP): invocations first, then the framework's router
  const listener = (
    route: (req: IncomingMessage, res: ServerResponse) => void,
    guard?: (req: IncomingMessage, res: ServerResponse) => boolean,
  ) =>
    limitedServer(limits, (req, res) => {
      if (guard && !guard(req, res)) {
        metrics.outcome('', 'UNAUTHORIZED')
        return
      }

      if (!invocations(req, res)) route(req, res)
    })
  const app = Fastify({logger: false, return503OnClosing: true, serverFactory: (route) => listener(route)})
  // the framework's own answers are counted too (under service "": no service was reached)
  app.setErrorHandler((error, _req, reply) => {
    const e = error as {message: string; statusCode?: number}
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
      metrics.outcome('', 'BAD_REQUEST')
      return reply.code(e.statusCode).send({error: {code: 'BAD_REQUEST', message: e.message}})
    }

    metrics.outcome('', 'INTERNAL')
    return sendError(reply, new ServeError('INTERNAL', e.message))
  })
  app.setNotFoundHandler((req, reply) => {
    metrics.outcome('', 'NOT_FOUND')
    return reply
      .code(404)
      .send({error: {code: 'NOT_FOUND', message: `No route ${req.method} ${req.url.split('?')[0]}`}})
  })

  const readiness = () => {
    const out: Record<string, unknown> = {}
    let all = true
    for (const s of services.values()) {
      const ready = s.state === 'ready'
      all &&= ready
      out[s.name] = {
        queueDepth: s.queued,
        ready,
        ...(ready ? {} : {reason: s.reason ?? `runner ${s.state}`}),
        restarts: s.restarts,
        runnerPid: s.pid,
        state: s.state,
      }
    }

    return {all, services: out}
  }

  app.get('/ping', async (_req, reply) => {
    const r = readiness()
    return reply.code(r.all && !closing ? 200 : 503).send({ready: r.all && !closing, services: r.services})
  })
  app.get('/v2/health/live', async () => ({live: true}))
  app.get('/v2/health/ready', async (_req, reply) => {
    const r = readiness()
    return reply.code(r.all && !closing ? 200 : 503).send({ready: r.all && !closing, services: r.services})
  })
  app.get('/v2/models/:name', async (req, reply) => {
    const {name} = req.params as {name: string}
    const s = services.get(name)
    if (!s) return sendError(reply, new ServeError('UNKNOWN_SERVICE', `No service named "${name}".`))
    if (!s.info) {
      const why = s.reason ?? `runner ${s.state}`
      return sendError(reply, new ServeError('SERVICE_NOT_READY', `The service "${name}" is not ready: ${why}`, 10))
    }

    const i = s.info
    const cfg = options.services.find((c) => c.name === name)!
    const provenance = reloader.describe(name)
    // no filesystem paths over TCP (which a loopback listener may serve without a token): the model's file name
    // there, its whole path only on the unix socket, which the folder's permissions keep to this user
    const overTcp = req.socket.remoteAddress !== undefined
    return {
      classes: i.numClasses,
      hash: i.modelHash,
      inputs: [{datatype: 'FP32', name: i.inputName, shape: [-1, ...i.inputShape]}],
      labels: i.labels ?? null,
      memoryLimitKb: cfg.memoryLimitKb,
      name,
      outputs: [{datatype: 'FP32', name: i.outputName, shape: [-1, i.numClasses]}],
      platform: 'onnxruntime',
      preprocessing: {mode: options.resize ?? DEFAULT_RESIZE_MODE},
      provider: i.provider,
      runtime: i.runtime,
      ready: s.state === 'ready',
      ...(s.state === 'ready' ? {} : {reason: s.reason ?? `runner ${s.state}`}),
      // no filesystem paths here: this route needs no token on a loopback TCP listener
      summary: {...i.summary, path: undefined},
      timeoutSeconds: cfg.timeoutSeconds,
      ...provenance,
      ...(provenance && overTcp ? {source: basename(provenance.source)} : {}),
      memoryMode: s.memoryMode,
    }
  })
  app.get('/metrics', async (_req, reply) =>
    reply
      .type('text/plain; version=0.0.4')
      .send(
        metrics.render(
          [...services.values()].map((s) => ({name: s.name, queueDepth: s.queued, ready: s.state === 'ready'})),
        ),
      ),
  )

  registerReloadRoute(app, reloader, options.adminTokens?.filter(Boolean) ?? [])
  registerStatusPage(app, () => ({
    recentErrors: recentErrors.list(),
    services: [...services.values()].map((s) => {
      const cfg = options.services.find((c) => c.name === s.name)!
      const {latencyMs, outcomes, restarts} = metrics.summary(s.name)
      return {
        classes: s.info?.numClasses,
        latencyMs,
        memory: {limitKb: cfg.memoryLimitKb, mode: s.memoryMode, rssKb: s.rssKb},
        model: {hash: s.info?.modelHash ?? '', ...reloader.describe(s.name)},
        name: s.name,
        provider: s.info?.provider,
        runtime: s.info?.runtime,
        queueDepth: s.queued,
        ready: s.state === 'ready',
        reason: s.state === 'ready' ? undefined : (s.reason ?? `runner ${s.state}`),
        requests: outcomes,
        restarts,
      }
    }),
  }))
  const addresses: HostAddresses = {}
  let tcpServer: Server | undefined
  try {
    await app.ready()
    if (socketPath) {
      const path = socketPath
      await prepareSocketPath(path, options.socket === undefined)
      await app.listen({path})
      await chmod(path, 0o660)
      addresses.socket = path
    }

    if (options.port !== undefined) {
      const host = options.host ?? '127.0.0.1'
      if (!isLoopback(host)) {
        warnings.push(`TCP listener on ${host} is reachable from other machines (every request needs the token).`)
      }

      const routed = (req: IncomingMessage, res: ServerResponse) => app.routing(req, res)
      const server = options.authToken ? listener(routed, bearerGuard(options.authToken)) : listener(routed)
      tcpServer = server
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(options.port, host, () => resolve())
      })
      const addr = server.address() as {port: number}
      const urlHost = host.includes(':') ? `[${host}]` : host
      addresses.tcp = {host, port: addr.port, url: `http://${urlHost}:${addr.port}`}
    }
  } catch (error) {
    await stopAll()
    await app.close().catch(() => {})
    tcpServer?.close()
    const e = error as NodeJS.ErrnoException
    if (error instanceof IccError) throw error
    throw new UsageError('LISTEN_FAILED', `icc serve cannot listen: ${e.message}`, {
      suggestions: ['Pick another --socket path or --port.'],
    })
  }

  for (const w of warnings) firstLogger.warn(w)
  for (const s of started) {
    loggers.get(s.name)!.info(
      {
        listen: addresses,
        loadMs: s.loadMs,
        memoryLimit: {kb: options.services.find((c) => c.name === s.name)!.memoryLimitKb, mode: s.memoryMode},
        // short: the full model summary is in --json and /v2/models/{name}
        model: {
          classes: s.numClasses,
          hash: s.modelHash.slice(0, 12),
          path: options.services.find((c) => c.name === s.name)!.modelPath,
        },
        provider: s.provider,
        runnerRssKb: s.rssKb,
        runtime: s.runtime,
        warmupMs: s.warmupMs,
      },
      `service ready on ${[addresses.socket && `unix:${addresses.socket}`, addresses.tcp?.url].filter(Boolean).join(' and ')}`,
    )
  }

  const watching: ModelWatch | undefined = options.watch
    ? await watchServices(
        reloader,
        options.services.filter((c) => !c.notReady),
        options.watch === true ? undefined : options.watch.quietMs,
      )
    : undefined
  // serving from here on: the request path reaches TurboFan within seconds at a low request rate (./tuning.ts)
  tierUpServingCode()
  let closed: Promise<void> | undefined
  const close = async (): Promise<void> => {
    closed ??= (async () => {
      closing = true
      logAll('info', {}, 'shutting down: draining in-flight requests')
      watching?.close()
      const tcpClosed = tcpServer
        ? new Promise<void>((resolve) => {
            tcpServer!.close(() => resolve())
            tcpServer!.closeIdleConnections()
          })
        : Promise.resolve()
      const appClosed = app.close()
      await Promise.all([reloader.close(), ...[...services.values()].map((s) => s.stop(drainMs))])
      // every request has its answer now; give the last responses a moment to flush, then drop connections
      // that are still open (e.g. a client stuck mid-upload) so shutdown stays bounded
      await new Promise((r) => {
        setTimeout(r, 100)
      })
      app.server.closeAllConnections()
      tcpServer?.closeAllConnections()
      await appClosed
      await tcpClosed
      if (addresses.socket) await unlink(addresses.socket).catch(() => {})
      logAll('info', {}, 'stopped')
      removeSignalHandlers()
    })()
    return closed
  }

  return {
    accessLog: access,
    addresses,
    app,
    budget,
    close,
    dispatcher,
    limits,
    logger: firstLogger,
    reloader,
    services,
    started,
    warnings,
  }
}
