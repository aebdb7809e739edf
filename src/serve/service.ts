/**
 * One inference service of `icc serve`: its runner process, its request queue, and their supervision.
 *
 * - Admission: a bounded queue (`queueLimit`); beyond it requests get OVERLOADED with a Retry-After estimate.
 * - Dispatch: up to `pipelineDepth` requests (default 2 x `maxBatch`, at least 2) are sent to the runner, which
 *   decodes the next images while ONNX Runtime runs the current ones, and runs inferences one batch at a time, in
 *   order (a batch: up to `maxBatch` images already decoded when ONNX Runtime is free); each request has a
 *   deadline of `timeoutSeconds` from its arrival.
 * - Timeout: a queued request past its deadline gets TIMEOUT; a request still running in the runner at its
 *   deadline gets TIMEOUT and the runner is killed (SIGKILL) and restarted, so the work really stops. Queued
 *   requests wait for the new runner (within their own deadlines).
 * - Memory: the runner is capped (a cgroup or the RSS watchdog, see ./memory.ts) and admits its decodes against
 *   the limit (./decode-admission.ts); over the cap it is killed and only the guilty request gets MEMORY_LIMIT:
 *   the one whose decode the runner started last (it tells the host with a `decoding` frame), that is the most
 *   recent request to ask for memory, being decoded or, decoded, being inferred; when none has started, the
 *   oldest in the runner. The others it held are retried once on the new runner (a second kill while holding
 *   them answers them MEMORY_LIMIT too).
 * - Requests sent behind the one running when a runner dies of anything else (pipelining) go back to the front
 *   of the queue for the next runner.
 * - Crashes: the request in the runner gets RUNNER_RESTARTING (it is not retried: it may be what crashed it);
 *   the runner is restarted with exponential backoff; `crashLoopLimit` crashes or memory kills within
 *   `crashLoopWindowMs` make the service not ready (queued requests get SERVICE_NOT_READY), and a new attempt is
 *   made after a cool-down.
 * - Start-up: a runner killed for memory while loading gets the advice of a complete load measured again without
 *   the cap ({@link Service.measureLoad}, which `icc doctor --model` uses too).
 *
 * Every request is settled exactly once (`settle` is idempotent and all paths go through it).
 *
 * Over ~500 lines on purpose: one class holds the queue, the requests in the runner and the runner's life cycle,
 * whose transitions all touch the same private state; the pure parts live beside it (./decode-admission.ts,
 * ./memory.ts, ./protocol.ts).
 */
import type {Logger} from 'pino'

import {fileURLToPath} from 'node:url'
import pino from 'pino'

import type {Runtime} from '../model/session.js'
import type {ResizeMode} from '../model/types.js'
import type {Metrics} from './metrics.js'
import type {RunnerConfig} from './runner-main.js'

import {DependencyError, IccError, ModelError, UsageError} from '../errors.js'
import {type ChildProcess, spawn, terminate} from '../system.js'
import {formatConnectorBody, topK, warmUpFormat} from './format.js'
import {type MemoryCap, memoryLimitSuggestions, type MemoryMode, readRssKb, tryCgroupCap} from './memory.js'
import {FrameDecoder, payloadToFloat32, type RunnerMessage, type RunnerReadyInfo, writeFrame} from './protocol.js'
import {runnerMallocEnv} from './tuning.js'
import {DEFAULT_MAX_BATCH, type InferenceRequest, type InferenceResult, ServeError} from './types.js'

