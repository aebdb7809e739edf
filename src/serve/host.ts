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
import Fastify, {type FastifyInstance} from 'fastify'
import {type Logger} from 'pino'

import type {Runtime} from '../model/session.js'

import {UsageError} from '../errors.js'
import {type ResizeMode} from '../model/types.js'
import {type AccessLog, accessLog, type LogFormat} from './access-log.js'
import {ByteBudget, DEFAULT_MAX_BUFFERED_BYTES, DEFAULT_MAX_CONNECTIONS, type ListenerLimits} from './http-io.js'
import {invocationRoute} from './invocations.js'
import {
  type HostService,
  hostSignals,
  loadedOverLimit,
  logReady,
  makeLogger,
  shutdown,
  type StartedService,
  startedServices,
  startServices,
} from './lifecycle.js'
import {
  assertPortFree,
  type HostAddresses,
  hostListener,
  isLoopback,
  openListeners,
  warmUpListener,
} from './listeners.js'
import {Metrics} from './metrics.js'
import {defaultSocketPath, prepareSocketPath} from './paths.js'
import {type ModelWatch, watchServices} from './reload-triggers.js'
import {ModelReloader} from './reload.js'
import {registerRoutes} from './routes.js'
import {Service, type ServiceRequest} from './service.js'
import {RecentErrors} from './status-page.js'
import {fullGc, tierUpServingCode} from './tuning.js'
import {DEFAULT_MAX_BODY_BYTES, type Dispatcher, type InferenceResult, ServeError} from './types.js'

export {httpStatus} from './invocations.js'
export {type StartedService} from './lifecycle.js'
export {assertPortFree, type HostAddresses} from './listeners.js'

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
  /** The runners' program (default runner-main.js; the tests' fault runner wraps it). */
  runnerEntry?: string
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
export type HostServices = HostService[]

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

/** The runner of one service, made with the host's options (at start and for every reload). */
function serviceFactory(options: HostOptions, logger: (name: string) => Logger, metrics: Metrics) {
  return (name: string) => {
    const s = options.services.find((c) => c.name === name)!
    return new Service({
      allowCpuFallback: s.allowCpuFallback,
      cacheDir: options.cacheDir,
      inputShape: options.inputShape,
      labelsFile: s.labelsFile ?? options.labelsFile,
      crashLoopCooldownMs: options.crashLoop?.cooldownMs,
      crashLoopLimit: options.crashLoop?.limit,
      crashLoopWindowMs: options.crashLoop?.windowMs,
      gpu: s.gpu,
      intraOpThreads: options.intraOpThreads,
      logger: logger(name),
      runtime: options.runtime,
      memoryLimitKb: s.memoryLimitKb,
      metrics,
      modelPath: s.modelPath,
      name: s.name,
      maxBatch: options.maxBatch,
      pipelineDepth: options.pipelineDepth,
      queueLimit: options.queueLimit ?? 64,
      resize: options.resize,
      runnerEntry: options.runnerEntry,
      runnerEnv: options.runnerEnv,
      timeoutSeconds: s.timeoutSeconds,
    })
  }
}

/** What start-up refuses before anything starts: no service, a TCP listener off loopback without a token. */
function checkOptions(options: HostOptions): void {
  if (options.services.length === 0) throw new UsageError('NO_SERVICES', 'No service to run.')
  if (options.port !== undefined && !isLoopback(options.host ?? '127.0.0.1') && !options.authToken) {
    throw new UsageError(
      'TCP_AUTH_REQUIRED',
      `--host ${options.host} makes the TCP listener reachable from other machines; it needs a token.`,
      {suggestions: ['Pass --auth-token-file FILE (mode 0600; clients send "Authorization: Bearer <token>").']},
    )
  }
}

