/**
 * Hardened extraction of model archives (`model.tar.gz` from a SageMaker training job, or a plain `.tar`).
 *
 * A model archive comes from S3 or a user and is not trusted. `extractArchive` streams it once through node-tar
 * (gunzip + tar parser in strict mode) and checks every entry *before* anything is written:
 *
 * - only regular files and directories are allowed; **every link is refused** (symbolic and hard, wherever it
 *   points: a model never needs one), as are devices, FIFOs and unknown entry types -> `UNSAFE_ARCHIVE`;
 * - paths must be relative and free of `..` segments (absolute paths, `C:\`, `\\`, NUL bytes refused) ->
 *   `UNSAFE_ARCHIVE`;
 * - the sizes declared by the headers are added up as they come and the extraction stops as soon as they pass
 *   `maxTotalBytes` (default 4 GiB) or one entry too many passes `maxEntries` (default 10 000) ->
 *   `ARCHIVE_TOO_LARGE`; node-tar also refuses a decompression ratio above its bomb limit;
 * - a gzip stream that is truncated or corrupt, a tar that ends inside an entry, or bytes that are neither gzip
 *   nor tar -> `CORRUPT_ARCHIVE`. A missing or unreadable file -> `ARCHIVE_NOT_FOUND`.
 *
 * Files get plain modes (0644, or 0755 when the archive marked them executable; directories 0755) and owners are
 * never restored. The archive is extracted into a temporary directory beside `destDir`, which replaces
 * `destDir` by rename only once everything is written and checked: on any error the old content of `destDir`
 * is untouched and nothing partial is left behind.
 *
 * `createArchive(dir, outFile)` writes a `.tar.gz` of a directory's content (for tests and tools).
 */
import {randomBytes} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {lstat, open, readdir, rename, rm} from 'node:fs/promises'
import {basename, dirname, join, resolve} from 'node:path'
import * as tar from 'tar'

import {ModelError} from '../errors.js'
import {diskError, makeWritableDir} from './disk-errors.js'

export interface ExtractLimits {
  /** Refuse archives holding more than this many entries (default 10 000). */
  maxEntries?: number
  /** Refuse archives whose files add up to more than this many bytes (default 4 GiB). */
  maxTotalBytes?: number
}

export interface ExtractResult {
  /** Regular files extracted, relative to the destination, with `/` separators, sorted. */
  files: string[]
  /** Sum of the sizes of the files extracted. */
  totalBytes: number
}

export const DEFAULT_EXTRACT_LIMITS: Required<ExtractLimits> = {maxEntries: 10_000, maxTotalBytes: 4 * 1024 ** 3}

/** What extracting writes, as error messages name it. */
const WHAT = 'the extracted model archive'

/** Entry types a model archive may hold. */
const ALLOWED_TYPES = new Set(['ContiguousFile', 'Directory', 'File', 'OldFile'])

/**
 * Extract `archivePath` into `destDir` (replacing its content atomically), refusing anything unsafe.
 * @throws ModelError ARCHIVE_NOT_FOUND, CORRUPT_ARCHIVE, UNSAFE_ARCHIVE, ARCHIVE_TOO_LARGE
 */
export async function extractArchive(
  archivePath: string,
  destDir: string,
  limits: ExtractLimits = {},
): Promise<ExtractResult> {
  const maxEntries = limits.maxEntries ?? DEFAULT_EXTRACT_LIMITS.maxEntries
  const maxTotalBytes = limits.maxTotalBytes ?? DEFAULT_EXTRACT_LIMITS.maxTotalBytes
  await checkMagic(archivePath)

  const dest = resolve(destDir)
  await makeWritableDir(dirname(dest), WHAT)
  const token = `${process.pid}-${randomBytes(4).toString('hex')}`
  const staging = join(dirname(dest), `.${basename(dest)}.extract-${token}`)
  await makeWritableDir(staging, WHAT)
  try {
    await unpackInto(archivePath, staging, maxEntries, maxTotalBytes).catch(async (error: unknown) => {
      // a full or read-only disk is not the archive's fault: say so, and where
      throw (
        (await diskError(error, dirname(dest), WHAT)) ??
        (error instanceof ModelError ? error : corrupt(archivePath, error))
      )
    })
    const result = await listTree(staging, archivePath)
    await swapInto(staging, dest, token)
    return result
  } catch (error) {
    await removeQuietly(staging)
    throw error
  }
}

