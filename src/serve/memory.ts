/**
 * Memory capping of runner processes (LocalInferenceServiceMemoryLimitKB).
 *
 * Where cgroup v2 is mounted at /sys/fs/cgroup with the memory controller and our cgroup is writable, each runner
 * goes into its own child cgroup with `memory.max` = the limit (and no swap), so the kernel enforces it; the
 * host learns of an OOM kill from `memory.events`. Elsewhere (cgroup v1, containers without delegation) an RSS
 * watchdog polls /proc/<pid>/status (VmRSS) and kills the runner with SIGKILL when it goes over the limit.
 * Either way the RSS is polled for the metrics.
 */
import {existsSync, readFileSync} from 'node:fs'
import {mkdir, readFile, rmdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {type MemoryCap, tryCgroupV1Cap} from './cgroup.js'

/** Memory fields (KiB) of `/proc/PID/status` (`self`: this process); a field the kernel does not give is absent. */
export function procStatusKb<F extends string>(pid: number | 'self', fields: F[]): Partial<Record<F, number>> {
  const found: Partial<Record<F, number>> = {}
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8')
    for (const field of fields) {
      const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)
      if (m) found[field] = Number(m[1])
    }
  } catch {
    // the process is gone, or no /proc: nothing measured
  }

  return found
}

export function readRssKb(pid: number): {hwmKb?: number; rssKb?: number} {
  const {VmHWM, VmRSS} = procStatusKb(pid, ['VmHWM', 'VmRSS'])
  return {hwmKb: VmHWM, rssKb: VmRSS}
}

/** How a runner's memory limit is enforced: by the kernel (a memory cgroup) or by the host's RSS watchdog. */
export type {MemoryCap, MemoryMode} from './cgroup.js'

const CGROUP_ROOT = '/sys/fs/cgroup'

let baseCgroup: null | string | undefined

/**
 * The cgroup v2 directory of this process as it was at first use (the host may move itself into a leaf below
 * it), when cgroup v2 with the memory controller is mounted.
 */
function ownCgroupV2(): string | undefined {
  if (baseCgroup === undefined) baseCgroup = findCgroupV2() ?? null
  return baseCgroup ?? undefined
}

function findCgroupV2(): string | undefined {
  try {
    if (!existsSync(join(CGROUP_ROOT, 'cgroup.controllers'))) return undefined
    const controllers = readFileSync(join(CGROUP_ROOT, 'cgroup.controllers'), 'utf8')
    if (!/\bmemory\b/.test(controllers)) return undefined
    const line = readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'))
    if (!line) return undefined
    return join(CGROUP_ROOT, line.slice(3))
  } catch {
    return undefined
  }
}

let enabling: Promise<void> | undefined

/**
 * Enable the memory controller for children of `cg`. cgroup v2 refuses that while `cg` itself holds processes
 * ("no internal processes"), which is the usual case for a delegated service cgroup: then the host moves itself
 * into a leaf `cg/icc-host` first (once).
 */
async function enableMemoryController(cg: string): Promise<void> {
  enabling ??= (async () => {
    const control = join(cg, 'cgroup.subtree_control')
    const enabled = await readFile(control, 'utf8').catch(() => '')
    if (/\bmemory\b/.test(enabled)) return
    try {
      await writeFile(control, '+memory')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EBUSY') throw error
      const leaf = join(cg, 'icc-host')
      await mkdir(leaf).catch((error_: NodeJS.ErrnoException) => {
        if (error_.code !== 'EEXIST') throw error_
      })
      await writeFile(join(leaf, 'cgroup.procs'), String(process.pid))
      await writeFile(control, '+memory')
    }
  })()
  try {
    await enabling
  } catch (error) {
    enabling = undefined
    throw error
  }
}

/**
 * Try to put `pid` into a fresh child cgroup with memory.max = limitKb. Returns undefined (and the reason) when
 * the cgroup is not usable, so the caller falls back to the watchdog.
 */
