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
import Fastify, {type FastifyInstance, type FastifyReply} from 'fastify'
import {chmod, lstat, mkdir, unlink} from 'node:fs/promises'
import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import {connect, type Socket} from 'node:net'
import {dirname, join} from 'node:path'
import pino, {type Logger} from 'pino'

import type {ServiceConfig} from './config.js'

import {IccError, UsageError} from '../errors.js'
import {DEFAULT_RESIZE_MODE, type ResizeMode} from '../model/types.js'
import {httpStatus, invocationRoute} from './invocations.js'
import {Metrics} from './metrics.js'
import {defaultSocketPath} from './paths.js'
import {Service, type ServiceRequest} from './service.js'
import {tierUpServingCode} from './tuning.js'
import {DEFAULT_MAX_BODY_BYTES, type Dispatcher, type InferenceResult, ServeError} from './types.js'

export {httpStatus} from './invocations.js'

export interface HostOptions {
  cacheDir?: string
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
  /** pino level (default info). */
  logLevel?: string
  /** Write `<dir>/<ServiceName>.log` per service (as well as the main log stream). */
  logDir?: string
  /** Main log stream (default: stderr). */
  logStream?: NodeJS.WritableStream
  /** Largest accepted request body (default 20 MiB). */
  maxBodyBytes?: number
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
  services: (ServiceConfig & {modelPath: string})[]
  /** Unix socket path (default: $XDG_RUNTIME_DIR/icc/icc.sock or /tmp/icc-$UID/icc.sock); false: none. */
  socket?: false | string
}

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
  warmupMs: number
}

export interface Host {
  addresses: HostAddresses
  app: FastifyInstance
  /** Stop accepting, drain (bounded), stop the runners. */
  close(): Promise<void>
  dispatcher: Dispatcher & {infer(serviceName: string, request: ServiceRequest): Promise<InferenceResult>}
  logger: Logger
  services: Map<string, Service>
  started: StartedService[]
  /** Warnings worth showing to the user at start-up (non-loopback TCP, CPU fallback...). */
  warnings: string[]
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host)
}