/** Write a gzip-compressed tar of the content of `dir` (entries relative to `dir`, sorted) to `outFile`. */
export async function createArchive(dir: string, outFile: string): Promise<void> {
  const entries = (await readdir(dir)).sort()
  await tar.c({cwd: dir, file: outFile, gzip: true, portable: true}, entries)
}

async function checkMagic(archivePath: string): Promise<void> {
  let head: Buffer
  try {
    const handle = await open(archivePath, 'r')
    try {
      head = Buffer.alloc(512)
      const {bytesRead} = await handle.read(head, 0, 512, 0)
      head = head.subarray(0, bytesRead)
    } finally {
      await handle.close()
    }
  } catch (error) {
    throw new ModelError('ARCHIVE_NOT_FOUND', `Cannot read the model archive ${archivePath}: ${errorText(error)}.`, {
      cause: error,
    })
  }

  const gzip = head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b
  const plainTar = head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar'
  if (!gzip && !plainTar) {
    throw new ModelError(
      'CORRUPT_ARCHIVE',
      `${archivePath} is not a gzip-compressed tar archive (${head.length === 0 ? 'the file is empty' : `it starts with ${head.subarray(0, 8).toString('hex')}`}).`,
      {suggestions: ['Give the model.tar.gz written by the SageMaker training job, or the folder it unpacks to.']},
    )
  }
}

function unpackInto(archivePath: string, staging: string, maxEntries: number, maxTotalBytes: number): Promise<void> {
  let violation: ModelError | undefined
  let entries = 0
  let declared = 0
  const kinds = new Map<string, 'file' | 'folder'>()
  return new Promise<void>((resolvePromise, reject) => {
    let settled = false
    const fail = (error: unknown) => {
      if (settled) return
      settled = true
      input.destroy()
      reject(violation ?? error)
    }

    const unpack = new tar.Unpack({
      cwd: staging,
      filter(path, entry) {
        if (violation) return false
        violation =
          checkEntry(archivePath, path, entry as tar.ReadEntry, ++entries, maxEntries) ??
          checkLayout(archivePath, path, (entry as tar.ReadEntry).type === 'Directory' ? 'folder' : 'file', kinds)
        if (!violation) {
          const size = (entry as tar.ReadEntry).size ?? 0
          declared += size
          if (declared > maxTotalBytes) {
            violation = new ModelError(
              'ARCHIVE_TOO_LARGE',
              `${archivePath}: entry "${path}" declares ${size} bytes, bringing the files to ${declared} bytes, more than the limit of ${maxTotalBytes} bytes.`,
              {details: {declaredBytes: declared, entry: path, entryBytes: size, maxTotalBytes}},
            )
          }
        }

        if (violation) {
          unpack.abort(violation)
          return false
        }

        const readEntry = entry as tar.ReadEntry
        readEntry.mode = readEntry.type === 'Directory' || (readEntry.mode ?? 0) & 0o111 ? 0o755 : 0o644
        return true
      },
      preserveOwner: false,
      strict: true,
    })
    const input = createReadStream(archivePath)
    input.on('error', fail)
    unpack.on('error', fail)
    unpack.on('close', () => {
      if (settled) return
      settled = true
      if (violation) reject(violation)
      else resolvePromise()
    })
    input.pipe(unpack as unknown as NodeJS.WritableStream)
  })
}

function checkEntry(
  archivePath: string,
  path: string,
  entry: tar.ReadEntry,
  count: number,
  maxEntries: number,
): ModelError | undefined {
  const unsafe = (why: string) =>
    new ModelError('UNSAFE_ARCHIVE', `${archivePath}: entry "${path}" ${why}; the archive was not extracted.`, {
      details: {entry: path, type: entry.type},
      suggestions: ['Re-create the archive with only the model files (symbol JSON, params, model-shapes.json).'],
    })
  if (count > maxEntries) {
    return new ModelError(
      'ARCHIVE_TOO_LARGE',
      `${archivePath} holds more than ${maxEntries} entries; a model archive needs a handful.`,
      {details: {maxEntries}},
    )
  }

  if (entry.type === 'SymbolicLink' || entry.type === 'Link') {
    const kind = entry.type === 'Link' ? 'a hard link' : 'a symbolic link'
    return unsafe(`is ${kind} to "${entry.linkpath ?? ''}" (links are never extracted)`)
  }

  if (!ALLOWED_TYPES.has(entry.type)) return unsafe(`is a ${entry.type} entry (only files and folders are allowed)`)
  if (path.includes('\0')) return unsafe('has a NUL byte in its name')
  if (path.startsWith('/') || path.startsWith('\\') || /^[a-z]:/i.test(path)) return unsafe('has an absolute path')
  if (path.split(/[/\\]/).includes('..')) return unsafe('has a ".." path component (path traversal)')
  return undefined
}

