import {existsSync} from 'node:fs'
import {copyFile, mkdir, readdir, readFile, stat, writeFile} from 'node:fs/promises'
import {createRequire} from 'node:module'
import {basename, dirname, join, resolve as resolvePath} from 'node:path'
import {stripVTControlCharacters} from 'node:util'
import * as ort from 'onnxruntime-node'

import type {LoadedModel, PreprocessingSpec, ResizeMode, ResolvedArtifact} from './types.js'

import {spinWhile} from '../aws/progress.js'
import {DependencyError, ModelError, UsageError} from '../errors.js'
import {topClasses} from '../serve/format.js'
import {DEFAULT_SHAPE, resolveArtifact} from './artifact.js'
import {recordUse} from './cache-care.js'
import {cachedOnnx, defaultCacheDir, sha256, sha256Files} from './cache.js'
/**
 * The model core: read SageMaker image-classification models (MXNet symbol + params, a model.tar.gz, or ONNX),
 * convert them to ONNX once (cached by content hash), run them with ONNX Runtime, and format the connector's
 * output. Used by `icc inspect-model`, `icc convert-model`, `icc predict` and `icc serve`.
 */
import {formatFloat32, formatProbabilities} from './format.js'
import {inferInputShape, mismatchError, type ShapeMismatch} from './input-shape.js'
import {readLabelsFile} from './labels.js'
import {type ParamsFile, readParams} from './mxnet-params.js'
import {inferShapes, type MxSymbol, parseSymbol} from './mxnet-symbol.js'
import {
  activationBound,
  type ActivationPeak,
  checkActivations,
  CONVERTER_VERSION,
  plan,
  splitPlan,
  writeOnnx,
} from './onnx-export/index.js'
import {cachedOptimized, optimizeParts, PART_BYTES, writeParts} from './optimize.js'
import {expandImageArgs, imagesError, loadImage} from './predict-images.js'
import {preprocessImage} from './preprocess.js'
import {quantizeInt8} from './quantize.js'

export {resolveArtifact} from './artifact.js'
export {type CacheEntry, type CacheListing, holdEntries, listCache, pruneCache, type PruneResult} from './cache-care.js'
export {defaultCacheDir} from './cache.js'
export {ensureDefaultModel} from './default-model.js'
export {formatFloat32, formatFloat32Exact, formatProbabilities} from './format.js'
export {readLabelsFile} from './labels.js'
export {activationBound} from './onnx-export/index.js'
export {preprocessImage, preprocessInto} from './preprocess.js'
export {quantizeInt8, type QuantizeResult} from './quantize.js'
export * from './types.js'

export interface LoadModelOptions {
  /** A spinner with the elapsed time on stderr while the model converts or is optimised (the caller's TTY check). */
  progress?: boolean
  /** Class names from this file (./labels.ts) instead of the model's own; their count must match the classes. */
  labelsFile?: string
  /** Directory for the conversion cache (default: $ICC_CACHE_DIR, $XDG_CACHE_HOME/icc or ~/.cache/icc). */
  cacheDir?: string
  /** Pick this epoch's params file instead of the highest. */
  epoch?: number
  /** Refuse (BAD_SYMBOL) a graph whose tensors need more bytes per image (./onnx-export/activations.ts). */
  maxActivationBytes?: number
  /** Override the preprocessing (otherwise from the sidecar icc-model.json). */
  preprocessing?: PreprocessingSpec
  /**
   * Also prepare (once, cached) the model optimised ahead of time for ONNX Runtime's CPU provider (./optimize.ts),
   * which loads with about one copy of the weights: `optimizedPath` of the result. MXNet models only. `partBytes`:
   * the weights of one part (default PART_BYTES).
   */
  optimize?: boolean | {partBytes?: number}
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
  /** Parameters whose shapes do not fit the input shape (the model would not run). */
  mismatches: ShapeMismatch[]
  /** Why shape inference failed (a BAD_SYMBOL naming the node), when it did. */
  shapeError?: unknown
  params?: ReturnType<typeof readParams>
  shape: number[]
  summary: Record<string, unknown>
  sym?: MxSymbol
}

/** The input shape [N, C, H, W] the user gave (the caller's, else model-shapes.json's); undefined when neither. */
function givenShape(art: ResolvedArtifact, options: LoadModelOptions): number[] | undefined {
  const shape = options.shape ?? art.shape
  if (!shape) return undefined
  return shape.length === 3 ? [1, ...shape] : [...shape]
}

