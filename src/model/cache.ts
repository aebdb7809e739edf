/**
 * On-disk cache of converted ONNX models, keyed by a SHA-256 of the MXNet symbol + params bytes, the input shape
 * and the converter version. Each entry is `<key>.onnx` plus a `<key>.json` sidecar holding the ONNX file's length
 * and SHA-256; an entry whose file does not match its sidecar is rebuilt, never trusted. Writes are atomic
 * (temporary file + rename), so a crash mid-write leaves no half-written entry behind.
 */
import {createHash, randomBytes} from 'node:crypto'
import {mkdir, readFile, rename, rm, writeFile} from 'node:fs/promises'
import {homedir} from 'node:os'
import {join} from 'node:path'

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

/** Write a file atomically: a temporary file in the same directory, then rename. */
export async function atomicWrite(path: string, data: string | Uint8Array): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  try {
    await writeFile(temp, data)
    await rename(temp, path)
  } catch (error) {
    await rm(temp, {force: true})
    throw error
  }
}

interface Sidecar {
  converterVersion: string
  length: number
  sha256: string
}

export interface CacheResult {
  /** True when a valid entry was found and nothing was converted. */
  fromCache: boolean
  path: string
  /** Why an existing entry was rebuilt, if it was. */
  rebuilt?: string
}

/** Return the cached ONNX file for `key`, building (and storing) it with `build` when absent or corrupt. */
export async function cachedOnnx(
  cacheDir: string,
  key: string,
  converterVersion: string,
  build: () => Promise<Uint8Array> | Uint8Array,
): Promise<CacheResult> {
  const dir = join(cacheDir, 'onnx')
  const path = join(dir, `${key}.onnx`)
  const sidecarPath = join(dir, `${key}.json`)
  let rebuilt: string | undefined
  try {
    const side = JSON.parse(await readFile(sidecarPath, 'utf8')) as Sidecar
    const bytes = await readFile(path)
    if (side.converterVersion !== converterVersion) rebuilt = 'converter version changed'
    else if (bytes.length !== side.length) rebuilt = `length ${bytes.length} != recorded ${side.length}`
    else if (sha256(bytes) !== side.sha256) rebuilt = 'checksum mismatch'
    else return {fromCache: true, path}
  } catch (error) {
    const {code} = error as NodeJS.ErrnoException
    if (code !== 'ENOENT') rebuilt = `unreadable entry (${(error as Error).message})`
  }

  const bytes = await build()
  await mkdir(dir, {recursive: true})
  await atomicWrite(path, bytes)
  const side: Sidecar = {converterVersion, length: bytes.length, sha256: sha256(bytes)}
  await atomicWrite(sidecarPath, JSON.stringify(side))
  return {fromCache: false, path, rebuilt}
}
