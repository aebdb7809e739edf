/**
 * Find shared libraries the way the dynamic linker would, and check their symbol versions against the
 * connector's library tables (`src/connector/catalog.ts`).
 *
 * Search order for a soname: extra directories given by the caller (`icc doctor --lib-dir`), `LD_LIBRARY_PATH`,
 * the ldconfig cache (`ldconfig -p`), then the standard directories (`/lib`, `/usr/lib`, the multiarch directories
 * such as `/lib/x86_64-linux-gnu` or `/usr/lib/aarch64-linux-gnu`, `/usr/local/lib`, CUDA's `lib64`). A candidate
 * whose ELF machine does not match the platform (an i386 `libc.so.6` on x86_64) is skipped and reported.
 * The library's `.gnu.version_d` is read with the ELF reader (`elf.ts`) and compared per family (`versions.ts`).
 *
 * For binaries, `checkBinary` resolves their DT_NEEDED libraries with `ldd` and checks that every version in
 * their `.gnu.version_r` is defined by the library that will be loaded.
 */
import {access, constants} from 'node:fs/promises'
import {join} from 'node:path'

import type {PlatformId, RequiredLibrary} from '../connector/catalog.js'

import {run} from '../system.js'
import {type ElfInfo, readElf} from './elf.js'
import {satisfiesVersion, sortVersionNames, type VersionRequirementResult} from './versions.js'

/** ELF e_machine of each platform's libraries. */
export const PLATFORM_MACHINES: Record<PlatformId, {bits: 32 | 64; machine: number; triplet: string}> = {
  armv7: {bits: 32, machine: 40, triplet: 'arm-linux-gnueabihf'},
  jtx2: {bits: 64, machine: 183, triplet: 'aarch64-linux-gnu'},
  x86_64: {bits: 64, machine: 62, triplet: 'x86_64-linux-gnu'},
}

export interface LibrarySearchOptions {
  /** Directories searched first (e.g. a fixture directory in tests, or `icc doctor --lib-dir`). */
  extraDirs?: string[]
  /** `LD_LIBRARY_PATH` value (default: the process's). */
  ldLibraryPath?: string
  /** Read the ldconfig cache (default true; false when a root override is used). */
  ldconfig?: boolean
  /** The platform whose ELF machine and multiarch directories to use (default: any machine). */
  platform?: PlatformId
  /** Root the standard directories are looked up under (default `/`). */
  root?: string
  /** Search the standard directories (default true). */
  standardDirs?: boolean
}

export type LibrarySource = 'extra-dir' | 'LD_LIBRARY_PATH' | 'ldconfig' | 'standard-dir'

export interface SkippedCandidate {
  path: string
  reason: string
}

export interface FoundLibrary {
  elf: ElfInfo
  path: string
  source: LibrarySource
}

export interface LibrarySearchResult {
  found?: FoundLibrary
  /** Directories looked in (in order), for the evidence of a missing library. */
  searched: string[]
  skipped: SkippedCandidate[]
  soname: string
}

/** Parse `ldconfig -p` output into soname -> paths (in cache order). */
export function parseLdconfigCache(text: string): Map<string, {flags: string; path: string}[]> {
  const map = new Map<string, {flags: string; path: string}[]>()
  for (const line of text.split('\n')) {
    const m = /^\s+(\S+)\s+\(([^)]*)\)\s+=>\s+(.+)$/.exec(line)
    if (!m) continue
    const list = map.get(m[1]) ?? []
    list.push({flags: m[2], path: m[3].trim()})
    map.set(m[1], list)
  }

  return map
}

let ldconfigCache: Promise<Map<string, {flags: string; path: string}[]>> | undefined

/** The ldconfig cache of this machine (empty when ldconfig is not available). Computed once per process. */
export async function readLdconfigCache(): Promise<Map<string, {flags: string; path: string}[]>> {
  ldconfigCache ??= (async () => {
    for (const file of ['ldconfig', '/sbin/ldconfig', '/usr/sbin/ldconfig']) {
      try {
        const r = await run(file, ['-p'], {timeoutMs: 20_000})
        if (r.exitCode === 0) return parseLdconfigCache(r.stdout)
      } catch {
        // not found there: try the next location
      }
    }

    return new Map()
  })()
  return ldconfigCache
}

/** The standard library directories for a platform (or all platforms' multiarch directories). */
export function standardLibraryDirs(platform?: PlatformId): string[] {
  const triplets = platform
    ? [PLATFORM_MACHINES[platform].triplet]
    : Object.values(PLATFORM_MACHINES).map((m) => m.triplet)
  const dirs: string[] = []
  for (const t of triplets) dirs.push(`/lib/${t}`, `/usr/lib/${t}`)
  dirs.push('/lib64', '/usr/lib64', '/lib', '/usr/lib', '/usr/local/lib')
  if (!platform || platform === 'jtx2') {
    dirs.push('/usr/lib/aarch64-linux-gnu/tegra', '/usr/local/cuda-9.0/lib64', '/usr/local/cuda/lib64')
  } else if (platform === 'x86_64') {
    dirs.push('/usr/local/cuda/lib64')
  }

  return dirs
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, constants.R_OK)
    return true
  } catch {
    return false
  }
}

