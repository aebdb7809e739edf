/**
 * Which way `icc serve` will enforce LocalInferenceServiceMemoryLimitKB on this machine, asked without starting a
 * runner (for `icc doctor` and the docs): `cgroup-v2` (a delegated subtree with memory.max), `cgroup-v1` (a child
 * group of the v1 memory controller with memory.limit_in_bytes), else `rss-watchdog` (the host polls the runner's
 * RSS). The same order and the same checks as a runner's start (./memory.ts, ./cgroup.ts).
 */
import {probeCgroupV1} from './cgroup.js'
import {type MemoryMode, probeCgroupV2} from './memory.js'

export interface MemoryModeInfo {
  /** True when the kernel enforces the limit (an OOM kill), false for the watchdog (which polls, so can be late). */
  hard: boolean
  mode: MemoryMode
  /** Why the cgroup modes are not available (watchdog only). */
  reason?: string
}

export async function memoryMode(): Promise<MemoryModeInfo> {
  const v2 = await probeCgroupV2()
  if (v2.ok) return {hard: true, mode: 'cgroup-v2'}
  const v1 = await probeCgroupV1()
  if (v1.ok) return {hard: true, mode: 'cgroup-v1'}
  return {hard: false, mode: 'rss-watchdog', reason: `${v2.reason}; ${v1.reason}`}
}
