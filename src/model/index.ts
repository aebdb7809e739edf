import {existsSync} from 'node:fs'
import {copyFile, mkdir, readdir, readFile, writeFile} from 'node:fs/promises'
import {createRequire} from 'node:module'
import {basename, dirname, join} from 'node:path'
import * as ort from 'onnxruntime-node'

import type {LoadedModel, PreprocessingSpec, ResizeMode, ResolvedArtifact} from './types.js'

import {DependencyError, IccError, ModelError, UsageError} from '../errors.js'
import {DEFAULT_SHAPE, resolveArtifact} from './artifact.js'
import {cachedOnnx, defaultCacheDir, sha256, sha256Files} from './cache.js'
/**
 * The model core: read SageMaker image-classification models (MXNet symbol + params, a model.tar.gz, or ONNX),
 * convert them to ONNX once (cached by content hash), run them with ONNX Runtime, and format the connector's
 * output. Used by `icc inspect-model`, `icc convert-model`, `icc predict` and `icc serve`.
 */
import {formatProbabilities} from './format.js'
import {readParams} from './mxnet-params.js'
import {inferShapes, type MxSymbol, parseSymbol} from './mxnet-symbol.js'
import {CONVERTER_VERSION, exportOnnx} from './onnx-export.js'
import {preprocessImage} from './preprocess.js'
import {quantizeInt8} from './quantize.js'

export {resolveArtifact} from './artifact.js'
export {defaultCacheDir} from './cache.js'
export {ensureDefaultModel} from './default-model.js'
export {formatFloat32, formatFloat32Exact, formatProbabilities} from './format.js'
export {preprocessImage, preprocessInto} from './preprocess.js'
export {quantizeInt8, type QuantizeResult} from './quantize.js'
export * from './types.js'

export interface LoadModelOptions {
  /** Directory for the conversion cache (default: $ICC_CACHE_DIR, $XDG_CACHE_HOME/icc or ~/.cache/icc). */
  cacheDir?: string
  /** Pick this epoch's params file instead of the highest. */
  epoch?: number
  /** Override the preprocessing (otherwise from the sidecar icc-model.json). */
  preprocessing?: PreprocessingSpec
  /** Override the input shape [N, C, H, W] or [C, H, W] (otherwise model-shapes.json, else 3x224x224). */
  shape?: number[]
}

/** Guess "ResNet-N" from SageMaker's node names (stageS_unitU). */
function guessArchitecture(sym: MxSymbol): string {
  const units = new Set<string>()
  let bottleneck = false
  for (const n of sym.nodes) {
    const m = /^(stage\d+_unit\d+)_(conv\d)$/.exec(n.name)
    if (m) {
      units.add(m[1])
      if (m[2] === 'conv3') bottleneck = true
    }
  }

  if (units.size === 0) {
    const convs = sym.nodes.filter((n) => n.op === 'Convolution').length
    const fcs = sym.nodes.filter((n) => n.op === 'FullyConnected').length
    return `unknown (${convs} convolutions, ${fcs} fully connected)`
  }

  return `ResNet-${units.size * (bottleneck ? 3 : 2) + 2}`
}

function versionString(v?: number): string | undefined {
  if (v === undefined) return undefined
  return `${Math.floor(v / 10_000)}.${Math.floor(v / 100) % 100}.${v % 100}`
}

interface Analysis {
  bytes?: {params: Buffer; symbol: Buffer}
  hash: string
  params?: ReturnType<typeof readParams>
  shape: number[]
  summary: Record<string, unknown>
  sym?: MxSymbol
}

/** The input shape [N, C, H, W]: the caller's, else model-shapes.json's, else 3x224x224 with a warning. */
function inputShapeOf(art: ResolvedArtifact, options: LoadModelOptions): number[] {
  const shape = options.shape ?? art.shape
  if (shape) return shape.length === 3 ? [1, ...shape] : [...shape]
  art.warnings.push('No model-shapes.json: assuming an input of 3x224x224 (pass a shape or add model-shapes.json).')
  return DEFAULT_SHAPE
}