/** Look for one soname. */
export async function findLibrary(soname: string, options: LibrarySearchOptions = {}): Promise<LibrarySearchResult> {
  const root = options.root ?? '/'
  const want = options.platform ? PLATFORM_MACHINES[options.platform] : undefined
  const result: LibrarySearchResult = {searched: [], skipped: [], soname}
  const seen = new Set<string>()

  const candidates: {path: string; source: LibrarySource}[] = []
  for (const d of options.extraDirs ?? []) candidates.push({path: join(d, soname), source: 'extra-dir'})
  const ldPath = options.ldLibraryPath ?? process.env.LD_LIBRARY_PATH ?? ''
  for (const d of ldPath.split(':').filter(Boolean)) {
    candidates.push({path: join(d, soname), source: 'LD_LIBRARY_PATH'})
  }

  if (options.ldconfig ?? root === '/') {
    const cache = await readLdconfigCache()
    for (const entry of cache.get(soname) ?? []) candidates.push({path: entry.path, source: 'ldconfig'})
  }

  if (options.standardDirs ?? true) {
    for (const d of standardLibraryDirs(options.platform)) {
      candidates.push({path: join(root, d, soname), source: 'standard-dir'})
    }
  }

  for (const c of candidates) {
    if (seen.has(c.path)) continue
    seen.add(c.path)
    if (c.source !== 'ldconfig') result.searched.push(c.path.slice(0, -soname.length - 1) || '/')
    if (!(await exists(c.path))) continue
    let elf: ElfInfo
    try {
      elf = await readElf(c.path)
    } catch (error) {
      result.skipped.push({path: c.path, reason: (error as Error).message})
      continue
    }

    if (want && (elf.machine !== want.machine || elf.bits !== want.bits)) {
      result.skipped.push({
        path: c.path,
        reason: `built for ${elf.machineName ?? `machine ${elf.machine}`} (${elf.bits}-bit), not ${options.platform}`,
      })
      continue
    }

    result.found = {elf, path: c.path, source: c.source}
    return result
  }

  return result
}

export interface LibraryCheck {
  /** Every version the library defines (sorted), when found. */
  defined?: string[]
  ok: boolean
  path?: string
  requirements: VersionRequirementResult[]
  searched: string[]
  skipped: SkippedCandidate[]
  soname: string
  source?: LibrarySource
  /** The library's own DT_SONAME, when it has one. */
  elfSoname?: string
}

/** Find a library of a connector's table and check that it reaches its minimum versions. */
export async function checkLibrary(
  required: RequiredLibrary,
  options: LibrarySearchOptions = {},
): Promise<LibraryCheck> {
  const r = await findLibrary(required.soname, options)
  if (!r.found) {
    return {
      ok: false,
      requirements: required.minimumVersions.map((v) => ({ok: false, required: v})),
      searched: r.searched,
      skipped: r.skipped,
      soname: required.soname,
    }
  }

  const defined = sortVersionNames(r.found.elf.versionDefinitions)
  const requirements = required.minimumVersions.map((v) => satisfiesVersion(defined, v))
  return {
    defined,
    elfSoname: r.found.elf.soname,
    ok: requirements.every((q) => q.ok),
    path: r.found.path,
    requirements,
    searched: r.searched,
    skipped: r.skipped,
    soname: required.soname,
    source: r.found.source,
  }
}

/** Parse `ldd` output: soname -> resolved path (undefined for "not found"). */
export function parseLddOutput(text: string): Map<string, string | undefined> {
  const map = new Map<string, string | undefined>()
  for (const line of text.split('\n')) {
    const notFound = /^\s*(\S+)\s+=>\s+not found/.exec(line)
    if (notFound) {
      map.set(notFound[1], undefined)
      continue
    }

    const m = /^\s*(\S+)\s+=>\s+(\/\S+)\s+\(0x[0-9a-f]+\)/i.exec(line)
    if (m) map.set(m[1], m[2])
    else {
      const direct = /^\s*(\/\S+)\s+\(0x[0-9a-f]+\)/i.exec(line) // the interpreter: /lib64/ld-linux-x86-64.so.2
      if (direct) map.set(direct[1].split('/').pop()!, direct[1])
    }
  }

  return map
}

export interface BinaryNeedCheck {
  /** The versions that the resolved library lacks. */
  missing: string[]
  ok: boolean
  path?: string
  soname: string
  versions: string[]
}

export interface BinaryCheck {
  binary: string
  needs: BinaryNeedCheck[]
  ok: boolean
  /** DT_NEEDED libraries that ldd could not resolve. */
  unresolved: string[]
}

/**
 * Check a binary or shared object against the libraries this system would load for it: `ldd` resolves each
 * DT_NEEDED soname, and every version in the binary's `.gnu.version_r` must be defined by the resolved library.
 */
export async function checkBinary(binary: string, options: {env?: Record<string, string>} = {}): Promise<BinaryCheck> {
  const elf = await readElf(binary)
  const ldd = await run('ldd', [binary], {env: options.env, timeoutMs: 30_000})
  const resolved = parseLddOutput(ldd.stdout)
  const unresolved = elf.needed.filter((n) => resolved.get(n) === undefined)
  const needs: BinaryNeedCheck[] = []
  for (const need of elf.versionNeeds) {
    const path = resolved.get(need.file)
    if (!path) {
      needs.push({missing: need.versions, ok: false, soname: need.file, versions: need.versions})
      continue
    }

    const lib = await readElf(path)
    const missing = need.versions.filter((v) => !lib.versionDefinitions.includes(v))
    needs.push({missing, ok: missing.length === 0, path, soname: need.file, versions: need.versions})
  }

  return {binary, needs, ok: unresolved.length === 0 && needs.every((n) => n.ok), unresolved}
}
