/**
 * The lifecycle of the `icc serve` host: its loggers, starting the runners (which failures fail start-up), the
 * memory check after load, the ready lines, the signals while it runs, and shutdown (stop accepting, drain bounded,
 * stop the runners, drop the connections left, remove the socket).
 */
import type {FastifyInstance} from 'fastify'
import type {Server} from 'node:http'

import {unlink} from 'node:fs/promises'
import {join} from 'node:path'
import pino, {type Logger} from 'pino'

import type {ServiceConfig} from './config.js'
import type {HostAddresses} from './listeners.js'
import type {ModelWatch} from './reload-triggers.js'
import type {ModelReloader} from './reload.js'
import type {Service} from './service.js'

import {asIccError, type IccError, ModelError, UsageError} from '../errors.js'
import {logDestination, type LogFormat} from './access-log.js'
import {memoryLimitSuggestions} from './memory.js'
import {handleServeSignals} from './signals.js'

/** A service as the host is told to run it; `notReady`: known not to start (its model is missing). */
export type HostService = ServiceConfig & {modelPath: string; notReady?: string}

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

export interface LoggerOptions {
  logDir?: string
  logFormat?: LogFormat
  logLevel?: string
  logStream?: NodeJS.WritableStream
}

/** The logger of one service: the main stream, and `<logDir>/<name>.log` when asked. */
export function makeLogger(options: LoggerOptions, name: string): Logger {
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

/**
 * Start every service's runner in parallel. With several services and not `strict`, a service whose model is
 * missing or fails to load stays failed with the reason (its requests get SERVICE_NOT_READY, readiness says why,
 * a warning is returned) while the others serve; otherwise, or when none starts, the first failure is returned.
 */
export async function startServices(
  services: Map<string, Service>,
  configs: HostService[],
  strict: boolean | undefined,
): Promise<{error?: IccError; notReady: string[]}> {
  const list = [...services.values()]
  const results = await Promise.allSettled(
    list.map(async (s) => {
      const missing = configs.find((c) => c.name === s.name)?.notReady
      if (missing) throw new UsageError('MODEL_NOT_FOUND', missing)
      return s.start()
    }),
  )
  const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [{error: r.reason as unknown, s: list[i]}] : []))
  if (failed.length > 0 && (strict || list.length === 1 || failed.length === list.length)) {
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

/** The services that are ready, as start-up reports them; their load warnings are added to `warnings`. */
export function startedServices(services: Map<string, Service>, warnings: string[]): StartedService[] {
  const started: StartedService[] = []
  for (const s of services.values()) {
    if (s.state !== 'ready' || !s.info) continue
    const {info} = s
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

  return started
}

/**
 * A ready service whose runner went over its memory limit while loading (the watchdog may not have seen the peak)
 * is MEMORY_LIMIT_TOO_SMALL (exit 4), unless a cgroup enforces the limit.
 */
export function loadedOverLimit(services: Map<string, Service>, config: (name: string) => HostService) {
  for (const s of services.values()) {
    if (s.state !== 'ready' || !s.info) continue
    const limitKb = config(s.name).memoryLimitKb
    const peakKb = s.info.peakRssKb
    if (peakKb > limitKb && !s.memoryMode?.startsWith('cgroup-')) {
      return new ModelError(
        'MEMORY_LIMIT_TOO_SMALL',
        `The model of service "${s.name}" cannot be loaded within LocalInferenceServiceMemoryLimitKB=${limitKb}: the runner needed ${peakKb} KB (measured peak) while loading it.`,
        {
          details: {limitKb, measuredKb: peakKb},
          suggestions: memoryLimitSuggestions(peakKb, {model: config(s.name).modelPath}),
        },
      )
    }
  }

  return undefined
}

/** One `service ready` line per started service, in that service's log. */
export function logReady(
  started: StartedService[],
  addresses: HostAddresses,
  logger: (name: string) => Logger,
  config: (name: string) => HostService,
): void {
  const where = [addresses.socket && `unix:${addresses.socket}`, addresses.tcp?.url].filter(Boolean).join(' and ')
  for (const s of started) {
    const cfg = config(s.name)
    logger(s.name).info(
      {
        listen: addresses,
        loadMs: s.loadMs,
        memoryLimit: {kb: cfg.memoryLimitKb, mode: s.memoryMode},
        // short: the full model summary is in --json and /v2/models/{name}
        model: {classes: s.numClasses, hash: s.modelHash.slice(0, 12), path: cfg.modelPath},
        provider: s.provider,
        runnerRssKb: s.rssKb,
        runtime: s.runtime,
        warmupMs: s.warmupMs,
      },
      `service ready on ${where}`,
    )
  }
}

type LogAll = (level: 'error' | 'info' | 'warn', obj: object, msg: string) => void

/**
 * SIGUSR1 (Node's inspector), SIGUSR2 and SIGHUP (./signals.ts) until the host has stopped; SIGHUP is logged and
 * ignored until `onHangup` is given one (the reloader, once it exists).
 */
export function hostSignals(logAll: LogAll): {onHangup(handler: () => void): void; remove(): void} {
  let onHangup = () => logAll('warn', {signal: 'SIGHUP'}, 'SIGHUP received while starting; ignored')
  const remove = handleServeSignals((signal, what) => logAll('warn', {signal}, what), {
    onHangup: () => onHangup(),
  })
  return {
    onHangup(handler) {
      onHangup = handler
    },
    remove,
  }
}

export interface ShutdownParts {
  addresses: HostAddresses
  app: FastifyInstance
  drainMs: number
  logAll: LogAll
  reloader: ModelReloader
  removeSignalHandlers: () => void
  services: Map<string, Service>
  /** Called first: new requests are refused from here on. */
  setClosing: () => void
  tcpServer?: Server
  watching?: ModelWatch
}

/** The host's close(): stop accepting, drain (bounded), stop the runners, remove the socket; once. */
export function shutdown(parts: ShutdownParts): () => Promise<void> {
  const {app, tcpServer} = parts
  let closed: Promise<void> | undefined
  const run = async () => {
    parts.setClosing()
    parts.logAll('info', {}, 'shutting down: draining in-flight requests')
    parts.watching?.close()
    const tcpClosed = tcpServer
      ? new Promise<void>((resolve) => {
          tcpServer.close(() => resolve())
          tcpServer.closeIdleConnections()
        })
      : Promise.resolve()
    const appClosed = app.close()
    await Promise.all([parts.reloader.close(), ...[...parts.services.values()].map((s) => s.stop(parts.drainMs))])
    // every request has its answer now; give the last responses a moment to flush, then drop connections
    // that are still open (e.g. a client stuck mid-upload) so shutdown stays bounded
    await new Promise((r) => {
      setTimeout(r, 100)
    })
    app.server.closeAllConnections()
    tcpServer?.closeAllConnections()
    await appClosed
    await tcpClosed
    if (parts.addresses.socket) await unlink(parts.addresses.socket).catch(() => {})
    parts.logAll('info', {}, 'stopped')
    parts.removeSignalHandlers()
  }

  return async () => {
    closed ??= run()
    return closed
  }
}