async function analyze(art: ResolvedArtifact, options: LoadModelOptions): Promise<Analysis> {
  if (art.kind === 'onnx') {
    return {hash: await sha256Files(art.onnxPath!), shape: [], summary: {format: 'onnx', path: art.onnxPath}}
  }

  const symbol = await readFile(art.symbolPath!)
  const paramsBytes = await readFile(art.paramsPath!)
  const sym = parseSymbol(symbol.toString('utf8'), basename(art.symbolPath!))
  const params = readParams(paramsBytes, basename(art.paramsPath!))
  const shape = inputShapeOf(art, options)

  const problems: string[] = []
  const paramShapes = new Map(params.arrays.filter((a) => a.name).map((a) => [a.name, a.shape]))
  const ops: Record<string, number> = {}
  for (const n of sym.nodes) if (n.op !== 'null') ops[n.op] = (ops[n.op] ?? 0) + 1
  let numClasses: number | undefined
  try {
    const inf = inferShapes(sym, {data: shape}, new Map(), basename(art.symbolPath!))
    for (const [name, s] of inf.varShapes) {
      if (name === 'data') continue
      const have = paramShapes.get(name)
      if (!have) {
        if (!name.endsWith('_label'))
          problems.push(`parameter ${name} (${s.join('x')}) is missing from the params file`)
      } else if (have.join('x') !== s.join('x')) {
        problems.push(`parameter ${name} has shape ${have.join('x')}, the graph needs ${s.join('x')}`)
      }
    }

    numClasses = inf.nodeShapes[sym.heads[0][0]]?.at(-1)
  } catch (error) {
    problems.push((error as Error).message)
  }

  const paramCount = params.arrays.reduce((s, a) => s + a.data.length, 0)
  const summary: Record<string, unknown> = {
    architecture: guessArchitecture(sym),
    classes: numClasses,
    epoch: art.epoch,
    format: 'mxnet',
    inputShape: shape.slice(1),
    labels: art.labels?.length,
    mxnetVersion: versionString(sym.mxnetVersion) ?? 'not recorded (MXNet < 0.12 or older exporter)',
    opHistogram: ops,
    paramCount,
    paramsFile: art.paramsPath,
    paramsFormat: params.format,
    problems,
    symbolFile: art.symbolPath,
  }
  if (art.labels && numClasses !== undefined && art.labels.length !== numClasses) {
    problems.push(`${art.labels.length} labels for ${numClasses} classes`)
  }

  return {
    bytes: {params: paramsBytes, symbol},
    hash: sha256(symbol, paramsBytes),
    params,
    shape,
    summary,
    sym,
  }
}

/** What the conversion cache keeps beside each ONNX file, so that a warm load reads neither params nor graph. */
interface CachedMeta {
  inputShape: [number, number, number]
  numClasses: number
  summary: Record<string, unknown>
}

/**
 * Load a model for inference: resolve the artifact, convert it to ONNX (once; later loads stream-hash the source
 * files, find the cached ONNX file and its recorded shapes, and parse nothing), and describe it.
 */