/** The given shape, else one inferred from the parameters, else 3x224x224; a warning says which when not given. */
function inputShapeOf(art: ResolvedArtifact, options: LoadModelOptions, sym: MxSymbol, params: ParamsFile): number[] {
  const given = givenShape(art, options)
  if (given) return given
  const inferred = inferInputShape(sym, params)
  if (inferred) {
    art.warnings.push(
      `No model-shapes.json: input shape ${inferred.slice(1).join('x')} inferred from the parameters (the first convolution's channels, the first fully connected layer's size); --input-shape C,H,W overrides it.`,
    )
    return inferred
  }

  art.warnings.push(
    'No model-shapes.json and the parameters do not tell the input shape: assuming 3x224x224 (pass --input-shape C,H,W or add model-shapes.json).',
  )
  return DEFAULT_SHAPE
}

async function analyze(art: ResolvedArtifact, options: LoadModelOptions): Promise<Analysis> {
  if (art.kind === 'onnx') {
    const summary = {format: 'onnx', path: art.onnxPath}
    return {hash: await sha256Files(art.onnxPath!), mismatches: [], shape: [], summary}
  }

  const symbol = await readFile(art.symbolPath!)
  const sym = parseSymbol(symbol.toString('utf8'), basename(art.symbolPath!))
  const paramsBytes = await readFile(art.paramsPath!)
  // read lazily: the file's bytes are the only copy of the weights (./mxnet-params.ts)
  const params = readParams(paramsBytes, basename(art.paramsPath!), {lazy: true})
  const shape = inputShapeOf(art, options, sym, params)

  const problems: string[] = []
  const mismatches: ShapeMismatch[] = []
  const paramShapes = new Map(params.arrays.filter((a) => a.name).map((a) => [a.name, a.shape]))
  const ops: Record<string, number> = {}
  for (const n of sym.nodes) if (n.op !== 'null') ops[n.op] = (ops[n.op] ?? 0) + 1
  let numClasses: number | undefined
  let shapeError: unknown
  try {
    const inf = inferShapes(sym, {data: shape}, new Map(), basename(art.symbolPath!))
    for (const [name, s] of inf.varShapes) {
      if (name === 'data') continue
      const have = paramShapes.get(name)
      if (!have) {
        if (!name.endsWith('_label'))
          problems.push(`parameter ${name} (${s.join('x')}) is missing from the params file`)
      } else if (have.join('x') !== s.join('x')) {
        mismatches.push({have, name, need: s})
        problems.push(`parameter ${name} has shape ${have.join('x')}, the graph needs ${s.join('x')}`)
      }
    }

    numClasses = inf.nodeShapes[sym.heads[0][0]]?.at(-1)
  } catch (error) {
    problems.push((error as Error).message)
    shapeError = error
  }

  const paramCount = params.arrays.reduce((s, a) => s + a.size, 0)
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
    mismatches,
    params,
    shape,
    shapeError,
    summary,
    sym,
  }
}

/** What the conversion cache keeps beside each ONNX file, so that a warm load reads neither params nor graph. */
interface CachedMeta {
  /** Absent in entries of icc before 21.9. */
  activation?: ActivationPeak
  inputShape: [number, number, number]
  numClasses: number
  summary: Record<string, unknown>
}

/**
 * Load a model for inference: resolve the artifact, convert it to ONNX (once; later loads stream-hash the source
 * files, find the cached ONNX file and its recorded shapes, and parse nothing), and describe it.
 */
export async function loadModel(path: string, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const model = await loadConverted(path, options)
  if (options.labelsFile) model.labels = await readLabelsFile(options.labelsFile, model.numClasses)
  return model
}