export interface ServiceOptions {
  /** The most bytes a model's tensors may need per image, in KB (default memoryLimitKb). */
  activationLimitKb?: number
  allowCpuFallback: boolean
  cacheDir?: string
  inputShape?: number[]
  labelsFile?: string
  crashLoopCooldownMs?: number
  crashLoopLimit?: number
  crashLoopWindowMs?: number
  gpu: boolean
  intraOpThreads?: number
  logger: Logger
  /** Which ONNX Runtime the runner uses (../model/session.ts; default: $ICC_RUNTIME, else auto). */
  runtime?: Runtime
  memoryLimitKb: number
  metrics: Metrics
  modelPath: string
  name: string
  /** Most images in one ONNX Runtime run (dynamic batching of requests already waiting in the runner; default 2). */
  maxBatch?: number
  /**
   * Requests sent to the runner ahead of time, so it decodes the next images during an inference (default: twice
   * `maxBatch`, at least 2).
   */
  pipelineDepth?: number
  queueLimit: number
  /** Image preprocessing (default `exact`). */
  resize?: ResizeMode
  /** The runner's program (default ./runner-main.js; the tests' fault runner wraps it). */
  runnerEntry?: string
  /** Extra environment for the runner (tests). */
  runnerEnv?: Record<string, string>
  timeoutSeconds: number
  /** RSS poll interval of the watchdog (default 100 ms). */
  watchdogIntervalMs?: number
}

export type ServiceState = 'failed' | 'ready' | 'restarting' | 'starting' | 'stopped'

export type ServiceRequest = InferenceRequest

interface Pending {
  /** When the runner started decoding it (the order of `decoding` frames), undefined until then. */
  decodeSeq?: number
  enqueuedAt: number
  id: number
  reject: (error: ServeError) => void
  request: ServiceRequest
  resolve: (result: InferenceResult) => void
  /** Retried on a new runner after a memory kill it was not guilty of (once only). */
  retried?: boolean
  sentAt?: number
  settled: boolean
  timer?: NodeJS.Timeout
}

const RUNNER_MAIN = fileURLToPath(new URL('runner-main.js', import.meta.url))

/** No cap while measuring a load for advice: the figure is what a complete load needs (1 TiB in KB). */
const UNCAPPED_KB = 1024 ** 3

type KillReason = 'memory' | 'stop' | 'timeout'

/** One runner process's start: the first start's promise, its fatal frame, whether it became ready. */
interface RunnerRun {
  fatal?: Extract<RunnerMessage, {t: 'fatal'}>
  first?: {reject: (e: Error) => void; resolve: (i: RunnerReadyInfo) => void}
  ready: boolean
}

/** How a runner ended, for {@link Service.onExit}. */
interface ExitEvent extends RunnerRun {
  code: null | number
  oom: boolean
  signal: NodeJS.Signals | null
}

/** The runner's configuration (its ICC_RUNNER_CONFIG) from the service's options. */
/** The bound on a model's tensors per image: the activation limit, else the memory limit; 0: the default bound. */
function activationBytes(o: ServiceOptions): number | undefined {
  const kb = o.activationLimitKb ?? o.memoryLimitKb
  return kb > 0 ? kb * 1024 : undefined
}

function runnerConfig(o: ServiceOptions): RunnerConfig {
  return {
    allowCpuFallback: o.allowCpuFallback,
    cacheDir: o.cacheDir,
    inputShape: o.inputShape,
    labelsFile: o.labelsFile,
    gpu: o.gpu,
    intraOpThreads: o.intraOpThreads,
    maxActivationBytes: activationBytes(o),
    maxBatch: o.maxBatch,
    memoryLimitKb: o.memoryLimitKb,
    modelPath: o.modelPath,
    resize: o.resize,
    runtime: o.runtime,
    serviceName: o.name,
  }
}

export class Service {
  readonly name: string
  info?: RunnerReadyInfo
  memoryMode?: MemoryMode
  reason?: string
  restarts = 0
  state: ServiceState = 'starting'
  private cap?: MemoryCap
  private child?: ChildProcess
  private crashTimes: number[] = []
  private decodeSeq = 0
  /** Requests sent to the runner, oldest first (it answers in order); at most `pipelineDepth`. */
  private inflight: Pending[] = []
  private killReason?: KillReason
  private lastRssKb = 0
  private latencyEwmaMs = 0
  private nextId = 1
  private queue: Pending[] = []
  private restartTimer?: NodeJS.Timeout
  private watchdog?: NodeJS.Timeout

  constructor(private readonly options: ServiceOptions) {
    this.name = options.name
  }

