/**
 * Hardened extraction of model archives (`model.tar.gz`).
 *
 * PLACEHOLDER SIGNATURE: the hardened implementation (path traversal, links pointing out, absurd sizes) is
 * being written; this version only extracts with node-tar's own protections.
 */
import {mkdir} from 'node:fs/promises'
import * as tar from 'tar'

export interface ExtractLimits {
  /** Refuse archives holding more than this many entries (default 10 000). */
  maxEntries?: number
  /** Refuse archives whose files add up to more than this many bytes (default 4 GiB). */
  maxTotalBytes?: number
}

export interface ExtractResult {
  files: string[]
  totalBytes: number
}

export async function extractArchive(
  archivePath: string,
  destDir: string,
  _limits: ExtractLimits = {},
): Promise<ExtractResult> {
  await mkdir(destDir, {recursive: true})
  const files: string[] = []
  let totalBytes = 0
  await tar.x({
    cwd: destDir,
    file: archivePath,
    onentry(entry) {
      files.push(entry.path)
      totalBytes += entry.size ?? 0
    },
  })
  return {files, totalBytes}
}
