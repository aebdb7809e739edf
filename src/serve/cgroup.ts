/**
 * The cgroup v1 memory controller as a hard memory cap for a runner (what Greengrass V1 used for
 * LocalInferenceServiceMemoryLimitKB): a child group per runner under this process's own memory group (or the
 * hierarchy's root where that is not writable), `memory.limit_in_bytes` = the limit (and `memory.memsw.limit_in_bytes`
 * too where swap accounting is on, so the runner cannot swap past it). The kernel OOM-kills the runner when it goes
 * over; `memory.oom_control`'s `oom_kill` (or `memory.failcnt`) tells the host it did. ./memory.ts tries cgroup v2
 * first and this second.
 */
import {existsSync, readFileSync} from 'node:fs'
import {mkdir, readFile, rmdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

/** How a runner's memory limit is enforced (what `serve` logs and `/v2/models` shows). */
export type MemoryMode = 'cgroup-v1' | 'cgroup-v2' | 'rss-watchdog'

/** A runner's memory cap, whichever way it is enforced. */
export interface MemoryCap {
  /** How the cap is enforced. */
  readonly mode: MemoryMode
  /** Whether the kernel OOM-killed the runner (cgroup mode). */
  oomKilled(): Promise<boolean>
  /** Peak memory seen, in KiB. */
  peakKb(): number
  release(): Promise<void>
}

export const CGROUP_V1_MEMORY = '/sys/fs/cgroup/memory'

/** The memory groups a runner's group may go under, this process's own first. */
function parents(root: string): string[] {
  const out: string[] = []
  try {
    const line = readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l))
    const own = line?.split(':')[2]
    if (own && own !== '/' && existsSync(join(root, own))) out.push(join(root, own))
  } catch {
    // no /proc/self/cgroup: the root only
  }

  out.push(root)
  return out
}

async function makeGroup(root: string, leaf: string): Promise<string> {
  let last: unknown
  for (const parent of parents(root)) {
    const dir = join(parent, leaf)
    try {
      await mkdir(dir)
      return dir
    } catch (error) {
      last = error
    }
  }

  throw last
}

/**
 * Put `pid` into a fresh cgroup v1 memory group capped at `limitKb`; the reason when the controller is not there
 * or not writable (the caller falls back to the RSS watchdog).
 */
export async function tryCgroupV1Cap(
  pid: number,
  name: string,
  limitKb: number,
  root = CGROUP_V1_MEMORY,
): Promise<{cap?: MemoryCap; reason?: string}> {
  if (!existsSync(join(root, 'memory.limit_in_bytes'))) return {reason: `no cgroup v1 memory controller at ${root}`}
  let dir: string | undefined
  try {
    dir = await makeGroup(root, `icc-${name}-${pid}`)
    await writeFile(join(dir, 'memory.limit_in_bytes'), String(limitKb * 1024))
    // after memory.limit_in_bytes (memsw must not be below it); absent without swap accounting
    await writeFile(join(dir, 'memory.memsw.limit_in_bytes'), String(limitKb * 1024)).catch(() => {})
    await writeFile(join(dir, 'cgroup.procs'), String(pid))
  } catch (error) {
    if (dir) await rmdir(dir).catch(() => {})
    return {reason: `the cgroup v1 memory controller at ${root} is not writable (${(error as Error).message})`}
  }

  const group = dir
  const read = (file: string) => readFile(join(group, file), 'utf8').catch(() => '')
  let peak = 0
  return {
    cap: {
      mode: 'cgroup-v1',
      async oomKilled() {
        const control = await read('memory.oom_control')
        const kills = /oom_kill (\d+)/.exec(control)?.[1]
        if (kills !== undefined) return Number(kills) > 0
        return Number((await read('memory.failcnt')).trim() || 0) > 0 // kernels before 4.13
      },
      peakKb() {
        try {
          const bytes = Number(readFileSync(join(group, 'memory.max_usage_in_bytes'), 'utf8'))
          peak = Math.max(peak, Math.round(bytes / 1024))
        } catch {
          // the group is gone
        }

        return peak
      },
      async release() {
        this.peakKb()
        await rmdir(group).catch(() => {})
      },
    },
  }
}

/** Whether a runner's group can be made here (made and removed again at once), or why not. */
export async function probeCgroupV1(root = CGROUP_V1_MEMORY): Promise<{ok: boolean; reason?: string}> {
  if (!existsSync(join(root, 'memory.limit_in_bytes')))
    return {ok: false, reason: `no cgroup v1 memory controller at ${root}`}
  try {
    await rmdir(await makeGroup(root, `icc-probe-${process.pid}`))
    return {ok: true}
  } catch (error) {
    return {
      ok: false,
      reason: `the cgroup v1 memory controller at ${root} is not writable (${(error as Error).message})`,
    }
  }
}
