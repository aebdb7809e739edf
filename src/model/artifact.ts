/**
 * Finds the parts of a model artifact: a SageMaker output folder (`*-symbol.json`, `*-NNNN.params`,
 * `model-shapes.json`, optional `synset.txt` / `labels.txt` / `icc-model.json`), a `model.tar.gz` (extracted once
 * into the cache, keyed by the archive's hash), or a plain `.onnx` file.
 */
import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {readdir, readFile, stat, writeFile} from 'node:fs/promises'
import {basename, join} from 'node:path'

import type {PreprocessingSpec, ResolvedArtifact} from './types.js'

import {formatBytes} from '../aws/progress.js'
import {ModelError, UsageError} from '../errors.js'
import {extractArchive} from './archive.js'
import {defaultCacheDir} from './cache.js'
import {parseLabelLines} from './labels.js'
import {MAX_PARAMS_BYTES} from './mxnet-params.js'
import {MAX_SYMBOL_BYTES} from './mxnet-symbol.js'

export interface ResolveOptions {
  cacheDir?: string
  /** Use this epoch's params file instead of the highest. */
  epoch?: number
}

export const DEFAULT_SHAPE = [1, 3, 224, 224]
export const SIDECAR = 'icc-model.json'

async function fileHash(path: string): Promise<string> {
  const h = createHash('sha256')
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer)
  return h.digest('hex')
}

function checkShape(shape: unknown, where: string): number[] {
  if (
    !Array.isArray(shape) ||
    (shape.length !== 4 && shape.length !== 3) ||
    !shape.every((d) => Number.isInteger(d) && d > 0 && d <= 65_536)
  ) {
    throw new ModelError('BAD_SHAPE', `${where}: the input shape must be [N, C, H, W] with positive integers`, {
      suggestions: ['model-shapes.json looks like [{"name":"data","shape":[1,3,224,224]}].'],
    })
  }

  return shape.length === 3 ? [1, ...shape] : [...shape]
}

/**
 * A symbol or params file is a regular file of a size icc can read, checked by `stat` before anything reads or
 * hashes it (a 1.9 GB sparse symbol file is refused at once, not read whole first).
 */
async function checkModelFile(path: string, what: 'params' | 'symbol'): Promise<void> {
  const info = await stat(path)
  const code = what === 'symbol' ? 'BAD_SYMBOL' : 'BAD_PARAMS'
  const max = what === 'symbol' ? MAX_SYMBOL_BYTES : MAX_PARAMS_BYTES
  const fix = `The ${what} file must be the one MXNet saved (${what === 'symbol' ? '*-symbol.json' : '*-NNNN.params'}).`
  if (!info.isFile()) {
    const kind = info.isDirectory() ? 'a directory' : 'not a regular file'
    throw new ModelError(code, `${path} is ${kind}, not a ${what} file`, {suggestions: [fix]})
  }

  if (info.size > max) {
    throw new ModelError(
      code,
      `${path} is ${formatBytes(info.size)}, over the ${formatBytes(max)} a ${what} file may be`,
      {
        details: {bytes: info.size, limit: max},
        suggestions: [fix],
      },
    )
  }
}

/**
 * A folder's model. `shownAs` is what the user gave (an archive's own path, not the cache folder it was unpacked
 * into); messages name it, and suggest no flag, since every model command takes the path its own way.
 */
async function resolveDir(dir: string, options: ResolveOptions, shownAs = dir): Promise<ResolvedArtifact> {
  const files = await readdir(dir)
  const warnings: string[] = []
  const symbols = files.filter((f) => f.endsWith('-symbol.json')).sort()
  if (symbols.length === 0) {
    const onnxFiles = files.filter((f) => f.endsWith('.onnx'))
    if (onnxFiles.length === 1) return {dir, kind: 'onnx', onnxPath: join(dir, onnxFiles[0]), warnings}
    const held = files.filter((f) => f !== '.icc-extracted')
    const listing = held.length === 0 ? 'nothing' : held.slice(0, 5).join(', ') + (held.length > 5 ? ', ...' : '')
    throw new ModelError(
      'NO_MODEL',
      `${shownAs} holds no MXNet model (*-symbol.json) and no single .onnx file (it holds ${listing})`,
      {
        suggestions: [
          'Give the folder or the model.tar.gz of a SageMaker image-classification model (image-classification-symbol.json, image-classification-NNNN.params, model-shapes.json), or a .onnx file.',
        ],
      },
    )
  }

  const symbolFile =
    symbols.length === 1
      ? symbols[0]
      : (symbols.find((s) => s === 'image-classification-symbol.json') ??
        (() => {
          throw new ModelError('AMBIGUOUS_MODEL', `${dir} holds several symbol files: ${symbols.join(', ')}`, {
            suggestions: ['Keep one model per folder.'],
          })
        })())
  const prefix = symbolFile.slice(0, -'-symbol.json'.length)
  const epochs = files
    .map((f) => new RegExp(`^${prefix.replaceAll(/[.*+?^${}()|[\]\\]/g, '\\$&')}-(\\d+)\\.params$`).exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({epoch: Number(m[1]), file: m[0]}))
    .sort((a, b) => a.epoch - b.epoch)
  if (epochs.length === 0) {
    throw new ModelError('NO_PARAMS', `${dir} has ${symbolFile} but no ${prefix}-NNNN.params file`, {
      suggestions: ['Copy the params file saved with the symbol (e.g. image-classification-0010.params).'],
    })
  }

  let chosen = epochs.at(-1)!
  if (options.epoch !== undefined) {
    const found = epochs.find((e) => e.epoch === options.epoch)
    if (!found) {
      throw new UsageError('NO_EPOCH', `No params file for epoch ${options.epoch} in ${dir}`, {
        suggestions: [`Available epochs: ${epochs.map((e) => e.epoch).join(', ')}.`],
      })
    }

    chosen = found
  }

  await checkModelFile(join(dir, symbolFile), 'symbol')
  await checkModelFile(join(dir, chosen.file), 'params')
  const result: ResolvedArtifact = {
    dir,
    epoch: chosen.epoch,
    kind: 'mxnet',
    paramsPath: join(dir, chosen.file),
    symbolPath: join(dir, symbolFile),
    warnings,
  }
  await readExtras(dir, files, result)
  return result
}