/**
 * A file and a folder of the same name (a file "a" then "a/b", or a folder "a" then a file "a"): a tar that
 * cannot be written out, refused by name before anything is replaced (node-tar would fail with `EEXIST` or
 * `ENOTEMPTY`, or silently replace one by the other). `kinds` records what each path and its parents are.
 */
function checkLayout(
  archivePath: string,
  path: string,
  kind: 'file' | 'folder',
  kinds: Map<string, 'file' | 'folder'>,
): ModelError | undefined {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.')
  for (let i = 1; i <= parts.length; i++) {
    const at = parts.slice(0, i).join('/')
    const want = i === parts.length ? kind : 'folder'
    const had = kinds.get(at)
    if (had && had !== want) {
      return new ModelError(
        'CORRUPT_ARCHIVE',
        `${archivePath} is corrupt: "${at}" is both a file and a folder (entry "${path}" makes it a ${want}, an earlier entry a ${had}); the archive was not extracted.`,
        {
          details: {entry: path, path: at},
          suggestions: ['Re-create the archive from the model folder (tar czf model.tar.gz -C folder .).'],
        },
      )
    }

    kinds.set(at, want)
  }

  return undefined
}

/** Walk the staging tree: only files and directories may be there; list files and add up their sizes. */
async function listTree(root: string, archivePath: string): Promise<ExtractResult> {
  const files: string[] = []
  let totalBytes = 0
  const walk = async (dir: string, prefix: string): Promise<void> => {
    for (const name of await readdir(dir)) {
      const full = join(dir, name)
      const rel = prefix ? `${prefix}/${name}` : name

      const stat = await lstat(full)
      if (stat.isDirectory()) {
        await walk(full, rel)
      } else if (stat.isFile()) {
        files.push(rel)
        totalBytes += stat.size
      } else {
        throw new ModelError('UNSAFE_ARCHIVE', `${archivePath}: "${rel}" is not a regular file after extraction.`)
      }
    }
  }

  await walk(root, '')
  files.sort()
  return {files, totalBytes}
}

/** Replace `dest` by `staging`: the old content goes away only once the new one is in place. */
async function swapInto(staging: string, dest: string, token: string): Promise<void> {
  const old = join(dirname(dest), `.${basename(dest)}.old-${token}`)
  let moved = false
  try {
    await rename(dest, old)
    moved = true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }

  try {
    await rename(staging, dest)
  } catch (error) {
    if (moved) await rename(old, dest)
    throw error
  }

  if (moved) await removeQuietly(old)
}

async function removeQuietly(path: string): Promise<void> {
  await rm(path, {force: true, maxRetries: 3, recursive: true}).catch(() => {})
  // node-tar may still be finishing a file write started before the error: sweep once more.
  await new Promise((r) => {
    setTimeout(r, 50)
  })
  await rm(path, {force: true, maxRetries: 3, recursive: true}).catch(() => {})
}

function corrupt(archivePath: string, error: unknown): ModelError {
  const text = errorText(error)
  const why = /unexpected end of file/i.test(text)
    ? 'the gzip stream is truncated'
    : /truncated input/i.test(text)
      ? 'the tar data ends inside an entry (the file is truncated)'
      : text
  return new ModelError('CORRUPT_ARCHIVE', `${archivePath} is truncated or corrupt: ${why}.`, {
    cause: error,
    details: {tarCode: (error as {tarCode?: string}).tarCode},
    suggestions: ['Download the model archive again (check its size against the one in S3).'],
  })
}

function errorText(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/\.$/, '')
}