export async function loadModel(path: string, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const cacheDir = options.cacheDir ?? defaultCacheDir()
  const art = await resolveArtifact(path, {cacheDir, epoch: options.epoch})
  const {labels} = art
  const common = {labels, preprocessing: options.preprocessing ?? art.preprocessing, warnings: art.warnings}
  if (art.kind === 'onnx') {
    const onnxPath = art.onnxPath!
    const hash = await sha256Files(onnxPath)
    // A user's ONNX file: its input/output shapes come from ONNX Runtime itself.
    let session: ort.InferenceSession
    try {
      session = await ort.InferenceSession.create(onnxPath)
    } catch (error) {
      throw new ModelError('BAD_MODEL', `The model could not be loaded by ONNX Runtime: ${(error as Error).message}`, {
        cause: error,
      })
    }

    const input = session.inputMetadata[0] as {shape?: (number | string)[]}
    const output = session.outputMetadata[0] as {shape?: (number | string)[]}
    await session.release()
    const [, c, h, w] = (input.shape ?? []).map(Number)
    const numClasses = Number(output.shape?.at(-1))
    const summary = {classes: numClasses, format: 'onnx', fromCache: true, inputShape: [c, h, w], path: onnxPath}
    return {...common, hash, inputShape: [c, h, w], numClasses, onnxPath, summary}
  }

  const shape = inputShapeOf(art, options)
  const hash = await sha256Files(art.symbolPath!, art.paramsPath!)
  const key = sha256(CONVERTER_VERSION, '\0', hash, '\0', shape.slice(1).join('x'))
  const r = await cachedOnnx<CachedMeta>(cacheDir, key, CONVERTER_VERSION, async () => {
    const a = await analyze(art, {...options, shape})
    const params = new Map(a.params!.arrays.filter((x) => x.name).map((x) => [x.name, x]))
    const {bytes} = exportOnnx(a.sym!, {inputShape: a.shape, params, source: basename(art.symbolPath!)})
    const numClasses = a.summary.classes as number | undefined
    if (numClasses === undefined) {
      const problems = (a.summary.problems as string[]).join('; ')
      throw new ModelError('BAD_MODEL', `Cannot tell the number of classes of ${art.symbolPath}: ${problems}`)
    }

    const [c, h, w] = a.shape.slice(1)
    return {bytes, meta: {inputShape: [c, h, w], numClasses, summary: a.summary}}
  })
  if (r.rebuilt) art.warnings.push(`Rebuilt the cached ONNX file: ${r.rebuilt}`)
  const summary = {
    ...r.meta.summary,
    epoch: art.epoch,
    fromCache: r.fromCache,
    labels: labels?.length,
    paramsFile: art.paramsPath,
    symbolFile: art.symbolPath,
  }
  return {...common, hash, inputShape: r.meta.inputShape, numClasses: r.meta.numClasses, onnxPath: r.path, summary}
}

export interface SessionOptions {
  /** If the CUDA provider cannot be loaded, run on the CPU (with a warning) instead of failing. */
  fallbackToCpu?: boolean
  /** Use ONNX Runtime's CUDA execution provider. */
  gpu?: boolean
  /** Inter-op threads (default: ONNX Runtime's choice). */
  interOpThreads?: number
  /** Intra-op threads (default: ONNX Runtime's choice). */
  intraOpThreads?: number
  /** Called with a warning (e.g. GPU fallback). */
  onWarning?: (message: string) => void
}

export async function createSession(model: LoadedModel, options: SessionOptions = {}): Promise<ort.InferenceSession> {
  const base: ort.InferenceSession.SessionOptions = {}
  if (options.interOpThreads !== undefined) base.interOpNumThreads = options.interOpThreads
  if (options.intraOpThreads !== undefined) base.intraOpNumThreads = options.intraOpThreads
  if (options.gpu) {
    try {
      return await ort.InferenceSession.create(model.onnxPath, {...base, executionProviders: ['cuda']})
    } catch (error) {
      const missing = missingCudaProviderFiles()
      const what =
        missing.length > 0
          ? `onnxruntime-node was installed without its CUDA provider (missing ${missing.join(', ')})`
          : `a library it needs could not be loaded: ${(error as Error).message}`
      const message = `ONNX Runtime's CUDA execution provider is unavailable: ${what}`
      if (!options.fallbackToCpu) {
        throw new DependencyError('CUDA_UNAVAILABLE', message, {
          cause: error,
          details: {missing},
          suggestions: [
            missing.length > 0
              ? 'Reinstall onnxruntime-node with its CUDA binaries: npm install onnxruntime-node --onnxruntime-node-install=cuda12'
              : 'Install the CUDA 12 runtime and cuDNN 9 libraries (libcudart, libcublas, libcudnn) and check ldconfig -p.',
            'Or run without GPU acceleration.',
          ],
        })
      }

      options.onWarning?.(`${message}; running on the CPU.`)
    }
  }

  try {
    return await ort.InferenceSession.create(model.onnxPath, {...base, executionProviders: ['cpu']})
  } catch (error) {
    throw new ModelError('BAD_MODEL', `ONNX Runtime cannot load ${model.onnxPath}: ${(error as Error).message}`, {
      cause: error,
    })
  }
}

/** The CUDA provider libraries that onnxruntime-node downloads at install time, when absent. */
export function missingCudaProviderFiles(): string[] {
  try {
    const pkg = dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'))
    const bin = join(pkg, 'bin', 'napi-v6', process.platform, process.arch)
    const names =
      process.platform === 'win32'
        ? ['onnxruntime_providers_shared.dll', 'onnxruntime_providers_cuda.dll']
        : ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so']
    return names.filter((n) => !existsSync(join(bin, n)))
  } catch {
    return []
  }
}