/** What the files beside the model add to it: the sidecar (labels, preprocessing, shape), model-shapes.json, labels. */
async function readExtras(dir: string, files: string[], result: ResolvedArtifact): Promise<void> {
  if (files.includes(SIDECAR)) {
    let side: {labels?: unknown; preprocessing?: unknown; shape?: unknown}
    try {
      side = JSON.parse(await readFile(join(dir, SIDECAR), 'utf8'))
    } catch (error) {
      throw new ModelError('BAD_SIDECAR', `${join(dir, SIDECAR)} is not valid JSON: ${(error as Error).message}`)
    }

    if (Array.isArray(side.labels)) result.labels = side.labels.map(String)
    if (side.preprocessing && typeof side.preprocessing === 'object') {
      result.preprocessing = side.preprocessing as PreprocessingSpec
    }

    if (side.shape !== undefined) result.shape = checkShape(side.shape, join(dir, SIDECAR))
  }

  if (files.includes('model-shapes.json') && !result.shape) {
    const where = join(dir, 'model-shapes.json')
    let doc: unknown
    try {
      doc = JSON.parse(await readFile(where, 'utf8'))
    } catch (error) {
      throw new ModelError('BAD_SHAPE', `${where} is not valid JSON: ${(error as Error).message}`)
    }

    const entry = Array.isArray(doc) ? (doc.find((e) => e?.name === 'data') ?? doc[0]) : undefined
    result.shape = checkShape(entry?.shape, where)
  }

  if (!result.labels) {
    for (const f of ['synset.txt', 'labels.txt']) {
      if (files.includes(f)) {
        result.labels = parseLabelLines(await readFile(join(dir, f), 'utf8'))
        break
      }
    }
  }
}

export async function resolveArtifact(path: string, options: ResolveOptions = {}): Promise<ResolvedArtifact> {
  let info
  try {
    info = await stat(path)
  } catch {
    throw new UsageError('NO_SUCH_MODEL', `Model path not found: ${path}`, {
      suggestions: ['Pass a model folder, a model.tar.gz or a .onnx file.'],
    })
  }

  if (info.isDirectory()) return resolveDir(path, options)
  const name = basename(path).toLowerCase()
  if (name.endsWith('.onnx')) return {dir: path, kind: 'onnx', onnxPath: path, warnings: []}
  if (name.endsWith('.tar.gz') || name.endsWith('.tgz')) {
    const hash = await fileHash(path)
    const dest = join(options.cacheDir ?? defaultCacheDir(), 'archives', hash.slice(0, 32))
    const marker = join(dest, '.icc-extracted')
    const done = await stat(marker).then(
      () => true,
      () => false,
    )
    if (!done) {
      await extractArchive(path, dest)
      await writeFile(marker, hash)
    }

    let dir = dest
    const entries = (await readdir(dest)).filter((f) => f !== '.icc-extracted')
    if (entries.length === 1 && !entries[0].endsWith('.json') && (await stat(join(dest, entries[0]))).isDirectory()) {
      dir = join(dest, entries[0])
    }

    return resolveDir(dir, options, path)
  }

  if (name.endsWith('-symbol.json') || name.endsWith('.params')) {
    return resolveDir(join(path, '..'), options)
  }

  throw new UsageError('UNKNOWN_MODEL_FORMAT', `Not a model folder, .tar.gz or .onnx: ${path}`, {
    suggestions: ['Pass the folder holding *-symbol.json and *-NNNN.params, the model.tar.gz, or a .onnx file.'],
  })
}