export async function tryCgroupCap(
  pid: number,
  name: string,
  limitKb: number,
): Promise<{cap?: MemoryCap; reason?: string}> {
  const parent = ownCgroupV2()
  if (!parent) {
    // cgroup v1 (what Greengrass V1 used), else the watchdog
    const v1 = await tryCgroupV1Cap(pid, name, limitKb)
    return v1.cap ? v1 : {reason: `cgroup v2 with the memory controller is not mounted; ${v1.reason}`}
  }

  const dir = join(parent, `icc-${name}-${pid}`)
  try {
    await enableMemoryController(parent)
    await mkdir(dir)
    await writeFile(join(dir, 'memory.max'), String(limitKb * 1024))
    await writeFile(join(dir, 'memory.swap.max'), '0').catch(() => {})
    await writeFile(join(dir, 'cgroup.procs'), String(pid))
  } catch (error) {
    await rmdir(dir).catch(() => {})
    return {reason: `cgroup v2 not writable here (${(error as Error).message})`}
  }

  let peak = 0
  return {
    cap: {
      mode: 'cgroup-v2',
      async oomKilled() {
        const events = await readFile(join(dir, 'memory.events'), 'utf8').catch(() => '')
        return Number(/oom_kill (\d+)/.exec(events)?.[1] ?? 0) > 0
      },
      peakKb() {
        try {
          peak = Math.max(peak, Math.round(Number(readFileSync(join(dir, 'memory.peak'), 'utf8')) / 1024))
        } catch {
          // memory.peak needs Linux 5.19
        }

        return peak
      },
      async release() {
        this.peakKb()
        await rmdir(dir).catch(() => {})
      },
    },
  }
}

/**
 * What to do when a model's load does not fit LocalInferenceServiceMemoryLimitKB, given what it needed: `needKb` is
 * the measured peak of a complete load (conversion, session, warm-up), or with `lowerBound` what it had reached
 * when it was stopped. A float32 model loads in about its weights plus 100-150 MB (docs/performance.md), so
 * quantizing it to int8 (weights 4x smaller) is what makes a model fit that the limit cannot be raised for: the
 * command to run names `model` (the model's path) when given.
 */
export function memoryLimitSuggestions(needKb: number, options: {lowerBound?: boolean; model?: string} = {}): string[] {
  const raise = options.lowerBound
    ? `Raise --memory-limit-kb (LocalInferenceServiceMemoryLimitKB) above ${needKb}: loading was stopped there, so it needs more (try ${Math.ceil(needKb * 1.25)}).`
    : `Raise --memory-limit-kb (LocalInferenceServiceMemoryLimitKB) to at least ${Math.ceil(needKb * 1.1)} (the measured peak of a complete load, plus 10%).`
  const model = options.model === undefined ? 'MODEL' : shellQuote(options.model)
  return [
    raise,
    `Or make the model 4x smaller: \`icc convert-model ${model} --output model.int8.onnx --quantize int8 --calibration IMAGES\` (IMAGES: a folder of photos like the ones it will see) and serve that file (a model loads in about its weights plus 100-150 MB; docs/performance.md).`,
  ]
}

/** `s` as one word for a POSIX shell (unchanged when it has nothing the shell would read). */
function shellQuote(s: string): string {
  return /^[\w./:@%+=,-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`
}

/** Whether a runner's cgroup v2 group can be made here (made and removed again at once), or why not. */
export async function probeCgroupV2(): Promise<{ok: boolean; reason?: string}> {
  const parent = ownCgroupV2()
  if (!parent) return {ok: false, reason: 'cgroup v2 with the memory controller is not mounted'}
  const dir = join(parent, `icc-probe-${process.pid}`)
  try {
    await enableMemoryController(parent)
    await mkdir(dir)
    await rmdir(dir)
    return {ok: true}
  } catch (error) {
    return {ok: false, reason: `cgroup v2 not writable here (${(error as Error).message})`}
  }
}