export async function inspectModel(path: string, options: LoadModelOptions = {}): Promise<InspectResult> {
  const cacheDir = options.cacheDir ?? defaultCacheDir()
  const art = await resolveArtifact(path, {cacheDir, epoch: options.epoch})
  const a = await analyze(art, options)
  const problems = (a.summary.problems as string[] | undefined) ?? []
  let converts = false
  try {
    const m = await loadModel(path, options)
    converts = true
    Object.assign(a.summary, {classes: m.numClasses, inputShape: m.inputShape})
  } catch (error) {
    problems.push(`conversion: ${(error as Error).message}`)
  }

  return {
    ...a.summary,
    converts,
    hash: a.hash,
    labelNames: art.labels,
    path,
    problems,
    warnings: art.warnings,
  } as InspectResult
}

export interface InspectResult {
  architecture?: string
  classes?: number
  converts: boolean
  hash: string
  inputShape?: number[]
  [key: string]: unknown
  problems: string[]
  warnings: string[]
}

export interface ConvertOptions extends LoadModelOptions {
  /** Images (a directory, searched recursively) to calibrate int8 quantization on. */
  calibration?: string
  /** Most calibration images used, spread evenly over the sorted list (default 64). */
  calibrationCount?: number
  /** Write an int8 (QDQ) model instead of the float32 one (./quantize.ts). */
  quantize?: 'int8'
}

export interface ConvertResult {
  bytes: number
  classes: number
  inputShape: [number, number, number]
  output: string
  /** With --quantize int8: what was quantized, and on how many calibration images. */
  quantization?: {calibrationImages: number; convolutions: number; foldedBatchNorms: number; tensors: number}
  warnings: string[]
}

/** Up to `count` JPEG/PNG files under `dir` (recursively), spread evenly over their sorted list. */
async function calibrationFiles(dir: string, count: number): Promise<string[]> {
  let entries: string[]
  try {
    entries = (await readdir(dir, {recursive: true})).map(String)
  } catch (error) {
    throw new UsageError(
      'BAD_CALIBRATION_DIR',
      `Cannot read the calibration directory ${dir}: ${(error as Error).message}`,
      {
        suggestions: ['Pass --calibration DIR with JPEG/PNG images like the ones the model will see.'],
      },
    )
  }

  const images = entries.filter((f) => /\.(jpe?g|png)$/i.test(f)).sort()
  if (images.length === 0) {
    throw new UsageError('NO_CALIBRATION_DATA', `No .jpg, .jpeg or .png file under ${dir}.`, {
      suggestions: ['Pass --calibration DIR with JPEG/PNG images like the ones the model will see (32-100 is plenty).'],
    })
  }

  const step = Math.max(1, images.length / count)
  const picked: string[] = []
  for (let i = 0; i < images.length && picked.length < count; i += step) picked.push(join(dir, images[Math.floor(i)]))
  return picked
}

export async function convertModel(path: string, output: string, options: ConvertOptions = {}): Promise<ConvertResult> {
  if (!output.endsWith('.onnx')) {
    throw new UsageError('BAD_OUTPUT', `--output must name a .onnx file: ${output}`, {
      suggestions: ['e.g. --output model.onnx'],
    })
  }

  if (options.quantize && !options.calibration) {
    throw new UsageError(
      'NO_CALIBRATION_DATA',
      '--quantize int8 needs --calibration DIR (images to measure activation ranges on).',
      {
        suggestions: [
          'Pass --calibration DIR with JPEG/PNG images like the ones the model will see (32-100 is plenty).',
        ],
      },
    )
  }

  const m = await loadModel(path, options)
  await mkdir(dirname(output), {recursive: true})
  if (!options.quantize) {
    await copyFile(m.onnxPath, output)
    const bytes = (await readFile(output)).length
    return {bytes, classes: m.numClasses, inputShape: m.inputShape, output, warnings: m.warnings}
  }

  const [c, h, w] = m.inputShape
  const files = await calibrationFiles(options.calibration!, options.calibrationCount ?? 64)
  const calibration: Float32Array[] = []
  for (const file of files) {
    try {
      calibration.push(
        await preprocessImage(await readFile(file), {channels: c, height: h, preprocessing: m.preprocessing, width: w}),
      )
    } catch (error) {
      throw new UsageError('BAD_CALIBRATION_IMAGE', `Calibration image ${file}: ${(error as Error).message}`, {
        suggestions: ['Remove or replace that file.'],
      })
    }
  }

  const q = await quantizeInt8(await readFile(m.onnxPath), {calibration, inputShape: m.inputShape})
  await writeFile(output, q.bytes)
  return {
    bytes: q.bytes.length,
    classes: m.numClasses,
    inputShape: m.inputShape,
    output,
    quantization: {
      calibrationImages: calibration.length,
      convolutions: q.convolutions,
      foldedBatchNorms: q.foldedBatchNorms,
      tensors: q.tensors,
    },
    warnings: m.warnings,
  }
}

