/**
 * What a failed write to icc's own folders (the conversion cache, an archive being extracted) or to a command's
 * `--output` says (the advice differs: OUTPUT_ADVICE): a full disk
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
export async function makeWritableDir(dir: string, what: string, advice = CACHE_ADVICE): Promise<void> {
  try {
    await mkdir(dir, {mode: 0o755, recursive: true})
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? ''
    if (NO_SPACE.has(code)) throw await noSpace(error, dir, what, advice)
    if (NOT_WRITABLE.has(code)) throw await notWritable(error, dir, what, advice)
    throw error
  }
}

/** What the errors of a folder say to do: icc's cache (the default) or a file the user named. */
export interface DiskAdvice {
  /** The code of a folder that cannot be written. */
  notWritable: string
  /** What to do when it cannot be written. */
  notWritableFix: string
  /** What to do when its disk is full. */
  noSpaceFix: string
}

const CACHE_ADVICE: DiskAdvice = {
  noSpaceFix:
    'Free space there (`icc cache prune --older-than 30d` removes old conversions), or point ICC_CACHE_DIR at a disk with room.',
  notWritable: 'CACHE_NOT_WRITABLE',
  notWritableFix: 'Set ICC_CACHE_DIR (or XDG_CACHE_HOME) to a folder this user can write, e.g. /var/tmp/icc-cache.',
}

/** The advice for the file a command writes where its `--output` says. */
export const OUTPUT_ADVICE: DiskAdvice = {
  noSpaceFix: 'Free space there, or give an --output on a disk with room.',
  notWritable: 'OUTPUT_NOT_WRITABLE',
  notWritableFix: 'Give an --output in a folder this user can write.',
}

/** The error a write under `dir` for `what` failed with, in icc's words; undefined when it is not a disk's fault. */
export async function diskError(
  error: unknown,
  dir: string,
  what: string,
  advice: DiskAdvice = CACHE_ADVICE,
): Promise<IccError | undefined> {
  const code = (error as NodeJS.ErrnoException | undefined)?.code ?? ''
  if (NO_SPACE.has(code)) return noSpace(error, dir, what, advice)
  if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') return notWritable(error, dir, what, advice)
  return undefined
}

async function noSpace(error: unknown, dir: string, what: string, advice = CACHE_ADVICE): Promise<IccError> {
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
      suggestions: [advice.noSpaceFix],
    },
  )
}

async function notWritable(error: unknown, dir: string, what: string, advice = CACHE_ADVICE): Promise<UsageError> {
  const where = await existingAncestor(dir)
  const why = await access(where, constants.W_OK).then(
    () => `cannot be written (${(error as Error).message})`,
    (error_: NodeJS.ErrnoException) =>
      error_.code === 'EROFS' ? 'is on a read-only file system' : 'is not writable by this user',
  )
  const subject = where === resolve(dir) ? 'the folder' : `${where}, the nearest folder that exists,`
  return new UsageError(advice.notWritable, `Cannot write ${what} at ${dir}: ${subject} ${why}.`, {
    cause: error,
    details: {dir, existing: where, what},
    suggestions: [advice.notWritableFix],
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
