/**
 * The one place that creates ONNX Runtime sessions (`icc serve`'s runner, `icc predict`, `convert-model --quantize`
 * calibration, the ahead-of-time optimisation and `doctor --model` through a runner): which runtime (onnxruntime-node's
 * native binary, or onnxruntime-web's WebAssembly build where no binary loads: docs/runtimes.md), the serving
 * options, the execution providers, the CUDA probe with its one error code (CUDA_UNAVAILABLE) and one fix, and the
 * warm-up. Callers get a ModelSession: the same `run(feeds)` whichever runtime runs it.
 */
import type * as Ort from 'onnxruntime-node'

import {existsSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import {createRequire} from 'node:module'
import {availableParallelism} from 'node:os'
import {dirname, join} from 'node:path'
import {stripVTControlCharacters} from 'node:util'

import type {LoadedModel} from './types.js'

import {DependencyError, ModelError, UsageError} from '../errors.js'
import {
  type Backend,
  chooseRuntime,
  installedProbe,
  type Runtime,
  type RuntimeChoice,
  type RuntimeProbe,
  RUNTIMES,
  runtimeUnavailable,
} from './runtime-choice.js'

export {type Backend, type Runtime, RUNTIMES} from './runtime-choice.js'

type OrtModule = typeof Ort
type OrtOptions = Ort.InferenceSession.SessionOptions

/** One input of a run: float32 data and its dimensions. */
export interface Feed {
  data: Float32Array
  dims: readonly number[]
}

/** An ONNX Runtime session, the same on either runtime. Outputs are float32 (image classifiers'). */
export interface ModelSession {
  readonly backend: Backend
  readonly inputMetadata: readonly Ort.InferenceSession.ValueMetadata[]
  readonly inputNames: readonly string[]
  readonly outputMetadata: readonly Ort.InferenceSession.ValueMetadata[]
  readonly outputNames: readonly string[]
  readonly provider: 'cpu' | 'cuda'
  release(): Promise<void>
  run(feeds: Record<string, Feed>, fetches?: string[]): Promise<Record<string, Float32Array>>
  /** As run, each output with its dims. */
  runShaped(feeds: Record<string, Feed>, fetches?: string[]): Promise<Record<string, Feed>>
}

export interface SessionOptions {
  /** If the CUDA provider cannot be loaded, run on the CPU (with a warning) instead of failing. */
  fallbackToCpu?: boolean
  /** Use ONNX Runtime's CUDA execution provider. */
  gpu?: boolean
  /** Intra-op threads (wasm: its worker threads); default: the cores. */
  intraOpThreads?: number
  /** Called with a warning (e.g. GPU fallback). */
  onWarning?: (message: string) => void
  /** Which ONNX Runtime (default: $ICC_RUNTIME, else auto). */
  runtime?: Runtime
}

/**
 * The serving session options (`npm run bench` chose them; src/serve/tuning.ts says why): graph optimisation
 * `all`, sequential execution with one inter-op thread, intra-op threads = `intraOpThreads`, no spin-waiting.
 */
export function cpuSessionOptions(intraOpThreads: number): OrtOptions {
  return {
    executionMode: 'sequential',
    executionProviders: ['cpu'],
    extra: {session: {intra_op: {allow_spinning: '0'}}},
    graphOptimizationLevel: 'all',
    interOpNumThreads: 1,
    intraOpNumThreads: intraOpThreads,
  }
}

/** The runtime asked for: `asked`, else $ICC_RUNTIME, else auto (a bad value is a usage error naming its source). */
export function askedRuntime(asked?: string): Runtime {
  const [value, source] = asked === undefined ? [process.env.ICC_RUNTIME, 'ICC_RUNTIME'] : [asked, '--runtime']
  if (value === undefined || value === '') return 'auto'
  if ((RUNTIMES as readonly string[]).includes(value)) return value as Runtime
  throw new UsageError('BAD_RUNTIME', `${source} must be one of ${RUNTIMES.join(', ')}, got "${value}"`, {
    suggestions: ['auto uses onnxruntime-node where its binary loads, else the WebAssembly runtime (onnxruntime-web).'],
  })
}

const loaded = new Map<Backend, Promise<OrtModule>>()

function importBackend(backend: Backend): Promise<OrtModule> {
  let p = loaded.get(backend)
  if (!p) {
    // onnxruntime-web's `node` export: its .wasm files load from node_modules, nothing is fetched
    p = (backend === 'native' ? import('onnxruntime-node') : import('onnxruntime-web')) as Promise<OrtModule>
    loaded.set(backend, p)
  }

  return p
}

/** Whether a runtime loads here (its error when it does not). */
const loadProbe: RuntimeProbe = async (backend) => {
  try {
    await importBackend(backend)
    return undefined
  } catch (error) {
    return {cause: error, why: stripVTControlCharacters((error as Error).message).split('\n')[0]}
  }
}

const HERE = `${process.platform}-${process.arch}`

async function loadBackend(backend: Backend): Promise<OrtModule> {
  const absence = await loadProbe(backend)
  if (absence) throw runtimeUnavailable(backend, HERE, absence)
  return importBackend(backend)
}

/**
 * The runtime that will run sessions: the one asked for, or with auto native where it is there, else wasm
 * (./runtime-choice.ts). Here, a runtime is there when it loads; for another architecture (`target.arch`, icc
 * doctor's), when it is installed for it.
 * @throws DependencyError RUNTIME_UNAVAILABLE
 */
export async function resolveRuntime(asked?: Runtime, target?: {arch: string}): Promise<RuntimeChoice> {
  const runtime = asked ?? askedRuntime()
  if (target) return chooseRuntime(runtime, installedProbe(target.arch), `${process.platform}-${target.arch}`)
  return chooseRuntime(runtime, loadProbe, HERE)
}

/** onnxruntime-node's versions (`ort.env.versions`), e.g. for cache keys of what it made. */
export async function nativeVersions(): Promise<Record<string, string | undefined>> {
  return {...(await loadBackend('native')).env.versions}
}

let wasmThreads: number | undefined

/** onnxruntime-web's options: its threads are set once per process, before its first session. */
function wasmOptions(ort: OrtModule, options: OrtOptions): OrtOptions {
  if (wasmThreads === undefined) {
    wasmThreads = options.intraOpNumThreads ?? availableParallelism()
    ort.env.wasm.numThreads = wasmThreads
  }

  const {executionMode, graphOptimizationLevel, logSeverityLevel} = options
  return {executionMode, executionProviders: ['wasm'], graphOptimizationLevel, logSeverityLevel}
}

/**
 * The ONNX Runtime module sessions run on here (the runtime resolveRuntime picks), set up as the factory sets it up
 * (wasm: its threads), for code that compares icc with the runtime itself: the tests' in-process references.
 */
export async function runtimeModule(): Promise<OrtModule> {
  const {backend} = await resolveRuntime()
  const ort = await loadBackend(backend)
  if (backend === 'wasm') wasmOptions(ort, {})
  return ort
}

/**
 * A session of `source` (a path or the model's bytes) on `backend`. The wasm runtime reads a path into memory
 * first: the file's bytes, then its copy in the wasm heap (docs/runtimes.md).
 */
export async function openSession(
  source: string | Uint8Array,
  options: OrtOptions,
  backend: Backend = 'native',
): Promise<ModelSession> {
  const ort = await loadBackend(backend)
  const session =
    backend === 'wasm'
      ? await ort.InferenceSession.create(
          typeof source === 'string' ? new Uint8Array(await readFile(source)) : source,
          wasmOptions(ort, options),
        )
      : typeof source === 'string'
        ? await ort.InferenceSession.create(source, options)
        : await ort.InferenceSession.create(source, options)
  const provider = options.executionProviders?.includes('cuda') ? 'cuda' : 'cpu'
  const runOrt = async (feeds: Record<string, Feed>, fetches?: string[]) => {
    const tensors: Record<string, Ort.Tensor> = {}
    for (const [name, f] of Object.entries(feeds)) tensors[name] = new ort.Tensor('float32', f.data, f.dims)
    return fetches ? session.run(tensors, fetches) : session.run(tensors)
  }

  return {
    backend,
    inputMetadata: session.inputMetadata,
    inputNames: session.inputNames,
    outputMetadata: session.outputMetadata,
    outputNames: session.outputNames,
    provider,
    release: () => session.release(),
    async run(feeds, fetches) {
      const data: Record<string, Float32Array> = {}
      for (const [name, t] of Object.entries(await runOrt(feeds, fetches))) data[name] = t.data as Float32Array
      return data
    },
    async runShaped(feeds, fetches) {
      const shaped: Record<string, Feed> = {}
      for (const [name, t] of Object.entries(await runOrt(feeds, fetches))) {
        shaped[name] = {data: t.data as Float32Array, dims: t.dims}
      }

      return shaped
    },
  }
}

/**
 * The session `icc serve` and `icc predict` run a model with: CUDA when asked (its one error, or the CPU with a
 * warning when `fallbackToCpu`), else the CPU with the serving options.
 */
export async function createSession(model: LoadedModel, options: SessionOptions = {}): Promise<ModelSession> {
  const {backend, note} = await resolveRuntime(options.runtime)
  if (note) options.onWarning?.(note)
  const cpu = cpuSessionOptions(options.intraOpThreads ?? availableParallelism())
  if (options.gpu) {
    const missing = backend === 'wasm' || !hasCudaProviderBuild() ? [] : missingCudaProviderFiles()
    try {
      // without the provider's files ONNX Runtime is not asked: its own coloured log line would reach stderr
      if (backend === 'wasm') throw new Error('the WebAssembly runtime (onnxruntime-web) has no CUDA provider')
      if (!hasCudaProviderBuild()) {
        throw new Error(`onnxruntime-node has no CUDA provider for ${process.platform}-${process.arch}`)
      }

      if (missing.length > 0) throw new Error('the CUDA provider files are missing')
      const gpu: OrtOptions = {executionProviders: ['cuda'], intraOpNumThreads: cpu.intraOpNumThreads}
      return await openSession(model.onnxPath, gpu, backend)
    } catch (error) {
      const message = cudaUnavailable(error, missing)
      if (!options.fallbackToCpu) {
        throw new DependencyError('CUDA_UNAVAILABLE', message, {
          cause: error,
          details: {missing},
          suggestions: [cudaFix(backend, missing), 'Or run without GPU acceleration.'],
        })
      }

      options.onWarning?.(`${message}; running on the CPU.`)
    }
  }

  return createCpuSession(model, cpu, options.onWarning, backend)
}

/** The one message for a CUDA provider that cannot run (ONNX Runtime's own text, without its colours). */
function cudaUnavailable(error: unknown, missing: string[]): string {
  const text = stripVTControlCharacters((error as Error).message)
  const what =
    missing.length > 0
      ? `onnxruntime-node was installed without its CUDA provider (missing ${missing.join(', ')})`
      : /no CUDA provider/.test(text)
        ? text
        : `a library it needs could not be loaded: ${text}`
  return `ONNX Runtime's CUDA execution provider is unavailable: ${what}`
}

function cudaFix(backend: Backend, missing: string[]): string {
  if (backend === 'wasm') return 'Use --runtime native on a linux x64 machine for GPU acceleration.'
  if (!hasCudaProviderBuild()) return 'GPU acceleration needs linux x64 (onnxruntime-node has its CUDA provider there).'
  return missing.length > 0
    ? CUDA_PROVIDER_FIX
    : 'Install the CUDA 12 runtime and cuDNN 9 libraries (libcudart, libcublas, libcudnn) and check ldconfig -p.'
}

/**
 * A CPU session: of the model optimised ahead of time when there is one (with optimisation off: it is done; native
 * only, as its weights lie in files beside it), else of the converted model; an optimised model that ONNX Runtime
 * refuses is skipped with a warning.
 */
export async function createCpuSession(
  model: LoadedModel,
  options: OrtOptions,
  onWarning?: (message: string) => void,
  backend: Backend = 'native',
): Promise<ModelSession> {
  if (model.optimizedPath && backend === 'native') {
    try {
      return await openSession(model.optimizedPath, {...options, graphOptimizationLevel: 'disabled'}, backend)
    } catch (error) {
      onWarning?.(
        `The optimised model ${model.optimizedPath} did not load (${(error as Error).message}); loading ${model.onnxPath}.`,
      )
    }
  }

  try {
    return await openSession(model.onnxPath, options, backend)
  } catch (error) {
    throw new ModelError('BAD_MODEL', `ONNX Runtime cannot load ${model.onnxPath}: ${(error as Error).message}`, {
      cause: error,
    })
  }
}

/** Most warm-up runs on wasm (V8 compiles it with Liftoff first; TurboFan takes over after a few runs). */
const WASM_WARMUP_RUNS = 12

/**
 * Warm a session up with `feeds`: one run natively; on wasm, runs until one is no faster than the one before (V8's
 * optimising tier has taken over), at most WASM_WARMUP_RUNS, so the first request is not the slow one.
 */
export async function warmUp(session: ModelSession, feeds: Record<string, Feed>): Promise<number> {
  let runs = 0
  let last = Infinity
  while (runs < (session.backend === 'wasm' ? WASM_WARMUP_RUNS : 1)) {
    const t = performance.now()
    await session.run(feeds)
    runs++
    const ms = performance.now() - t
    if (ms > 0.9 * last) break
    last = ms
  }

  return runs
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
