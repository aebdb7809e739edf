/**
 * On-disk cache of converted ONNX models, keyed by a SHA-256 of the MXNet symbol + params bytes, the input shape
 * and the converter version. Each entry is `<key>.onnx` plus a `<key>.json` sidecar holding the ONNX file's length
 * and SHA-256 (plus the model's metadata: input shape, classes, summary); an entry whose file does not match its
 * sidecar is rebuilt, never trusted. Checking an entry streams the file through the hash, so a warm load never holds
 * the model's bytes in memory (the ONNX Runtime session is then the only copy); a new entry is written by its
 * builder straight to a file (streamed, ./onnx-export/ writeOnnx), never held whole. Writes are atomic (temporary
 * file + rename), so a crash mid-write leaves no half-written entry behind.
 */
import {createHash, randomBytes} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {readFile, rename, rm, stat, writeFile} from 'node:fs/promises'
import {homedir} from 'node:os'
import {dirname, join} from 'node:path'

import {type DiskAdvice, diskError, makeWritableDir} from './disk-errors.js'

/** `$ICC_CACHE_DIR`, else `$XDG_CACHE_HOME/icc`, else `~/.cache/icc`. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.ICC_CACHE_DIR) return env.ICC_CACHE_DIR
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'icc')
  return join(homedir(), '.cache', 'icc')
}

export function sha256(...parts: (string | Uint8Array)[]): string {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return h.digest('hex')
}

/** SHA-256 of the concatenated contents of files, streamed (constant memory). */
export async function sha256Files(...paths: string[]): Promise<string> {
  const h = createHash('sha256')
  for (const path of paths) {
    for await (const chunk of createReadStream(path, {highWaterMark: 1 << 20})) h.update(chunk as Buffer)
  }

  return h.digest('hex')
}

/** What writes to the cache are, as error messages name them. */
export const CACHE = 'the conversion cache'

/** Write a file atomically: a temporary file in the same directory, then rename. */
export async function atomicWrite(path: string, data: string | Uint8Array): Promise<void> {
  await atomicWriteWith(path, (temp) => writeFile(temp, data))
}

/**
 * Have `write` fill a temporary file in the same directory as `path`, then rename it to `path`; a disk's error
 * says it was writing `what` (default: the cache) with `advice`.
 */
export async function atomicWriteWith<T>(
  path: string,
  write: (temp: string) => Promise<T>,
  as?: {advice?: DiskAdvice; what: string},
): Promise<T> {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  try {
    const r = await write(temp)
    await rename(temp, path)
    return r
  } catch (error) {
    await rm(temp, {force: true})
    throw (await diskError(error, dirname(path), as?.what ?? CACHE, as?.advice)) ?? error
  }
}

interface Sidecar<M> {
  converterVersion: string
  length: number
  meta?: M
  sha256: string
}

export interface CacheResult<M> {
  /** True when a valid entry was found and nothing was converted. */
  fromCache: boolean
  /** The metadata stored with the entry (or just built). */
  meta: M
  path: string
  /** Why an existing entry was rebuilt, if it was. */
  rebuilt?: string
}

/**
 * Return the cached ONNX file for `key` and its metadata, building (and storing) both with `build` when the entry
 * is absent, corrupt, or written by another converter version: `build` writes the ONNX file at the path it is given
 * and returns the metadata.
 */
export async function cachedOnnx<M>(
  cacheDir: string,
  key: string,
  converterVersion: string,
  build: (path: string) => Promise<M>,
): Promise<CacheResult<M>> {
  const dir = join(cacheDir, 'onnx')
  const path = join(dir, `${key}.onnx`)
  const sidecarPath = join(dir, `${key}.json`)
  let rebuilt: string | undefined
  try {
    const side = JSON.parse(await readFile(sidecarPath, 'utf8')) as Sidecar<M>
    const {size} = await stat(path)
    if (side.converterVersion !== converterVersion) rebuilt = 'converter version changed'
    else if (side.meta === undefined) rebuilt = 'no metadata recorded'
    else if (size !== side.length) rebuilt = `length ${size} != recorded ${side.length}`
    else if ((await sha256Files(path)) !== side.sha256) rebuilt = 'checksum mismatch'
    else return {fromCache: true, meta: side.meta, path}
  } catch (error) {
    const {code} = error as NodeJS.ErrnoException
    if (code !== 'ENOENT') rebuilt = `unreadable entry (${(error as Error).message})`
  }

  await makeWritableDir(dir, CACHE)
  const meta = await atomicWriteWith(path, build)
  const side: Sidecar<M> = {converterVersion, length: (await stat(path)).size, meta, sha256: await sha256Files(path)}
  await atomicWrite(sidecarPath, JSON.stringify(side))
  return {fromCache: false, meta, path, rebuilt}
}