/** The requests' way to the services (the native route and the Greengrass IPC endpoint both use it). */
function makeDispatcher(services: Map<string, Service>, metrics: Metrics, closing: () => boolean): Host['dispatcher'] {
  return {
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

      if (closing()) return refuse(new ServeError('SHUTTING_DOWN', 'icc serve is shutting down.', 5))
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
}

/**
 * Slow clients: the headers must arrive within clientTimeoutMs, the whole request (headers + body) within that
 * plus the longest service timeout; the same limits for the Greengrass IPC listener (./index.ts).
 */
function listenerLimits(options: HostOptions): ListenerLimits {
  const clientTimeoutMs = options.clientTimeoutMs ?? 30_000
  return {
    clientTimeoutMs,
    maxConnections: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    requestTimeoutMs: clientTimeoutMs + Math.max(...options.services.map((s) => s.timeoutSeconds)) * 1000,
  }
}

/**
 * The services and their runners, before anything listens: a socket already served by someone else and a TCP port
 * in use fail fast, before any runner starts; a failed start stops what was started.
 */
async function startRunners(options: HostOptions) {
  checkOptions(options)
  const config = (name: string) => options.services.find((c) => c.name === name)!
  const metrics = new Metrics()
  const loggers = new Map(options.services.map((s) => [s.name, makeLogger(options, s.name)]))
  const logger = (name: string) => loggers.get(name)!
  const logAll = (level: 'error' | 'info' | 'warn', obj: object, msg: string) => {
    for (const l of loggers.values()) l[level](obj, msg)
  }

  const makeService = serviceFactory(options, logger, metrics)
  const services = new Map(options.services.map((s) => [s.name, makeService(s.name)]))
  const socketPath = options.socket === false ? undefined : (options.socket ?? defaultSocketPath())
  if (socketPath) await prepareSocketPath(socketPath, options.socket === undefined)
  const signals = hostSignals(logAll)
  const stopAll = async () => {
    await Promise.all([...services.values()].map((s) => s.stop(0)))
    signals.remove()
  }

  if (options.port) await assertPortFree(options.host ?? '127.0.0.1', options.port, '--port')
  const {error, notReady} = await startServices(services, options.services, options.strict)
  const failure = error ?? loadedOverLimit(services, config)
  if (failure) {
    await stopAll()
    throw failure
  }

  const warnings = [...notReady]
  const started = startedServices(services, warnings)
  const drainMs = options.drainMs ?? Math.max(...options.services.map((s) => s.timeoutSeconds)) * 1000 + 1000
  const reloader = new ModelReloader({
    drainMs,
    logger,
    makeService,
    memoryBudgetKb: options.memoryBudgetKb,
    services,
    sourceOf: (name) => config(name).modelPath,
  })
  signals.onHangup(() => {
    reloader.reloadAll('SIGHUP').catch(() => {})
  })
  return {config, drainMs, logAll, logger, metrics, reloader, services, signals, socketPath, started, stopAll, warnings}
}

/** The invocation route, its byte budget, and the access log that sees its answers. */
function invocationsOf(options: HostOptions, parts: Awaited<ReturnType<typeof startRunners>>, dispatcher: Dispatcher) {
  const {logger, metrics, services} = parts
  const firstLogger = logger(options.services[0].name)
  const accessLine = options.accessLog === false ? undefined : accessLog(logger, firstLogger)
  const recentErrors = new RecentErrors()
  const access: AccessLog = (entry) => {
    accessLine?.(entry)
    if (entry.code !== 'OK') recentErrors.add(entry)
  }

  // memory given back when the host goes idle after big uploads (./http-io.ts ByteBudget)
  const budget = new ByteBudget(options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES, fullGc())
  const route = invocationRoute({
    budget,
    dispatcher,
    firstService: options.services[0].name,
    maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    onAnswered: (service, status, code, bytesIn, result) =>
      access({batch: result?.batchSize, bytesIn, code, service, status, timings: result?.timings, transport: 'http'}),
    onInternalError: (name, message) => logger(name)?.error({err: message}, 'request failed'),
    // answers of the route itself (415, 400, 413, a client gone before its body): a name that is not a service
    // of this host is counted under ""
    onOutcome: (name, outcome) => metrics.outcome(services.has(name) ? name : '', outcome),
  })
  return {access, budget, recentErrors, route}
}

/** Start the services and the HTTP listeners: ./lifecycle.ts, ./routes.ts and ./listeners.ts put together. */
export async function startHost(options: HostOptions): Promise<Host> {
  const runners = await startRunners(options)
  const {config, logger, metrics, reloader, services} = runners
  let closing = false
  const dispatcher = makeDispatcher(services, metrics, () => closing)
  const limits = listenerLimits(options)
  const {access, budget, recentErrors, route} = invocationsOf(options, runners, dispatcher)
  // every listener (unix socket, TCP): invocations first, then the framework's router (./listeners.ts)
  const listening = {invocations: route, limits, onUnauthorized: () => metrics.outcome('', 'UNAUTHORIZED')}
  const app = Fastify({logger: false, return503OnClosing: true, serverFactory: (r) => hostListener(listening, r)})
  const adminTokens = options.adminTokens?.filter(Boolean) ?? []
  const {resize} = options
  registerRoutes(app, {adminTokens, closing: () => closing, config, metrics, recentErrors, reloader, resize, services})
  const {addresses, tcpServer} = await openListeners(app, {
    ...listening,
    authToken: options.authToken,
    host: options.host,
    port: options.port,
    socketPath: runners.socketPath,
    warnings: runners.warnings,
  }).catch(async (error: unknown) => {
    await runners.stopAll()
    throw error
  })
  await warmUpListener(addresses, options.authToken)
  const firstLogger = logger(options.services[0].name)
  for (const w of runners.warnings) firstLogger.warn(w)
  logReady(runners.started, addresses, logger, config)
  const watching: ModelWatch | undefined = options.watch
    ? await watchServices(
        reloader,
        options.services.filter((c) => !c.notReady),
        options.watch === true ? undefined : options.watch.quietMs,
      )
    : undefined
  // serving from here on: the request path reaches TurboFan within seconds at a low request rate (./tuning.ts)
  tierUpServingCode()
  const close = shutdown({
    ...runners,
    addresses,
    app,
    removeSignalHandlers: runners.signals.remove,
    setClosing() {
      closing = true
    },
    tcpServer,
    watching,
  })
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
    started: runners.started,
    warnings: runners.warnings,
  }
}
