/**
 * Which Image Classification platform this device is: `x86_64`, `armv7` (Raspberry Pi) or `jtx2` (NVIDIA Jetson
 * TX2).
 *
 * The machine architecture (`uname -m`, from Node's `os.machine()`) decides in general; the device-tree model
 * (`/proc/device-tree/model`) refines it: a Jetson TX2 reports `aarch64` like any 64-bit ARM board, and a
 * Raspberry Pi may run a 64-bit kernel under a 32-bit (armhf) system. Every path is read under a root directory
 * (`root`, default `$ICC_ROOT` or `/`) so tests can use fixture files; the architecture can be overridden
 * likewise (`machine`, default `$ICC_MACHINE` or `os.machine()`). Also the running glibc version and what icc
 * needs on the running Node's architecture (the catalog's platform table).
 */
import {readFile} from 'node:fs/promises'
import {machine as osMachine} from 'node:os'
import {join} from 'node:path'

import {CONNECTORS, type IccSupport, platformForArchitecture, type PlatformId} from '../connector/catalog.js'
import {compareNumbers} from './versions.js'

export interface DetectPlatformOptions {
  /** Architecture as `uname -m` prints it (default: `$ICC_MACHINE`, else `os.machine()`). */
  machine?: string
  /** Root directory the system files are read under (default: `$ICC_ROOT`, else `/`). */
  root?: string
}

export interface DetectedPlatform {
  machine: string
  /** The device-tree model string, when the device has one. */
  model?: string
  /** Undefined when no connector exists for this machine. */
  platform?: PlatformId
  /** How the decision was made, in words. */
  reason: string
}

export function defaultRoot(root?: string): string {
  return root ?? process.env.ICC_ROOT ?? '/'
}

/** Read a file under the root; undefined when it does not exist or cannot be read. */
export async function readUnderRoot(root: string, path: string): Promise<string | undefined> {
  try {
    return await readFile(join(root, path), 'utf8')
  } catch {
    return undefined
  }
}

export async function detectPlatform(options: DetectPlatformOptions = {}): Promise<DetectedPlatform> {
  const root = defaultRoot(options.root)
  const machine = (options.machine ?? process.env.ICC_MACHINE ?? osMachine()).trim()
  // The device-tree model is NUL-terminated.
  const model = (await readUnderRoot(root, '/proc/device-tree/model'))?.replaceAll('\0', '').trim() || undefined

  if (model && /jetson/i.test(model) && /tx2/i.test(model)) {
    return {machine, model, platform: 'jtx2', reason: `device-tree model "${model}" is a Jetson TX2`}
  }

  if (model && /raspberry pi/i.test(model)) {
    const note = machine.startsWith('arm')
      ? ''
      : ` (machine ${machine}; the ARMv7 connector needs a 32-bit armhf system)`
    return {machine, model, platform: 'armv7', reason: `device-tree model "${model}" is a Raspberry Pi${note}`}
  }

  const platform = platformForArchitecture(machine)
  if (platform) return {machine, model, platform, reason: `machine architecture ${machine}`}
  return {
    machine,
    model,
    platform: undefined,
    reason: `no Image Classification connector exists for machine "${machine}"${model ? ` (model "${model}")` : ''}`,
  }
}

/** The fields of an os-release file (`/etc/os-release`), unquoted. */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim())
    if (!m) continue
    let value = m[2].trim()
    if ((value.startsWith('"') && value.endsWith('"')) || (value.startsWith("'") && value.endsWith("'"))) {
      value = value.slice(1, -1).replaceAll(/\\(["$`\\])/g, '$1')
    }

    out[m[1]] = value
  }

  return out
}

/** The running C library's version (glibc's gnu_get_libc_version, as Node's diagnostic report records it). */
export function glibcVersion(): string | undefined {
  const header = (process.report?.getReport() as {header?: {glibcVersionRuntime?: string}} | undefined)?.header
  return header?.glibcVersionRuntime
}

/** What icc needs on the platform whose Node.js this is (`process.arch`), from the connector catalog. */
export function iccSupportFor(arch: string = process.arch): IccSupport | undefined {
  return CONNECTORS.find((c) => c.icc.nodeArch === arch)?.icc
}

/** Is glibc `found` at least `needed` (both like "2.28")? */
export function glibcAtLeast(found: string, needed: string): boolean {
  return compareNumbers(found.split('.').map(Number), needed.split('.').map(Number)) >= 0
}