  get pid(): number | undefined {
    return this.child?.pid
  }

  get queued(): number {
    return this.queue.length + this.inflight.length
  }

  get rssKb(): number {
    return this.lastRssKb
  }

  /** Start the first runner; resolves when it is ready, rejects with a typed error when it cannot start. */
  async start(): Promise<RunnerReadyInfo> {
    return new Promise<RunnerReadyInfo>((resolve, reject) => {
      this.launch({reject, resolve})
    })
  }

  /** Not started (its model is missing) or failed to start: not ready for `reason` until a reload brings it up. */
  markFailed(reason: string): void {
    this.state = 'failed'
    this.reason = reason
  }

  /**
   * Queue one request; resolves with the result or rejects with a ServeError (never throws: a plain function
   * returning the request's own promise, one promise and no async wrapper per request on the hot path).
   */
  infer(request: ServiceRequest): Promise<InferenceResult> {
    if (this.state === 'stopped')
      return this.refuse(new ServeError('SHUTTING_DOWN', `The service "${this.name}" is shutting down.`, 5))
    if (this.state === 'failed') {
      return this.refuse(
        new ServeError('SERVICE_NOT_READY', `The service "${this.name}" is not ready: ${this.reason}`, 10),
      )
    }

    if (this.queue.length >= this.options.queueLimit) {
      const perRequest = this.latencyEwmaMs || 100
      const retryAfter = Math.max(1, Math.ceil((perRequest * (this.queue.length + 1)) / 1000))
      return this.refuse(
        new ServeError(
          'OVERLOADED',
          `The service "${this.name}" has ${this.queue.length} requests waiting (queue limit ${this.options.queueLimit}); retry later.`,
          retryAfter,
        ),
      )
    }

    return new Promise<InferenceResult>((resolve, reject) => {
      const p: Pending = {enqueuedAt: performance.now(), id: this.nextId++, reject, request, resolve, settled: false}
      p.timer = setTimeout(() => this.onDeadline(p), this.options.timeoutSeconds * 1000)
      this.queue.push(p)
      if (request.signal) {
        const onAbort = () => {
          // a client that went away: drop it if still queued; a running request finishes in the runner
          if (!p.settled && this.queue.includes(p)) {
            this.settle(p, new ServeError('INTERNAL', 'The client closed the connection.'), 'CLIENT_CLOSED')
          }
        }

        if (request.signal.aborted) onAbort()
        else request.signal.addEventListener('abort', onAbort, {once: true})
      }

      this.pump()
    })
  }

  /** A request refused before it was queued: counted like every other answer. */
  private refuse(error: ServeError): Promise<never> {
    this.options.metrics.outcome(this.name, error.code)
    return Promise.reject(error)
  }

  /** Wait (bounded) for queued and running requests, then stop the runner. */
  async stop(drainMs: number): Promise<void> {
    const until = Date.now() + drainMs
    while ((this.queue.length > 0 || this.inflight.length > 0) && Date.now() < until && this.state !== 'failed') {
      await new Promise((r) => {
        setTimeout(r, 20)
      })
    }

    this.state = 'stopped'
    clearTimeout(this.restartTimer)
    for (const p of [...this.queue, ...this.inflight]) {
      this.settle(
        p,
        new ServeError('SHUTTING_DOWN', `The service "${this.name}" shut down before this request ran.`, 5),
      )
    }

    if (this.child) {
      this.killReason = 'stop'
      await terminate(this.child, 2000)
    }

    this.stopWatchdog()
    await this.cap?.release()
  }

  // --- runner life cycle ---------------------------------------------------------------------------------------

