/**
 * Model reload without a failed request (`icc serve`: SIGHUP, `POST /v2/repository/models/{name}/load`, `--watch`).
 *
 * A reload starts a second {@link Service} for the same service name with the model read again from its source,
 * waits until it is ready (loaded and warmed up), swaps it into the host's service map (the dispatcher looks the
 * service up per request, so new requests switch at once), then lets the old service finish what it holds (its
 * queue and the requests in its runner) before stopping it. A model that fails to load leaves the old one serving:
 * the failure is logged and kept for `/v2/models/{name}`, and readiness does not change.
 *
 * Memory: both runners exist for a moment. Before a reload the new runner's need is estimated as the old runner's
 * measured peak (load + warm-up); the reload is refused (old model kept) when the runners of the host plus that
 * estimate would not fit the memory budget (`memoryBudgetKb`, default: what the machine has available).
 * Reloads of one service run one after the other.
 */
import type {Logger} from 'pino'

import {readFileSync} from 'node:fs'

import {IccError} from '../errors.js'
import {type Service} from './service.js'

export type ReloadTrigger = 'http' | 'SIGHUP' | 'watch'

/** What `/v2/models/{name}` shows about the model a service runs and its last reload. */
export interface ModelProvenance {
  /** When the model now serving became ready (ISO 8601). */
  loadedAt: string
  /** The last reload attempt (absent before the first). */
  lastReload?: {at: string; error?: {code: string; message: string}; ok: boolean; trigger: ReloadTrigger}
  /** The file or folder the model is read from (MLModelDestinationPath). */
  source: string
}

export interface ReloadResult {
  classes: number
  hash: string
  loadMs: number
  name: string
  previousHash?: string
  warmupMs: number
}

export interface ReloaderOptions {
  /** Bounded wait for the old runner's requests (ms). */
  drainMs: number
  logger(name: string): Logger
  /** Make a new (not started) service for this name, from its configuration. */
  makeService(name: string): Service
  /** Most memory all runners together may use during a reload (KiB); undefined: the machine's MemAvailable. */
  memoryBudgetKb?: number
  /** The host's live service map (swapped in place). */
  services: Map<string, Service>
  /** The model source of each service. */
  sourceOf(name: string): string
}

/** MemAvailable of /proc/meminfo in KiB (undefined where it cannot be read). */
export function memAvailableKb(): number | undefined {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))
    return m ? Number(m[1]) : undefined
  } catch {
    return undefined
  }
}

function errorOf(error: unknown): {code: string; message: string} {
  if (error instanceof IccError) return {code: error.code, message: error.message}
  return {code: 'RELOAD_FAILED', message: (error as Error).message}
}

export class ModelReloader {
  private chains = new Map<string, Promise<unknown>>()
  private closed = false
  private draining = new Set<Promise<void>>()
  private provenance = new Map<string, ModelProvenance>()

  constructor(private readonly options: ReloaderOptions) {
    const now = new Date().toISOString()
    for (const name of options.services.keys())
      this.provenance.set(name, {loadedAt: now, source: options.sourceOf(name)})
  }

  /** Stop reloading; wait for old runners still draining. */
  async close(): Promise<void> {
    this.closed = true
    await Promise.allSettled(this.chains.values())
    await Promise.allSettled(this.draining)
  }

  describe(name: string): ModelProvenance | undefined {
    return this.provenance.get(name)
  }

  /** Reload one service's model (queued behind a reload of the same service already running). */
  async reload(name: string, trigger: ReloadTrigger): Promise<ReloadResult> {
    if (!this.options.services.has(name)) {
      throw new IccError(
        'UNKNOWN_SERVICE',
        `No service named "${name}"; this host runs: ${[...this.options.services.keys()].join(', ')}.`,
      )
    }

    const previous = this.chains.get(name) ?? Promise.resolve()
    const run = previous.catch(() => {}).then(async () => this.reloadNow(name, trigger))
    this.chains.set(name, run)
    return run
  }

  /** Reload every service (SIGHUP); failures are logged and recorded, never thrown. */
  async reloadAll(trigger: ReloadTrigger): Promise<void> {
    await Promise.allSettled([...this.options.services.keys()].map(async (n) => this.reload(n, trigger)))
  }

  private checkMemory(name: string, old: Service): void {
    const needKb = old.info?.peakRssKb ?? old.rssKb
    const inUseKb = [...this.options.services.values()].reduce((sum, s) => sum + s.rssKb, 0)
    const budget = this.options.memoryBudgetKb
    const freeKb = budget === undefined ? memAvailableKb() : budget - inUseKb
    if (freeKb === undefined || needKb <= freeKb) return
    throw new IccError(
      'RELOAD_NO_MEMORY',
      `Not reloading "${name}": a reload runs the new runner beside the old one, and the new one needs about ${needKb} KB ` +
        `(the old runner's peak) but only ${Math.max(0, freeKb)} KB are free` +
        (budget === undefined
          ? ' (MemAvailable).'
          : ` within --memory-budget-kb ${budget} (runners now use ${inUseKb} KB).`),
      {
        details: {freeKb, needKb},
        suggestions: ['Free memory or raise --memory-budget-kb, or restart icc serve to load the new model.'],
      },
    )
  }

  private async reloadNow(name: string, trigger: ReloadTrigger): Promise<ReloadResult> {
    const log = this.options.logger(name)
    const old = this.options.services.get(name)!
    const record = (error?: {code: string; message: string}) => {
      const p = this.provenance.get(name)!
      p.lastReload = {at: new Date().toISOString(), ok: !error, trigger, ...(error ? {error} : {})}
    }

    let fresh: Service | undefined
    try {
      if (this.closed) throw new IccError('SHUTTING_DOWN', 'icc serve is shutting down; not reloading.')
      this.checkMemory(name, old)
      log.info({source: this.options.sourceOf(name), trigger}, 'reloading the model')
      fresh = this.options.makeService(name)
      const info = await fresh.start()
      if (this.closed) throw new IccError('SHUTTING_DOWN', 'icc serve shut down during the reload.')
      // the switch: the dispatcher finds the new service from the next request on
      this.options.services.set(name, fresh)
      this.provenance.set(name, {loadedAt: new Date().toISOString(), source: this.options.sourceOf(name)})
      record()
      log.info(
        {classes: info.numClasses, hash: info.modelHash, previousHash: old.info?.modelHash, trigger},
        'model reloaded; the old runner finishes its requests',
      )
      this.drain(old)
      return {
        classes: info.numClasses,
        hash: info.modelHash,
        loadMs: info.loadMs,
        name,
        previousHash: old.info?.modelHash,
        warmupMs: info.warmupMs,
      }
    } catch (error) {
      if (fresh && this.options.services.get(name) !== fresh) await fresh.stop(0).catch(() => {})
      const e = errorOf(error)
      record(e)
      log.error({err: e, trigger}, 'model reload failed; the old model keeps serving')
      const opts = error instanceof IccError ? {details: error.details, suggestions: error.suggestions} : {}
      throw new IccError(e.code, `Reloading "${name}" failed: ${e.message} The old model keeps serving.`, opts)
    }
  }

  private drain(old: Service): void {
    const done = old.stop(this.options.drainMs).catch(() => {})
    this.draining.add(done)
    done.finally(() => this.draining.delete(done))
  }
}