async function loadConverted(path: string, options: LoadModelOptions): Promise<LoadedModel> {
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

  const given = givenShape(art, options)
  const hash = await sha256Files(art.symbolPath!, art.paramsPath!)
  const key = sha256(CONVERTER_VERSION, '\0', hash, '\0', given ? given.slice(1).join('x') : 'from-params')
  const r = await cachedOnnx<CachedMeta>(cacheDir, key, CONVERTER_VERSION, (onnxPath) =>
    spinWhile(options.progress ?? false, 'converting model', () => convertTo(onnxPath)),
  )
  async function convertTo(onnxPath: string): Promise<CachedMeta> {
    const a = await analyze(art, {...options, shape: given})
    if (options.optimize) converted.set(art, a)
    // ONNX Runtime would refuse such a model with a raw shape-inference error: say which shapes differ
    if (a.mismatches.length > 0) throw mismatchError(a.mismatches, a.shape, path)
    const numClasses = a.summary.classes as number | undefined
    if (a.shapeError instanceof ModelError) throw a.shapeError
    if (numClasses === undefined) {
      const problems = (a.summary.problems as string[]).join('; ')
      throw new ModelError('BAD_MODEL', `Cannot tell the number of classes of ${art.symbolPath}: ${problems}`)
    }

    // streamed: the initializers go to the file straight from the params file's bytes (./onnx-export/)
    const params = new Map(a.params!.arrays.filter((x) => x.name).map((x) => [x.name, x]))
    const source = basename(art.symbolPath!)
    const {maxActivationBytes} = options
    const {activation} = await writeOnnx(a.sym!, {inputShape: a.shape, maxActivationBytes, params, source}, onnxPath)
    const [c, h, w] = a.shape.slice(1)
    return {
      activation,
      inputShape: [c, h, w],
      numClasses,
      summary: {...a.summary, shapeWarnings: art.warnings.filter((w) => w.startsWith('No model-shapes.json'))},
    }
  }

  // a warm load parses nothing: the activation peak and the shape warnings of the conversion come from the cache
  if (r.meta.activation) checkActivations(r.meta.activation, activationBound(options), basename(art.symbolPath!))
  if (r.fromCache && !given) art.warnings.push(...((r.meta.summary.shapeWarnings as string[] | undefined) ?? []))
  if (r.rebuilt) art.warnings.push(`Rebuilt the cached ONNX file: ${r.rebuilt}`)
  const optimizedPath = options.optimize
    ? await optimizedModel(art, {...options, shape: [1, ...r.meta.inputShape]}, cacheDir, key)
    : undefined
  await recordUse(cacheDir, key, {archiveDir: art.dir, optimizedPath, source: resolvePath(path)})
  const summary = {
    ...r.meta.summary,
    epoch: art.epoch,
    fromCache: r.fromCache,
    labels: labels?.length,
    paramsFile: art.paramsPath,
    symbolFile: art.symbolPath,
  }
  const {inputShape, numClasses} = r.meta
  return {...common, cacheKey: key, hash, inputShape, numClasses, onnxPath: r.path, optimizedPath, summary}
}

/**
 * The CPU-optimised model of a converted one (./optimize.ts), made from the params part by part when not cached;
 * undefined (with a warning) when ONNX Runtime cannot make it, as then the plain model is loaded.
 */
async function optimizedModel(
  art: ResolvedArtifact,
  options: LoadModelOptions,
  cacheDir: string,
  key: string,
): Promise<string | undefined> {
  try {
    return await cachedOptimized(cacheDir, key, (base) =>
      spinWhile(options.progress ?? false, 'optimizing model', async () => {
        // the params (and the plan's views of them) are dropped before ONNX Runtime optimises the parts
        const parts = await writePartsOf(art, options, base)
        ;(globalThis as {gc?: () => void}).gc?.()
        return optimizeParts(parts, base)
      }),
    )
  } catch (error) {
    art.warnings.push(`Loading the model unoptimised ahead of time (more memory): ${(error as Error).message}`)
    return undefined
  }
}

/** A conversion's analysis, kept for the optimisation that follows it: the params file is read once. */
const converted = new WeakMap<ResolvedArtifact, Analysis>()

async function writePartsOf(art: ResolvedArtifact, options: LoadModelOptions, base: string): Promise<string[]> {
  const a = converted.get(art) ?? (await analyze(art, options))
  converted.delete(art)
  const params = new Map(a.params!.arrays.filter((x) => x.name).map((x) => [x.name, x]))
  const {maxActivationBytes} = options
  const whole = plan(a.sym!, {inputShape: a.shape, maxActivationBytes, params, source: basename(art.symbolPath!)})
  const partBytes = (typeof options.optimize === 'object' && options.optimize.partBytes) || PART_BYTES
  return writeParts(splitPlan(whole, partBytes), base)
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
    const missing = missingCudaProviderFiles()
    try {
      // without the provider's files ONNX Runtime is not asked: its own coloured log line would reach stderr
      if (missing.length > 0) throw new Error('the CUDA provider files are missing')
      return await ort.InferenceSession.create(model.onnxPath, {...base, executionProviders: ['cuda']})
    } catch (error) {
      // ONNX Runtime colours its messages (ANSI escapes): plain text for terminals, logs and JSON alike
      const what =
        missing.length > 0
          ? `onnxruntime-node was installed without its CUDA provider (missing ${missing.join(', ')})`
          : `a library it needs could not be loaded: ${stripVTControlCharacters((error as Error).message)}`
      const message = `ONNX Runtime's CUDA execution provider is unavailable: ${what}`
      if (!options.fallbackToCpu) {
        throw new DependencyError('CUDA_UNAVAILABLE', message, {
          cause: error,
          details: {missing},
          suggestions: [
            missing.length > 0
              ? CUDA_PROVIDER_FIX
              : 'Install the CUDA 12 runtime and cuDNN 9 libraries (libcudart, libcublas, libcudnn) and check ldconfig -p.',
            'Or run without GPU acceleration.',
          ],
        })
      }

      options.onWarning?.(`${message}; running on the CPU.`)
    }
  }

  return createCpuSession(model, {...base, executionProviders: ['cpu']}, options.onWarning)
}

