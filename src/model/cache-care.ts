/**
 * Care of the conversion cache (./cache.ts): what each entry holds and when it was last used (`icc cache list`),
 * removing entries by age or count (`icc cache prune`), and the in-use records that keep a running `icc serve`'s
 * entries from being removed under it.
 *
 * Layout: `onnx/<key>.onnx` + `<key>.json` (./cache.ts), `onnx/<key>.use.json` (written here on every load: the
 * model's source, the time, the optimised model's key and the extracted archive it came from), `onnx-cpu/<okey>.*`
 * (./optimize.ts), `archives/<hash>/` (./artifact.ts) and `in-use/<pid>.json` (the keys a live process holds). An
 * extracted archive belongs to the entry converted from it and goes with it: a warm load of a `model.tar.gz` hashes
 * the extracted symbol and params to find the entry, so the folder is needed as long as the entry is. Optimised
 * models and extracted archives that no entry claims are entries of their own (kind `optimized` / `archive`).
 *
 * Each load also removes what it supersedes (`dropSuperseded`): the other entries converted from the same source
 * path (an older converter's key, the model before it was replaced there) and the entry's own optimised files from
 * an older ONNX Runtime or CPU, unless a running process holds them.
 */
import {readdir, readFile, rm, stat} from 'node:fs/promises'
import {basename, join, relative, sep} from 'node:path'

import {UsageError} from '../errors.js'
import {atomicWrite, CACHE} from './cache.js'
import {makeWritableDir} from './disk-errors.js'

export type CacheEntryKind = 'archive' | 'model' | 'optimized'

export interface CacheEntry {
  /** Total bytes of its files. */
  bytes: number
  /** Held by a running process (an `icc serve` runner): never pruned. */
  inUse: boolean
  key: string
  kind: CacheEntryKind
  /** ISO time of the last load (or, without a record, the newest file's mtime). */
  lastUse: string
  /** Files and folders, relative to the cache folder. */
  paths: string[]
  /** The model path that was loaded, when recorded. */
  source?: string
}

export interface CacheListing {
  cacheDir: string
  entries: CacheEntry[]
  totalBytes: number
}

interface UseRecord {
  archive?: string
  lastUse: string
  optimized?: string
  source: string
}

/**
 * Record a load of entry `key` (its source path, the optimised model's file and the archive folder it came from)
 * and remove what it supersedes (see `dropSuperseded`); returns the paths removed.
 */
export async function recordUse(
  cacheDir: string,
  key: string,
  use: {archiveDir?: string; optimizedPath?: string; source: string},
): Promise<string[]> {
  const archiveRel = use.archiveDir ? relative(join(cacheDir, 'archives'), use.archiveDir).split(sep)[0] : undefined
  const record: UseRecord = {
    archive: archiveRel && !archiveRel.startsWith('..') ? archiveRel : undefined,
    lastUse: new Date().toISOString(),
    optimized: use.optimizedPath ? basename(use.optimizedPath).slice(0, 64) : undefined,
    source: use.source,
  }
  const previous = await readUse(cacheDir, key)
  await atomicWrite(join(cacheDir, 'onnx', `${key}.use.json`), JSON.stringify(record))
  return dropSuperseded(cacheDir, key, record, previous)
}

async function readUse(cacheDir: string, key: string): Promise<undefined | UseRecord> {
  try {
    return JSON.parse(await readFile(join(cacheDir, 'onnx', `${key}.use.json`), 'utf8')) as UseRecord
  } catch {
    return undefined // never loaded since uses were recorded
  }
}

/**
 * Remove what the load of `key` (recorded as `record`) supersedes: the entries converted from the same source with
 * another key, and the optimised files `previous` named when they are not the ones now used; never an entry a
 * running process holds. Returns the paths removed, relative to the cache.
 */