  private launch(first?: {reject: (e: Error) => void; resolve: (i: RunnerReadyInfo) => void}): void {
    const o = this.options
    this.killReason = undefined
    this.state = first ? 'starting' : 'restarting'
    const log = o.logger
    // --expose-gc: the runner collects the garbage of model loading (see runner-main.ts) once it is ready
    const child = spawn(process.execPath, ['--expose-gc', o.runnerEntry ?? RUNNER_MAIN], {
      env: {...runnerMallocEnv(), ...o.runnerEnv, ICC_RUNNER_CONFIG: JSON.stringify(runnerConfig(o))},
      extraPipes: 1,
      killGraceMs: 1000,
      onStderrLine: (line) => line.trim() && log.warn({runner: child.pid}, `runner: ${line}`),
      onStdoutLine: (line) => line.trim() && log.info({runner: child.pid}, `runner: ${line}`),
    })
    this.child = child
    const run: RunnerRun = {first, ready: false}
    const channel = child.stdio[3] as NodeJS.ReadWriteStream & {destroy(): void}
    const decoder = new FrameDecoder<RunnerMessage>(({header, payload}) => this.onFrame(run, header, payload))
    channel.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk)
      } catch (error) {
        log.error({err: (error as Error).message}, 'runner protocol error; restarting the runner')
        child.kill('SIGKILL')
      }
    })
    channel.on('error', () => {})

    this.startMemoryGuard(child)

    child.once('exit', (code, signal) => {
      channel.destroy()
      this.stopWatchdog()
      if (this.child === child) this.child = undefined
      const oomCheck = this.cap?.oomKilled() ?? Promise.resolve(false)
      oomCheck.then(
        (oom) => this.onExit({...run, code, oom, signal}),
        () => this.onExit({...run, code, oom: false, signal}),
      )
    })
  }

  /** One frame from the runner. */
  private onFrame(run: RunnerRun, header: RunnerMessage, payload: Buffer): void {
    switch (header.t) {
      case 'decoding': {
        const p = this.inflight.find((r) => r.id === header.id)
        if (p) p.decodeSeq = ++this.decodeSeq
        break
      }

      case 'error': {
        this.onRunnerError(header.id, header.code, header.message)
        break
      }

      case 'fatal': {
        run.fatal = header
        break
      }

      case 'ready': {
        run.ready = true
        this.info = header.info
        this.state = 'ready'
        this.reason = undefined
        for (const w of header.info.warnings) this.options.logger.warn(w)
        // before the service is announced ready, so that its first answer is not the one formatted cold
        warmUpFormat(header.info.numClasses)
        run.first?.resolve(header.info)
        this.pump()
        break
      }

      case 'result': {
        this.onResult(header, payload)
        break
      }
    }
  }

  private onExit(e: ExitEvent): void {
    const log = this.options.logger
    const reason: KillReason | 'crash' = e.oom ? 'memory' : (this.killReason ?? 'crash')
    const how = e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`
    const peakKb = Math.max(this.cap?.peakKb() ?? 0, this.lastRssKb)
    this.cap?.release().catch(() => {})
    this.cap = undefined
    if (reason === 'stop' || this.state === 'stopped') return

    this.answerHeld(reason, how, peakKb)
    if (e.first && !e.ready) {
      this.state = 'failed'
      this.failStart(e, reason, how, peakKb).then(e.first.reject, e.first.reject)
      return
    }

    this.restarts++
    this.options.metrics.restart(this.name, reason)
    log.warn({reason, restarts: this.restarts}, `runner ${how} (${reason}); restarting`)
    if (reason === 'timeout') {
      this.launch()
      return
    }

    this.restartAfterFailure(e.fatal ? e.fatal.message : how)
  }

  /**
   * The requests a dead runner held. After a memory kill, the guilty one (see the module comment) gets
   * MEMORY_LIMIT and the others are retried once; otherwise the one it was running gets RUNNER_RESTARTING and the
   * ones sent behind it (pipelining, their inference not started) go back to the front of the queue.
   */
  private answerHeld(reason: KillReason | 'crash', how: string, peakKb: number): void {
    const held = this.inflight.filter((r) => !r.settled)
    if (reason !== 'memory') {
      const [p, ...behind] = this.inflight
      this.requeue(behind)
      if (p) {
        const text = `The runner of "${this.name}" ${how} while running this request; it is being restarted.`
        this.settle(p, new ServeError('RUNNER_RESTARTING', text, 1))
      }

      return
    }

    const started = held.filter((r) => r.decodeSeq !== undefined)
    const guilty = started.length > 0 ? started.reduce((a, b) => (b.decodeSeq! > a.decodeSeq! ? b : a)) : held[0]
    const over = `The runner of "${this.name}" went over its memory limit of ${this.options.memoryLimitKb} KB (LocalInferenceServiceMemoryLimitKB)`
    const retry = held.filter((r) => r !== guilty && !r.retried)
    for (const r of held) {
      if (r === guilty) {
        this.settle(
          r,
          new ServeError(
            'MEMORY_LIMIT',
            `${over} while running this request (${peakKb} KB); it was killed and is being restarted.`,
          ),
        )
      } else if (r.retried) {
        this.settle(
          r,
          new ServeError(
            'MEMORY_LIMIT',
            `${over} twice while holding this request (once on a retry); it was killed and is being restarted.`,
          ),
        )
      }
    }

    for (const r of retry) r.retried = true
    this.requeue(retry)
  }

  /** Why the first runner did not start; a memory kill measures a complete load without the cap for the advice. */
  private async failStart(e: ExitEvent, reason: KillReason | 'crash', how: string, peakKb: number): Promise<Error> {
    if (e.fatal) return this.typedFatal(e.fatal)
    if (reason !== 'memory') {
      return new ModelError('RUNNER_FAILED', `The runner of "${this.name}" ${how} while loading the model.`)
    }

    this.options.logger.info(
      {stoppedAtKb: peakKb},
      'the runner went over its memory limit while loading; measuring a complete load without the limit',
    )
    const measured = await Service.measureLoad(this.options).catch(() => undefined)
    return this.memoryStartError(peakKb, measured?.peakKb)
  }

  /** Restart after a crash or a memory kill: exponential backoff; a crash loop makes the service not ready. */
  private restartAfterFailure(last: string): void {
    const now = Date.now()
    const windowMs = this.options.crashLoopWindowMs ?? 60_000
    this.crashTimes = [...this.crashTimes.filter((t) => now - t < windowMs), now]
    const limit = this.options.crashLoopLimit ?? 5
    if (this.crashTimes.length >= limit) {
      const cooldown = this.options.crashLoopCooldownMs ?? 60_000
      this.state = 'failed'
      this.reason =
        `the runner crashed ${this.crashTimes.length} times within ${Math.round(windowMs / 1000)} s ` +
        `(last: ${last}); next attempt in ${Math.round(cooldown / 1000)} s`
      this.options.logger.error({reason: this.reason}, 'crash loop: service not ready')
      for (const q of this.queue) {
        this.settle(
          q,
          new ServeError('SERVICE_NOT_READY', `The service "${this.name}" is not ready: ${this.reason}`, 10),
        )
      }

      this.restartTimer = setTimeout(() => {
        this.crashTimes = []
        this.launch()
      }, cooldown)
      this.restartTimer.unref()
      return
    }

    this.state = 'restarting'
    const delay = Math.min(100 * 2 ** (this.crashTimes.length - 1), 10_000)
    this.restartTimer = setTimeout(() => this.launch(), delay)
  }

  private typedFatal(f: Extract<RunnerMessage, {t: 'fatal'}>): IccError {
    const opts = {details: f.details, suggestions: f.suggestions}
    if (f.kind === 'DependencyError') return new DependencyError(f.code, f.message, opts)
    if (f.kind === 'ModelError') return new ModelError(f.code, f.message, opts)
    if (f.kind === 'UsageError' || f.kind === 'ValidationError') return new UsageError(f.code, f.message, opts)
    return new IccError(f.code, f.message, opts)
  }

  /**
   * The advice when the model does not load within the limit: the peak of a complete load measured without the
   * cap (`measuredKb`), or, where that measurement failed, a lower bound: where the runner was stopped.
   */
  private memoryStartError(stoppedAtKb: number, measuredKb?: number): ModelError {
    const limit = `LocalInferenceServiceMemoryLimitKB=${this.options.memoryLimitKb}`
    const need =
      measuredKb === undefined
        ? `the runner needed at least ${stoppedAtKb} KB (measured) while loading it.`
        : `the runner was stopped at ${stoppedAtKb} KB while loading it, and a complete load and warm-up measured without the limit needed ${measuredKb} KB.`
    return new ModelError(
      'MEMORY_LIMIT_TOO_SMALL',
      `The model of service "${this.name}" cannot be loaded within ${limit}: ${need}`,
      {
        details: {limitKb: this.options.memoryLimitKb, measuredKb: measuredKb ?? stoppedAtKb, stoppedAtKb},
        suggestions: memoryLimitSuggestions(measuredKb ?? stoppedAtKb, {
          lowerBound: measuredKb === undefined,
          model: this.options.modelPath,
        }),
      },
    )
  }

  /**
   * Load the model in a runner without the memory cap (the same load, session and warm-up as serving), read its
   * peak (the larger of its RSS high-water mark and, in a memory cgroup, the group's peak) and stop it: what a
   * limit must hold. The start-up advice of `icc serve` and `icc doctor --model` both come from here.
   */
  static async measureLoad(
    options: ServiceOptions,
  ): Promise<{info: RunnerReadyInfo; memoryMode?: MemoryMode; peakKb: number}> {
    // uncapped, but the model's tensors stay bounded by the limit asked for (a model refused there is refused here)
    const activationLimitKb = options.activationLimitKb ?? options.memoryLimitKb
    const silent = pino({level: 'silent'})
    const probe = new Service({
      ...options,
      activationLimitKb,
      logger: silent,
      memoryLimitKb: UNCAPPED_KB,
      queueLimit: 1,
    })
    try {
      const info = await probe.start()
      return {info, memoryMode: probe.memoryMode, peakKb: Math.max(info.peakRssKb, probe.cap?.peakKb() ?? 0)}
    } finally {
      await probe.stop(0).catch(() => {})
    }
  }

  private startMemoryGuard(child: ChildProcess): void {
    const o = this.options
    const {pid} = child
    if (!pid) return
    this.cap = undefined
    tryCgroupCap(pid, o.name, o.memoryLimitKb).then(
      ({cap, reason}) => {
        if (cap && this.child === child) {
          this.cap = cap
          this.memoryMode = cap.mode
        } else if (cap) {
          cap.release().catch(() => {})
        } else {
          if (this.memoryMode === undefined) o.logger.info({reason}, 'memory limit enforced by an RSS watchdog')
          this.memoryMode = 'rss-watchdog'
        }
      },
      () => {},
    )
    this.watchdog = setInterval(() => {
      const {hwmKb, rssKb} = readRssKb(pid)
      if (rssKb === undefined) return
      this.lastRssKb = Math.max(rssKb, hwmKb ?? 0)
      this.options.metrics.rss(this.name, rssKb)
      if (!this.memoryMode?.startsWith('cgroup-') && rssKb > o.memoryLimitKb && this.child === child) {
        o.logger.warn({limitKb: o.memoryLimitKb, rssKb}, 'runner over its memory limit; killing it')
        this.killReason = 'memory'
        if (this.state === 'ready') this.state = 'restarting'
        this.lastRssKb = rssKb
        child.kill('SIGKILL')
        this.stopWatchdog()
      }
    }, o.watchdogIntervalMs ?? 100)
    this.watchdog.unref()
  }

  private stopWatchdog(): void {
    clearInterval(this.watchdog)
    this.watchdog = undefined
  }

  // --- requests ------------------------------------------------------------------------------------------------

  private pump(): void {
    if (this.state !== 'ready' || !this.child) return
    const channel = this.child.stdio[3] as NodeJS.WritableStream
    const depth = this.options.pipelineDepth ?? Math.max(2, 2 * (this.options.maxBatch ?? DEFAULT_MAX_BATCH))
    while (this.queue.length > 0 && this.inflight.length < depth) {
      const p = this.queue.shift()!
      if (p.settled) continue
      p.sentAt = performance.now()
      this.inflight.push(p)
      p.decodeSeq = undefined
      writeFrame(channel as never, {contentType: p.request.contentType, id: p.id, t: 'infer'}, p.request.body)
    }
  }

  private requeue(requests: Pending[]): void {
    for (const r of requests) r.sentAt = undefined
    this.queue.unshift(...requests.filter((r) => !r.settled))
    this.inflight = []
  }

  private onDeadline(p: Pending): void {
    if (p.settled) return
    const secs = this.options.timeoutSeconds
    if (this.inflight.includes(p) && this.child) {
      this.settle(
        p,
        new ServeError(
          'TIMEOUT',
          `The service "${this.name}" did not answer within ${secs} s (LocalInferenceServiceTimeoutSeconds); the runner was stopped and is being restarted.`,
        ),
      )
      this.requeue(this.inflight.filter((r) => r !== p))
      this.killReason = 'timeout'
      this.state = 'restarting' // nothing more goes to the dying runner
      this.options.logger.warn({timeoutSeconds: secs}, 'request timed out in the runner; killing it')
      this.child.kill('SIGKILL')
      return
    }

    this.settle(
      p,
      new ServeError(
        'TIMEOUT',
        `The service "${this.name}" did not answer within ${secs} s (LocalInferenceServiceTimeoutSeconds); the request was still waiting (runner ${this.state}).`,
      ),
    )
  }

  /** Take the in-flight request with this id (the runner answers in order, so normally the oldest). */
  private takeInflight(id: number): Pending | undefined {
    const i = this.inflight.findIndex((r) => r.id === id)
    return i === -1 ? undefined : this.inflight.splice(i, 1)[0]
  }

  private onResult(header: Extract<RunnerMessage, {t: 'result'}>, payload: Buffer): void {
    const {decodeMs, id, inferenceMs} = header
    const p = this.takeInflight(id)
    if (!p) return
    const probabilities = payloadToFloat32(payload)
    const now = performance.now()
    const totalMs = now - p.enqueuedAt
    const queueMs = (p.sentAt ?? now) - p.enqueuedAt
    const serviceMs = now - (p.sentAt ?? now)
    this.latencyEwmaMs = this.latencyEwmaMs === 0 ? serviceMs : this.latencyEwmaMs * 0.8 + serviceMs * 0.2
    const k = p.request.topK
    this.settle(p, {
      batchSize: header.batch ?? 1,
      body: formatConnectorBody(probabilities),
      probabilities,
      timings: {decodeMs, inferenceMs, queueMs, totalMs},
      ...(k ? {top: topK(probabilities, k, this.info?.labels)} : {}),
    })
    this.pump()
  }

  private onRunnerError(id: number, code: string, message: string): void {
    const p = this.takeInflight(id)
    if (!p) return
    // the caller's image: 4xx (an image too large to decode is a bad image for this service); anything else is ours
    const mapped =
      code === 'UNSUPPORTED_CONTENT_TYPE'
        ? code
        : code === 'BAD_IMAGE' || code === 'IMAGE_TOO_LARGE'
          ? 'BAD_IMAGE'
          : 'INTERNAL'
    this.settle(p, new ServeError(mapped, message))
    this.pump()
  }

  private settle(p: Pending, outcome: InferenceResult | ServeError, metricsLabel?: string): void {
    if (p.settled) return
    p.settled = true
    clearTimeout(p.timer)
    const i = this.queue.indexOf(p)
    if (i !== -1) this.queue.splice(i, 1)
    if (outcome instanceof ServeError) {
      this.options.metrics.outcome(this.name, metricsLabel ?? outcome.code)
      p.reject(outcome)
    } else {
      p.resolve(outcome)
      // counted once the answer is on its way: the caller's continuation (which writes it) runs in this turn's
      // microtasks, before the immediates
      setImmediate(() => this.options.metrics.outcome(this.name, 'OK', outcome.timings, outcome.batchSize))
    }
  }
}