/**
 * A CPU session: of the model optimised ahead of time when there is one (with optimisation off: it is done), else
 * of the converted model; an optimised model that ONNX Runtime refuses is skipped with a warning.
 */
export async function createCpuSession(
  model: LoadedModel,
  options: ort.InferenceSession.SessionOptions,
  onWarning?: (message: string) => void,
): Promise<ort.InferenceSession> {
  if (model.optimizedPath) {
    try {
      return await ort.InferenceSession.create(model.optimizedPath, {...options, graphOptimizationLevel: 'disabled'})
    } catch (error) {
      onWarning?.(
        `The optimised model ${model.optimizedPath} did not load (${(error as Error).message}); loading ${model.onnxPath}.`,
      )
    }
  }

  try {
    return await ort.InferenceSession.create(model.onnxPath, options)
  } catch (error) {
    throw new ModelError('BAD_MODEL', `ONNX Runtime cannot load ${model.onnxPath}: ${(error as Error).message}`, {
      cause: error,
    })
  }
}

/** The one fix for a missing CUDA provider (predict --gpu, serve's GPUAcceleration GPU and icc doctor). */
export const CUDA_PROVIDER_FIX =
  "Fetch onnxruntime-node's CUDA provider (an explicit download; npm ci skips it): ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js"

/** Whether onnxruntime-node ships a CUDA execution provider for this platform (linux x64 only). */
export function hasCudaProviderBuild(): boolean {
  return process.platform === 'linux' && process.arch === 'x64'
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
    const bytes = (await stat(output)).size
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

  const q = await spinWhile(options.progress ?? false, 'quantizing model (int8)', async () =>
    quantizeInt8(await readFile(m.onnxPath), {calibration, inPlace: true, inputShape: m.inputShape}),
  )
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
  /** The input error for the images that could not be classified (the command prints the others, then throws it). */
  error?: UsageError
  /** The connector's exact output per image (`[p0,p1,...]`), after `<image>: ` when there are several. */
  lines: string[]
  results: Prediction[]
  warnings: string[]
}

/** Top-k (index, label, probability), highest first; ties keep the lower index first (as `icc serve` answers). */
export function topK(probs: ArrayLike<number>, k: number, labels?: string[]): Prediction['top'] {
  return topClasses(Float32Array.from(probs), k, labels)
}

/** One-shot inference on image files (or the images in a directory); each bad image is reported, none stops it. */
export async function predict(options: PredictOptions): Promise<PredictResult> {
  if (options.images.length === 0) {
    throw new UsageError('NO_IMAGES', 'No image given', {suggestions: ['icc predict --model DIR image.jpg']})
  }

  const k = options.topK ?? 5
  if (!Number.isInteger(k) || k < 1) throw new UsageError('BAD_TOP_K', `--top-k must be a positive integer, got ${k}`)
  const {failures, images} = await expandImageArgs(options.images)
  const model = await loadModel(options.model, options)
  const session = await createSession(model, options)
  const [c, h, w] = model.inputShape
  const shape = {channels: c, height: h, preprocessing: model.preprocessing, resize: options.resize, width: w}
  const plane = c * h * w
  const results: Prediction[] = []
  try {
    const batchSize = 16
    for (let start = 0; start < images.length; start += batchSize) {
      const batch: string[] = []
      const x = new Float32Array(Math.min(batchSize, images.length - start) * plane)
      for (const image of images.slice(start, start + batchSize)) {
        const tensor = await loadImage(image, shape)
        if (!(tensor instanceof Float32Array)) {
          failures.push(tensor)
          continue
        }

        x.set(tensor, batch.length * plane)
        batch.push(image)
      }

      if (batch.length === 0) continue
      const input = new ort.Tensor('float32', x.subarray(0, batch.length * plane), [batch.length, c, h, w])
      const out = await session.run({[session.inputNames[0]]: input})
      const y = out[session.outputNames[0]].data as Float32Array
      const n = y.length / batch.length
      for (const [i, image] of batch.entries()) {
        const probs = y.subarray(i * n, (i + 1) * n)
        const top = topK(probs, Math.min(k, n), model.labels)
        results.push({image, probabilities: Array.from(probs, (p) => Number(formatFloat32(p))), top})
      }
    }
  } finally {
    await session.release()
  }

  const several = images.length + failures.length > 1 || options.images.length > 1
  const lines = results.map((r) => (several ? `${r.image}: ` : '') + formatProbabilities(r.probabilities))
  return {
    error: failures.length > 0 ? imagesError(failures, results.length + failures.length, results) : undefined,
    lines,
    results,
    warnings: model.warnings,
  }
}