async function dropSuperseded(
  cacheDir: string,
  key: string,
  record: UseRecord,
  previous: undefined | UseRecord,
): Promise<string[]> {
  const {keys: held} = await heldKeys(cacheDir)
  const onnxFiles = await list(join(cacheDir, 'onnx'))
  const cpuFiles = await list(join(cacheDir, 'onnx-cpu'))
  const removed: string[] = []
  const remove = async (rel: string) => {
    await rm(join(cacheDir, rel), {force: true, recursive: true})
    removed.push(rel)
  }

  const dropOptimized = async (prefix: string | undefined) => {
    if (!prefix || prefix === record.optimized) return
    for (const f of cpuFiles) if (f.startsWith(prefix)) await remove(join('onnx-cpu', f))
  }

  if (!held.has(key)) await dropOptimized(previous?.optimized)
  for (const other of new Set(onnxFiles.map((f) => f.split('.')[0]))) {
    if (other === key || held.has(other)) continue
    const use = await readUse(cacheDir, other)
    if (use?.source !== record.source) continue
    for (const f of onnxFiles.filter((x) => x.split('.')[0] === other)) await remove(join('onnx', f))
    await dropOptimized(use.optimized)
    if (use.archive && use.archive !== record.archive) await remove(join('archives', use.archive))
  }

  return removed
}

/** Mark the entries `keys` as held by this process until it exits (`<cache>/in-use/<pid>.json`). */
export async function holdEntries(cacheDir: string, keys: string[], pid = process.pid): Promise<string> {
  const path = join(cacheDir, 'in-use', `${pid}.json`)
  await makeWritableDir(join(cacheDir, 'in-use'), CACHE)
  await atomicWrite(path, JSON.stringify({keys, pid}))
  return path
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Keys held by live processes; the records of dead ones are listed in `stale`. */
async function heldKeys(cacheDir: string): Promise<{keys: Set<string>; stale: string[]}> {
  const dir = join(cacheDir, 'in-use')
  const keys = new Set<string>()
  const stale: string[] = []
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const pid = Number(name.replace(/\.json$/, ''))
    if (!name.endsWith('.json') || !Number.isInteger(pid)) continue
    if (!pidAlive(pid)) {
      stale.push(join(dir, name))
      continue
    }

    try {
      const doc = JSON.parse(await readFile(join(dir, name), 'utf8')) as {keys?: unknown}
      for (const k of Array.isArray(doc.keys) ? doc.keys : []) keys.add(String(k))
    } catch {
      // being written: its process is alive, and its keys are recorded again on its next load
    }
  }

  return {keys, stale}
}

/** Bytes and newest mtime of a file or folder (recursive). */
async function measure(path: string): Promise<{bytes: number; mtimeMs: number}> {
  const s = await stat(path)
  if (!s.isDirectory()) return {bytes: s.size, mtimeMs: s.mtimeMs}
  let bytes = 0
  let {mtimeMs} = s
  for (const name of await readdir(path)) {
    const m = await measure(join(path, name))
    bytes += m.bytes
    mtimeMs = Math.max(mtimeMs, m.mtimeMs)
  }

  return {bytes, mtimeMs}
}

const list = (dir: string) => readdir(dir).catch(() => [] as string[])

async function entryOf(
  cacheDir: string,
  init: {key: string; kind: CacheEntryKind; paths: string[]; use?: UseRecord},
  held: Set<string>,
): Promise<CacheEntry> {
  let bytes = 0
  let mtimeMs = 0
  for (const p of init.paths) {
    const m = await measure(join(cacheDir, p))
    bytes += m.bytes
    mtimeMs = Math.max(mtimeMs, m.mtimeMs)
  }

  return {
    bytes,
    inUse: held.has(init.key),
    key: init.key,
    kind: init.kind,
    lastUse: init.use?.lastUse ?? new Date(mtimeMs).toISOString(),
    paths: init.paths,
    source: init.use?.source,
  }
}

