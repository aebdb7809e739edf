/**
 * `icc doctor`'s system checks for the original connector (`for: "connector"`): AWS IoT Greengrass core 1.7+ and
 * cgroups with the memory controller.
 */
import {access, constants, readdir, stat} from 'node:fs/promises'
import {join} from 'node:path'

import type {DoctorCheck} from './doctor-types.js'

import {run} from '../system.js'
import {readUnderRoot} from './platform.js'
import {compareNumbers} from './versions.js'

export async function checkGreengrass(ggRoot: string): Promise<DoctorCheck> {
  const seen: {source: string; version: string}[] = []
  const packages = join(ggRoot, 'ggc', 'packages')
  try {
    for (const name of await readdir(packages)) {
      if (/^\d+\.\d+\.\d+$/.test(name) && (await stat(join(packages, name))).isDirectory()) {
        seen.push({source: join(packages, name), version: name})
      }
    }
  } catch {
    // no packages folder
  }

  for (const exe of ['greengrassd', join(ggRoot, 'ggc', 'core', 'greengrassd')]) {
    try {
      const r = await run(exe, ['--version'], {timeoutMs: 10_000})
      const m = /(\d+\.\d+\.\d+)/.exec(`${r.stdout}\n${r.stderr}`)
      if (m) seen.push({source: `${exe} --version`, version: m[1]})
      break
    } catch {
      // not there
    }
  }

  const title = 'AWS IoT Greengrass core >= 1.7'
  if (seen.length === 0) {
    return {
      evidence: {greengrassRoot: ggRoot, looked: [packages, 'greengrassd on PATH']},
      fix: `Only needed to run the original connector: install AWS IoT Greengrass core 1.7+ (or pass --greengrass-root if it lives elsewhere than ${ggRoot}). icc serve runs without it.`,
      for: 'connector',
      id: 'greengrass',
      message: `not found under ${ggRoot}`,
      status: 'warn',
      title,
    }
  }

  const newest = seen.reduce((a, b) =>
    compareNumbers(a.version.split('.').map(Number), b.version.split('.').map(Number)) >= 0 ? a : b,
  )
  const ok = compareNumbers(newest.version.split('.').map(Number), [1, 7, 0]) >= 0
  return {
    evidence: {greengrassRoot: ggRoot, versions: seen},
    fix: ok ? undefined : 'Upgrade AWS IoT Greengrass core to 1.7 or later (the connectors need 1.7+).',
    for: 'connector',
    id: 'greengrass',
    message: `version ${newest.version} (${newest.source})`,
    status: ok ? 'pass' : 'fail',
    title,
  }
}

async function writable(path: string): Promise<boolean> {
  try {
    await access(path, constants.W_OK)
    return true
  } catch {
    return false
  }
}

export async function checkCgroups(root: string): Promise<DoctorCheck> {
  const title = 'cgroups memory controller'
  const fix =
    'Enable the memory cgroup: add "cgroup_enable=memory cgroup_memory=1" to the kernel command line (/boot/cmdline.txt on a Raspberry Pi) and reboot; run as root so limits can be set.'
  const v2 = await readUnderRoot(root, '/sys/fs/cgroup/cgroup.controllers')
  if (v2 !== undefined) {
    const controllers = v2.trim().split(/\s+/).filter(Boolean)
    const hasMemory = controllers.includes('memory')
    const canWrite = await writable(join(root, '/sys/fs/cgroup'))
    return {
      evidence: {controllers, version: 2, writable: canWrite},
      fix: hasMemory && canWrite ? undefined : fix,
      for: 'connector',
      id: 'cgroups',
      message: hasMemory
        ? `cgroup v2 with memory controller${canWrite ? '' : ' (not writable by this user)'}`
        : `cgroup v2 without the memory controller (${controllers.join(' ') || 'none'})`,
      status: hasMemory && canWrite ? 'pass' : 'warn',
      title,
    }
  }

  const procCgroups = (await readUnderRoot(root, '/proc/cgroups')) ?? ''
  const memLine = procCgroups.split('\n').find((l) => l.startsWith('memory\t') || l.startsWith('memory '))
  const enabled = memLine ? memLine.trim().split(/\s+/)[3] === '1' : undefined
  const memDir = join(root, '/sys/fs/cgroup/memory')
  const limitFile = await readUnderRoot(root, '/sys/fs/cgroup/memory/memory.limit_in_bytes')
  const ok = limitFile !== undefined && enabled !== false
  const canWrite = ok && (await writable(memDir))
  return {
    evidence: {
      enabledInProcCgroups: enabled,
      memoryHierarchy: limitFile === undefined ? undefined : memDir,
      version: 1,
      writable: canWrite,
    },
    fix: ok && canWrite ? undefined : fix,
    for: 'connector',
    id: 'cgroups',
    message: ok
      ? `cgroup v1 memory controller at ${memDir}${canWrite ? '' : ' (not writable by this user)'}`
      : 'no memory cgroup controller found (neither cgroup v2 cgroup.controllers nor v1 memory hierarchy)',
    status: ok && canWrite ? 'pass' : 'warn',
    title,
  }
}