export interface PredictOptions extends LoadModelOptions, SessionOptions {
  /** Image file paths. */
  images: string[]
  model: string
  /** Decode/resize mode (default `exact`: the connector's OpenCV arithmetic; docs/preprocessing.md). */
  resize?: ResizeMode
  topK?: number
}

export interface Prediction {
  image: string
  probabilities: number[]
  top: {index: number; label?: string; probability: number}[]
}

export interface PredictResult {
  /** The connector's exact output per image (`[p0,p1,...]`). */
  lines: string[]
  results: Prediction[]
  warnings: string[]
}

/** Top-k (index, label, probability), highest first; ties keep the lower index first. */
export function topK(probs: ArrayLike<number>, k: number, labels?: string[]): Prediction['top'] {
  const idx = Array.from({length: probs.length}, (_, i) => i)
  idx.sort((a, b) => probs[b] - probs[a] || a - b)
  return idx.slice(0, Math.max(0, k)).map((i) => ({index: i, label: labels?.[i], probability: probs[i]}))
}

/** One-shot inference on image files. */
export async function predict(options: PredictOptions): Promise<PredictResult> {
  if (options.images.length === 0) {
    throw new UsageError('NO_IMAGES', 'No image given', {suggestions: ['icc predict --model DIR image.jpg']})
  }

  const k = options.topK ?? 5
  if (!Number.isInteger(k) || k < 1) throw new UsageError('BAD_TOP_K', `--top-k must be a positive integer, got ${k}`)
  const model = await loadModel(options.model, options)
  const session = await createSession(model, options)
  const [c, h, w] = model.inputShape
  const plane = c * h * w
  const results: Prediction[] = []
  try {
    const batchSize = 16
    for (let start = 0; start < options.images.length; start += batchSize) {
      const batch = options.images.slice(start, start + batchSize)
      const x = new Float32Array(batch.length * plane)
      for (const [i, image] of batch.entries()) {
        let bytes: Buffer
        try {
          bytes = await readFile(image)
        } catch (error) {
          throw new UsageError('NO_SUCH_IMAGE', `Cannot read image ${image}: ${(error as Error).message}`)
        }

        let tensor: Float32Array
        try {
          const {preprocessing} = model
          tensor = await preprocessImage(bytes, {
            channels: c,
            height: h,
            preprocessing,
            resize: options.resize,
            width: w,
          })
        } catch (error) {
          if (error instanceof IccError) {
            throw new IccError(error.code, `${image}: ${error.message}`, {
              cause: error,
              details: error.details,
              exitCode: error.exitCode,
              suggestions: error.suggestions,
            })
          }

          throw error
        }

        x.set(tensor, i * plane)
      }

      const out = await session.run({[session.inputNames[0]]: new ort.Tensor('float32', x, [batch.length, c, h, w])})
      const y = out[session.outputNames[0]].data as Float32Array
      const n = y.length / batch.length
      for (const [i, image] of batch.entries()) {
        const probs = y.subarray(i * n, (i + 1) * n)
        results.push({image, probabilities: Array.from(probs), top: topK(probs, Math.min(k, n), model.labels)})
      }
    }
  } finally {
    await session.release()
  }

  return {
    lines: results.map((r) => formatProbabilities(r.probabilities)),
    results,
    warnings: model.warnings,
  }
}