async function prepareSocket(path: string, isDefault: boolean): Promise<void> {
  const dir = dirname(path)
  let created = false
  try {
    await lstat(dir)
  } catch {
    await mkdir(dir, {mode: 0o700, recursive: true})
    created = true
  }

  if (created || isDefault) await chmod(dir, 0o700)
  try {
    await lstat(path)
  } catch {
    return
  }

  // something is there: refuse if a server answers, else remove the stale socket
  const live = await new Promise<boolean>((resolve) => {
    const s = connect(path)
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
  if (live) {
    throw new UsageError('SOCKET_IN_USE', `Another server is already listening on ${path}.`, {
      suggestions: ['Stop it, or pass --socket with another path.'],
    })
  }

  await unlink(path)
}

function makeLogger(options: HostOptions, name: string): Logger {
  const level = options.logLevel ?? 'info'
  const streams: pino.StreamEntry[] = [{level: level as pino.Level, stream: options.logStream ?? process.stderr}]
  if (options.logDir) {
    streams.push({
      level: level as pino.Level,
      stream: pino.destination({dest: join(options.logDir, `${name}.log`), mkdir: true, sync: true}),
    })
  }

  return pino({base: {service: name}, level, timestamp: pino.stdTimeFunctions.isoTime}, pino.multistream(streams))
}

function sendError(reply: FastifyReply, error: ServeError): FastifyReply {
  if (error.retryAfter !== undefined) reply.header('Retry-After', String(error.retryAfter))
  return reply
    .code(httpStatus(error.code))
    .type('application/json')
    .send({error: {code: error.code, message: error.message}})
}

/**
 * Node's header timeout starts with the first byte: a connection that never sends one would stay open forever.
 * Close a connection that has not started a request within `ms`; its first request lifts the limit (keep-alive
 * idleness after that is the server's keepAliveTimeout).
 */
function guardIdle(server: Server, ms: number): Server {
  server.on('connection', (socket: Socket) => {
    socket.setTimeout(ms, () => socket.destroy())
  })
  server.on('request', (req: IncomingMessage) => {
    req.socket.setTimeout(0)
  })
  return server
}

/** Start the services and the HTTP listeners. */
export async function startHost(options: HostOptions): Promise<Host> {
  if (options.services.length === 0) throw new UsageError('NO_SERVICES', 'No service to run.')
  const metrics = new Metrics()
  const services = new Map<string, Service>()
  const loggers = new Map<string, Logger>()
  const warnings: string[] = []
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
  for (const s of options.services) {
    const logger = makeLogger(options, s.name)
    loggers.set(s.name, logger)
    services.set(
      s.name,
      new Service({
        allowCpuFallback: s.allowCpuFallback,
        cacheDir: options.cacheDir,
        crashLoopCooldownMs: options.crashLoop?.cooldownMs,
        crashLoopLimit: options.crashLoop?.limit,
        crashLoopWindowMs: options.crashLoop?.windowMs,
        gpu: s.gpu,
        intraOpThreads: options.intraOpThreads,
        logger,
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
      }),
    )
  }

  const firstLogger = loggers.values().next().value as Logger
  const logAll = (level: 'error' | 'info' | 'warn', obj: object, msg: string) => {
    for (const l of loggers.values()) l[level](obj, msg)
  }

  const stopAll = async () => {
    await Promise.all([...services.values()].map((s) => s.stop(0)))
  }

  // a socket already served by someone else fails fast, before any runner starts
  const socketPath = options.socket === false ? undefined : (options.socket ?? defaultSocketPath())
  if (socketPath) await prepareSocket(socketPath, options.socket === undefined)

  // start the runners in parallel; any failure fails start-up
  const started: StartedService[] = []
  const results = await Promise.allSettled([...services.values()].map(async (s) => s.start()))
  const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined
  if (failed) {
    await stopAll()
    const err = failed.reason as Error
    throw err instanceof IccError ? err : new IccError('START_FAILED', err.message)
  }

  for (const s of services.values()) {
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
      warmupMs: info.warmupMs,
    })
  }

  // over the memory cap already after load (the watchdog may not have seen the peak)
  for (const s of services.values()) {
    const cfg = options.services.find((c) => c.name === s.name)!
    if (s.info!.peakRssKb > cfg.memoryLimitKb && s.memoryMode !== 'cgroup-v2') {
      await stopAll()
      throw new IccError(
        'MEMORY_LIMIT_TOO_SMALL',
        `The model of service "${s.name}" cannot be loaded within LocalInferenceServiceMemoryLimitKB=${cfg.memoryLimitKb}: the runner needed ${s.info!.peakRssKb} KB (measured peak) while loading it.`,
        {
          details: {limitKb: cfg.memoryLimitKb, measuredKb: s.info!.peakRssKb},
          exitCode: 4,
          suggestions: [`Raise --memory-limit-kb to at least ${Math.ceil(s.info!.peakRssKb * 1.25)}.`],
        },
      )
    }
  }

  let closing = false
  const dispatcher: Host['dispatcher'] = {
    // a plain function that returns the service's promise (rejected, never thrown): no async wrapper per request
    infer(serviceName, request) {
      const s = services.get(serviceName)
      if (!s) {
        return Promise.reject(
          new ServeError(
            'UNKNOWN_SERVICE',
            `No service named "${serviceName}"; this host runs: ${[...services.keys()].join(', ')}.`,
          ),
        )
      }

      if (closing) return Promise.reject(new ServeError('SHUTTING_DOWN', 'icc serve is shutting down.', 5))
      if (!request.body || request.body.length === 0)
        return Promise.reject(new ServeError('BAD_IMAGE', 'The request body is empty; send the image bytes.'))
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
  // plus the longest service timeout; expired connections are found by a check every quarter of the timeout
  const clientTimeoutMs = options.clientTimeoutMs ?? 30_000
  const requestTimeout = clientTimeoutMs + Math.max(...options.services.map((s) => s.timeoutSeconds)) * 1000
  const serverOptions = {
    connectionsCheckingInterval: Math.min(30_000, Math.max(250, Math.floor(clientTimeoutMs / 4))),
    headersTimeout: clientTimeoutMs,
    requestTimeout,
  }
  // the invocations are answered by ./invocations.ts on node:http directly (the hot path); the framework serves
  // the other routes, on the same listeners
  const invocations = invocationRoute({
    dispatcher,
    firstService: options.services[0].name,
    maxBodyBytes,
    onInternalError: (name, message) => loggers.get(name)?.error({err: message}, 'request failed'),
  })
  // every listener (unix socket, TCP): invocations first, then the framework's router
  const listener = (route: (req: IncomingMessage, res: ServerResponse) => void) =>
    guardIdle(
      createServer(serverOptions, (req, res) => invocations(req, res) || route(req, res)),
      clientTimeoutMs,
    )
  const app = Fastify({logger: false, return503OnClosing: true, serverFactory: listener})
  app.setErrorHandler((error, _req, reply) => {
    const e = error as {message: string; statusCode?: number}
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
      return reply.code(e.statusCode).send({error: {code: 'BAD_REQUEST', message: e.message}})
    }

    return sendError(reply, new ServeError('INTERNAL', e.message))
  })
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({error: {code: 'NOT_FOUND', message: `No route ${req.method} ${req.url.split('?')[0]}`}}),
  )

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
    if (!s?.info) {
      return sendError(reply, new ServeError('UNKNOWN_SERVICE', `No service named "${name}".`))
    }

    const i = s.info
    const cfg = options.services.find((c) => c.name === name)!
    return {
      classes: i.numClasses,
      hash: i.modelHash,
      inputs: [{datatype: 'FP32', name: i.inputName, shape: [-1, ...i.inputShape]}],
      labels: i.labels ?? null,
      memoryLimitKb: cfg.memoryLimitKb,
      modelPath: cfg.modelPath,
      name,
      outputs: [{datatype: 'FP32', name: i.outputName, shape: [-1, i.numClasses]}],
      platform: 'onnxruntime',
      preprocessing: {mode: options.resize ?? DEFAULT_RESIZE_MODE},
      provider: i.provider,
      ready: s.state === 'ready',
      summary: i.summary,
      timeoutSeconds: cfg.timeoutSeconds,
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

  const addresses: HostAddresses = {}
  let tcpServer: Server | undefined
  try {
    await app.ready()
    if (socketPath) {
      const path = socketPath
      await prepareSocket(path, options.socket === undefined)
      await app.listen({path})
      await chmod(path, 0o660)
      addresses.socket = path
    }

    if (options.port !== undefined) {
      const host = options.host ?? '127.0.0.1'
      if (!isLoopback(host)) {
        warnings.push(
          `TCP listener on ${host} is reachable from other machines; icc serve has no authentication on this port.`,
        )
      }

      const server = listener((req, res) => app.routing(req, res))
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
        model: {
          classes: s.numClasses,
          hash: s.modelHash,
          inputShape: services.get(s.name)!.info!.inputShape,
          path: options.services.find((c) => c.name === s.name)!.modelPath,
          summary: services.get(s.name)!.info!.summary,
        },
        provider: s.provider,
        runnerRssKb: s.rssKb,
        warmupMs: s.warmupMs,
      },
      `service ready on ${[addresses.socket && `unix:${addresses.socket}`, addresses.tcp?.url].filter(Boolean).join(' and ')}`,
    )
  }

  // serving from here on: the request path reaches TurboFan within seconds at a low request rate (./tuning.ts)
  tierUpServingCode()
  let closed: Promise<void> | undefined
  const close = async (): Promise<void> => {
    closed ??= (async () => {
      closing = true
      logAll('info', {}, 'shutting down: draining in-flight requests')
      const drainMs = options.drainMs ?? Math.max(...options.services.map((s) => s.timeoutSeconds)) * 1000 + 1000
      const tcpClosed = tcpServer
        ? new Promise<void>((resolve) => {
            tcpServer!.close(() => resolve())
            tcpServer!.closeIdleConnections()
          })
        : Promise.resolve()
      const appClosed = app.close()
      await Promise.all([...services.values()].map((s) => s.stop(drainMs)))
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
    })()
    return closed
  }

  return {addresses, app, close, dispatcher, logger: firstLogger, services, started, warnings}
}
