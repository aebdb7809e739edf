/**
 * What a failed write to icc's own folders says (the conversion cache, an archive being extracted): a full disk
 * is "no space left" and where, a read-only or foreign folder says so, instead of the system's `ENOSPC write`,
 * `ENOENT mkdir` (what node's recursive mkdir answers on a read-only file system) or a `CORRUPT_ARCHIVE` that asks
 * for the download again. `makeWritableDir` creates a folder and explains why it cannot; `diskError` turns an errno
 * from a write into that explanation (undefined for anything else).
 */
import {constants} from 'node:fs'
import {access, mkdir, stat, statfs} from 'node:fs/promises'
import {dirname, resolve} from 'node:path'

import {formatBytes} from '../aws/progress.js'
import {IccError, UsageError} from '../errors.js'

const NO_SPACE = new Set(['EDQUOT', 'ENOSPC'])
const NOT_WRITABLE = new Set(['EACCES', 'ENOENT', 'EPERM', 'EROFS'])

/** Create `dir` (and its parents) for `what` (e.g. "the conversion cache"), or say why it cannot be written. */
export async function makeWritableDir(dir: string, what: string): Promise<void> {
  try {
    await mkdir(dir, {mode: 0o755, recursive: true})
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? ''
    if (NO_SPACE.has(code)) throw await noSpace(error, dir, what)
    if (NOT_WRITABLE.has(code)) throw await notWritable(error, dir, what)
    throw error
  }
}

/** The error a write under `dir` for `what` failed with, in icc's words; undefined when it is not a disk's fault. */
export async function diskError(error: unknown, dir: string, what: string): Promise<IccError | undefined> {
  const code = (error as NodeJS.ErrnoException | undefined)?.code ?? ''
  if (NO_SPACE.has(code)) return noSpace(error, dir, what)
  if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') return notWritable(error, dir, what)
  return undefined
}

async function noSpace(error: unknown, dir: string, what: string): Promise<IccError> {
  const where = await existingAncestor(dir)
  const free = await statfs(where).then(
    (s) => s.bavail * s.bsize,
    () => undefined,
  )
  const quota = (error as NodeJS.ErrnoException).code === 'EDQUOT'
  return new IccError(
    'NO_SPACE',
    `No space left on the disk holding ${dir} (${what})${quota ? ': the disk quota is used up' : ''}${free === undefined ? '' : `; ${formatBytes(free)} free there`}. Nothing was kept of the unfinished write.`,
    {
      cause: error,
      details: {dir, freeBytes: free, what},
      suggestions: [
        'Free space there (`icc cache prune --older-than 30d` removes old conversions), or point ICC_CACHE_DIR at a disk with room.',
      ],
    },
  )
}

async function notWritable(error: unknown, dir: string, what: string): Promise<IccError> {
  const where = await existingAncestor(dir)
  const why = await access(where, constants.W_OK).then(
    () => `cannot be written (${(error as Error).message})`,
    (error_: NodeJS.ErrnoException) =>
      error_.code === 'EROFS' ? 'is on a read-only file system' : 'is not writable by this user',
  )
  const subject = where === resolve(dir) ? 'the folder' : `${where}, the nearest folder that exists,`
  return new UsageError('CACHE_NOT_WRITABLE', `Cannot write ${what} at ${dir}: ${subject} ${why}.`, {
    cause: error,
    details: {dir, existing: where, what},
    suggestions: ['Set ICC_CACHE_DIR (or XDG_CACHE_HOME) to a folder this user can write, e.g. /var/tmp/icc-cache.'],
  })
}

/** `dir` or the nearest of its parents that exists. */
async function existingAncestor(dir: string): Promise<string> {
  let at = resolve(dir)
  for (;;) {
    const found = await stat(at).then(
      () => true,
      () => false,
    )
    if (found || dirname(at) === at) return at
    at = dirname(at)
  }
}
