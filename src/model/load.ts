/**
 * Load a model for inference: read SageMaker image-classification models (MXNet symbol + params, a model.tar.gz,
 * or ONNX), analyse them, convert them to ONNX once (cached by content hash) and, for serving on the CPU, optimise
 * them ahead of time (./optimize.ts). Used by `icc inspect-model`, `convert-model`, `predict` and `serve`.
 */
import {readFile} from 'node:fs/promises'
import {basename, resolve as resolvePath} from 'node:path'

import type {LoadedModel, PreprocessingSpec, ResolvedArtifact} from './types.js'

import {spinWhile} from '../aws/progress.js'
import {ModelError} from '../errors.js'
import {DEFAULT_SHAPE, resolveArtifact} from './artifact.js'
import {recordUse} from './cache-care.js'
import {cachedOnnx, defaultCacheDir, sha256, sha256Files} from './cache.js'
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
import {cachedOptimized, optimizeParts, partBytesFor, planBytes, writeParts} from './optimize.js'
import {type ModelSession, openSession, resolveRuntime, type Runtime} from './session.js'

export interface LoadModelOptions {
  /** The runtime sessions will run on (default: $ICC_RUNTIME, else auto): optimising ahead of time is native only. */
  runtime?: Runtime
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
   * the most weights of one part (default ./optimize.ts partBytesFor).
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

export interface Analysis {
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

export async function analyze(art: ResolvedArtifact, options: LoadModelOptions): Promise<Analysis> {
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
    let session: ModelSession
    try {
      session = await openSession(onnxPath, {}, (await resolveRuntime(options.runtime)).backend)
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
  // the optimised model is ONNX Runtime's own (native) format, its weights in files beside it: native only
  const native = options.optimize && (await resolveRuntime(options.runtime)).backend === 'native'
  const optimizedPath = native
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
  const partBytes =
    (typeof options.optimize === 'object' && options.optimize.partBytes) || partBytesFor(planBytes(whole))
  return writeParts(splitPlan(whole, partBytes), base)
}