/** Every entry of the cache, most recently used first. */
export async function listCache(cacheDir: string): Promise<CacheListing> {
  const {keys: held} = await heldKeys(cacheDir)
  const onnxFiles = await list(join(cacheDir, 'onnx'))
  const cpuFiles = await list(join(cacheDir, 'onnx-cpu'))
  const archives = new Set(await list(join(cacheDir, 'archives')))
  const claimedCpu = new Set<string>()
  const entries: CacheEntry[] = []
  const modelKeys = new Set(onnxFiles.map((f) => f.split('.')[0]))
  for (const key of modelKeys) {
    const use = await readUse(cacheDir, key)
    const paths = onnxFiles.filter((f) => f.split('.')[0] === key).map((f) => join('onnx', f))
    if (use?.optimized) {
      for (const f of cpuFiles) if (f.startsWith(use.optimized)) claimedCpu.add(f)
      paths.push(...cpuFiles.filter((f) => f.startsWith(use.optimized!)).map((f) => join('onnx-cpu', f)))
    }

    if (use?.archive && archives.delete(use.archive)) paths.push(join('archives', use.archive))
    entries.push(await entryOf(cacheDir, {key, kind: 'model', paths, use}, held))
  }

  const orphanCpu = new Map<string, string[]>()
  for (const f of cpuFiles.filter((x) => !claimedCpu.has(x))) {
    const k = f.split('.')[0]
    orphanCpu.set(k, [...(orphanCpu.get(k) ?? []), join('onnx-cpu', f)])
  }

  for (const [key, paths] of orphanCpu) entries.push(await entryOf(cacheDir, {key, kind: 'optimized', paths}, held))
  for (const a of archives) {
    entries.push(await entryOf(cacheDir, {key: a, kind: 'archive', paths: [join('archives', a)]}, held))
  }

  entries.sort((a, b) => b.lastUse.localeCompare(a.lastUse))
  return {cacheDir, entries, totalBytes: entries.reduce((n, e) => n + e.bytes, 0)}
}

/** `30d`, `12h`, `45m`, `90s`, `2w` as milliseconds. */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$/i.exec(text)
  if (!m) {
    throw new UsageError('BAD_DURATION', `--older-than takes a number and a unit (s, m, h, d, w), got "${text}"`, {
      suggestions: ['For example: --older-than 30d (thirty days) or --older-than 12h.'],
    })
  }

  const unit = {d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, w: 604_800_000}[m[2].toLowerCase() as 'd']
  return Number(m[1]) * unit
}

export interface PruneOptions {
  all?: boolean
  cacheDir: string
  dryRun?: boolean
  /** Keep this many most recently used entries. */
  keep?: number
  /** Remove entries last used longer ago than this (e.g. `30d`). */
  olderThan?: string
  now?: number
}

export interface PruneResult {
  cacheDir: string
  dryRun: boolean
  freedBytes: number
  kept: CacheEntry[]
  removed: CacheEntry[]
}

/**
 * Remove the entries that every given criterion selects (`all`; last used before `olderThan`; beyond the `keep`
 * most recently used), except those held by a running process; with `dryRun`, only say which.
 */
export async function pruneCache(options: PruneOptions): Promise<PruneResult> {
  if (!options.all && options.olderThan === undefined && options.keep === undefined) {
    throw new UsageError('NOTHING_TO_PRUNE', 'Say which entries to remove: --all, --older-than or --keep', {
      suggestions: ['icc cache prune --older-than 30d --dry-run shows what would go.'],
    })
  }

  const cutoff =
    options.olderThan === undefined ? undefined : (options.now ?? Date.now()) - parseDuration(options.olderThan)
  const {entries} = await listCache(options.cacheDir)
  const removed: CacheEntry[] = []
  const kept: CacheEntry[] = []
  for (const [rank, e] of entries.entries()) {
    const selected =
      (cutoff === undefined || Date.parse(e.lastUse) < cutoff) && (options.keep === undefined || rank >= options.keep)
    ;(selected && !e.inUse ? removed : kept).push(e)
  }

  if (!options.dryRun) {
    for (const e of removed)
      for (const p of e.paths) await rm(join(options.cacheDir, p), {force: true, recursive: true})
    for (const s of (await heldKeys(options.cacheDir)).stale) await rm(s, {force: true})
  }

  const freedBytes = removed.reduce((n, e) => n + e.bytes, 0)
  return {cacheDir: options.cacheDir, dryRun: Boolean(options.dryRun), freedBytes, kept, removed}
}
