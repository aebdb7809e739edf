/**
 * The model runner of `icc serve`: one child process per service that owns the ONNX Runtime session and the
 * image preprocessing. The host starts it (through src/system.ts) with its configuration as JSON in the
 * `ICC_RUNNER_CONFIG` environment variable and talks to it over fd 3 with the frames of ./protocol.ts.
 *
 * Life cycle: load the model, create the session (CUDA when asked; CPU fallback only when allowed), run one
 * warm-up inference (per batch size), report `ready` with the model facts and measured load/warm-up time and
 * memory, then serve `infer` frames: each image is decoded as soon as it arrives, and ONNX Runtime runs one batch
 * at a time, in arrival order, of up to `maxBatch` images already decoded (dynamic batching). A failure before
 * `ready` is reported as a `fatal` frame (typed, so the host can fail start-up with the right exit code) and the
 * runner exits. The runner exits when the pipe closes, so it never outlives its host.
 *
 * Memory: each decode is admitted against the memory the limit leaves beside the loaded model
 * (./decode-admission.ts) and tells the host when it starts (a `decoding` frame), so that the host can tell which
 * request pushed a runner over its limit (./service.ts).
 *
 * This module runs the runner when it is the program; {@link runRunner} is exported for a runner that wraps it
 * (the tests' fault runner, test/helpers/fault-runner.ts, started with `icc serve --runner-entry`).
 */
import {realpathSync, rmSync} from 'node:fs'
import {Socket} from 'node:net'
import {availableParallelism} from 'node:os'
import {pathToFileURL} from 'node:url'

import {DependencyError, IccError, isIccError, ModelError} from '../errors.js'
import * as modelCore from '../model/index.js'
import {loadSharp} from '../model/sharp.js'
import {DecodeAdmission} from './decode-admission.js'
import {InferenceLine} from './inference-line.js'
import {procStatusKb} from './memory.js'
import {FrameDecoder, type HostMessage, type RunnerReadyInfo, writeFrame} from './protocol.js'
import {handleServeSignals} from './signals.js'
import {TensorPool} from './tensor-pool.js'
import {tierUpServingCode} from './tuning.js'
import {DEFAULT_MAX_BATCH} from './types.js'

export interface RunnerConfig {
  allowCpuFallback: boolean
  cacheDir?: string
  /** C,H,W for a model without model-shapes.json (else inferred from its parameters). */
  inputShape?: number[]
  labelsFile?: string
  gpu: boolean
  intraOpThreads?: number
  /**
   * Most images in one ONNX Runtime run (dynamic batching of requests already waiting); default
   * DEFAULT_MAX_BATCH (./types.ts), silently 1 for a model that only runs one (a value asked for is warned about).
   */
  maxBatch?: number
  /** Refuse a model whose tensors need more bytes per image (the memory limit; ../model/onnx-export/activations.ts). */
  maxActivationBytes?: number
  /** The runner's memory limit (LocalInferenceServiceMemoryLimitKB): decodes are admitted against it. */
  memoryLimitKb?: number
  modelPath: string
  /** Image preprocessing (default `exact`: the connector's OpenCV arithmetic). */
  resize?: modelCore.ResizeMode
  /** Which ONNX Runtime (../model/session.ts; default: $ICC_RUNTIME, else auto). */
  runtime?: modelCore.Runtime
  serviceName: string
}

/** What a wrapping runner may add (the tests' faults); the shipped runner passes none. */
export interface RunnerHooks {
  /** Runs before the model loads. */
  beforeLoad?(): Promise<void> | void
  /**
   * Sees each request's payload before its decode: returns the image to decode and, optionally, what to run once
   * its decode is admitted (after the host has been told it started).
   */
  beforeDecode?(payload: Buffer): {admitted?: () => Promise<void> | void; image: Buffer}
}

/** One memory field of this runner (KiB, ./memory.ts), else its RSS as Node sees it. */
function ownKb(field: 'RssAnon' | 'VmHWM' | 'VmRSS'): number {
  return procStatusKb('self', [field])[field] ?? Math.round(process.memoryUsage().rss / 1024)
}

async function openSession(
  model: modelCore.LoadedModel,
  config: RunnerConfig,
  warnings: string[],
): Promise<{provider: 'cpu' | 'cuda'; session: modelCore.ModelSession}> {
  if (config.gpu) {
    try {
      return {
        provider: 'cuda',
        session: await modelCore.createSession(model, {
          gpu: true,
          intraOpThreads: config.intraOpThreads ?? availableParallelism(),
          runtime: config.runtime,
        }),
      }
    } catch (error) {
      // the model core's one message and fix for a missing CUDA provider (shared with icc predict --gpu)
      if (!isIccError(error) || error.code !== 'CUDA_UNAVAILABLE') throw error
      if (!config.allowCpuFallback) {
        throw new DependencyError(error.code, `GPUAcceleration is GPU but ${error.message}`, {
          details: error.details,
          suggestions: [error.suggestions[0], 'Or start with --allow-cpu-fallback (or GPUAcceleration CPU).'],
        })
      }

      warnings.push(`GPUAcceleration is GPU but ${error.message}; running on the CPU (--allow-cpu-fallback).`)
    }
  }

  // CPU: the serving options (../model/session.ts), shared with the benchmark's in-process baseline
  const intraOpThreads = config.intraOpThreads ?? availableParallelism()
  const onWarning = (w: string) => warnings.push(w)
  return {
    provider: 'cpu',
    session: await modelCore.createSession(model, {intraOpThreads, onWarning, runtime: config.runtime}),
  }
}

/**
 * Loading a model leaves its bytes (the params and ONNX files, ~100 MB each for a ResNet-50) in Buffers that V8
 * may not collect for a long time, as little else allocates on the JS heap: collect them before the session is
 * created (so the peak stays under the memory limit) and after the warm-up. The host starts runners with
 * --expose-gc; without it this does nothing.
 */
function collectGarbage(): void {
  ;(globalThis as {gc?: () => void}).gc?.()
}

/**
 * Keep a running service's cache entry from `icc cache prune` (../model/cache-care.ts): the record goes when the
 * runner exits, and a record whose process is gone is ignored.
 */
async function holdCacheEntry(cacheDir: string | undefined, model: modelCore.LoadedModel): Promise<void> {
  if (!model.cacheKey) return
  const held = await modelCore.holdEntries(cacheDir ?? modelCore.defaultCacheDir(), [model.cacheKey])
  process.once('exit', () => rmSync(held, {force: true}))
}

/** What the runner serves with, once loaded and warmed up. */
interface Loaded {
  info: RunnerReadyInfo
  maxBatch: number
  model: modelCore.LoadedModel
  session: modelCore.ModelSession
}

type Channel = Socket

/** Run the runner: load, report `ready` (or `fatal`), then serve `infer` frames until the host goes away. */
export async function runRunner(hooks: RunnerHooks = {}): Promise<void> {
  // never Node's inspector on SIGUSR1; SIGUSR2 and SIGHUP do not end the runner (./signals.ts). The line on stdout
  // goes to the host's log
  handleServeSignals((_signal, what) => console.log(what))
  const config = JSON.parse(process.env.ICC_RUNNER_CONFIG ?? '{}') as RunnerConfig
  const channel = openChannel()
  let loaded: Loaded
  try {
    await hooks.beforeLoad?.()
    // the decoder first: a sharp that does not load here (old glibc) fails start-up with its own error (exit 5)
    await loadSharp()
    loaded = await load(config)
  } catch (error) {
    sendFatal(channel, error)
    return
  }

  serveRequests(channel, config, loaded, hooks)
  writeFrame(channel, {info: loaded.info, t: 'ready'})
  // the request path from here on reaches TurboFan within seconds at a low request rate (./tuning.ts)
  tierUpServingCode()
}

/** The host's pipe (fd 3); the runner exits when it closes, so it never outlives its host. */
function openChannel(): Channel {
  const channel = new Socket({allowHalfOpen: false, fd: 3, readable: true, writable: true})
  channel.on('error', () => process.exit(0))
  channel.on('end', () => process.exit(0))
  channel.on('close', () => process.exit(0))
  return channel
}

/** A failure before `ready`, typed for the host (which fails start-up with its exit code); then exit. */
function sendFatal(channel: Channel, error: unknown): void {
  const e = isIccError(error)
    ? error
    : new ModelError('MODEL_LOAD_FAILED', `The model could not be loaded: ${(error as Error)?.message ?? error}`)
  writeFrame(channel, {
    code: e.code,
    details: e.details,
    kind: e.name,
    message: e.message,
    suggestions: e.suggestions,
    t: 'fatal',
  })
  channel.end(() => process.exit(3))
  setTimeout(() => process.exit(3), 1000).unref()
}

/** Load the model, open its session and warm it up; the ready report with the measured times and memory. */
async function load(config: RunnerConfig): Promise<Loaded> {
  const started = performance.now()
  // on the CPU, the model optimised ahead of time (../model/optimize.ts): about one copy of the weights to load
  const model = await modelCore.loadModel(config.modelPath, {
    cacheDir: config.cacheDir,
    optimize: !config.gpu,
    labelsFile: config.labelsFile,
    runtime: config.runtime,
    maxActivationBytes: config.maxActivationBytes,
    shape: config.inputShape,
  })
  await holdCacheEntry(config.cacheDir, model)
  collectGarbage()
  const warnings = [...model.warnings]
  const {provider, session} = await openSession(model, config, warnings)
  const loadMs = performance.now() - started
  const warm = performance.now()
  const maxBatch = await warmUp(session, model.inputShape, config.maxBatch, warnings)
  await warmUpDecode(decodeOptions(config, model), warnings)
  collectGarbage()
  const info: RunnerReadyInfo = {
    inputName: session.inputNames[0],
    inputShape: model.inputShape,
    labels: model.labels,
    loadMs: Math.round(loadMs),
    modelHash: model.hash,
    numClasses: model.numClasses,
    onnxPath: model.onnxPath,
    outputName: session.outputNames[0],
    peakRssKb: ownKb('VmHWM'),
    provider,
    rssKb: ownKb('VmRSS'),
    runtime: session.backend,
    summary: model.summary,
    warmupMs: Math.round(performance.now() - warm),
    warnings,
  }
  return {info, maxBatch, model, session}
}

/**
 * Warm up every batch size the runner will use, so no request pays for a first run (and the peak memory reported
 * includes the largest batch); a model whose batch dimension is fixed runs one image at a time. Returns the
 * batch size served.
 */
async function warmUp(
  session: modelCore.ModelSession,
  [c, h, w]: [number, number, number],
  asked: number | undefined,
  warnings: string[],
): Promise<number> {
  const maxBatch = Math.max(1, asked ?? DEFAULT_MAX_BATCH)
  const zeros = (n: number) => ({data: new Float32Array(n * c * h * w), dims: [n, c, h, w]})
  // on wasm, runs until V8's optimising tier has taken over (../model/session.ts)
  await modelCore.warmUp(session, {[session.inputNames[0]]: zeros(1)})
  if (maxBatch === 1) return 1
  try {
    await session.run({[session.inputNames[0]]: zeros(maxBatch)})
    return maxBatch
  } catch (error) {
    if (asked !== undefined) {
      warnings.push(
        `--max-batch ${maxBatch} is ignored: the model does not run a batch of ${maxBatch} (${firstLine(error)}); it serves one image at a time.`,
      )
    }

    return 1
  }
}

/** How this service decodes an image into its model's input (the requests' and the warm-up's). */
function decodeOptions(config: RunnerConfig, model: modelCore.LoadedModel) {
  const [channels, height, width] = model.inputShape
  return {channels, height, preprocessing: model.preprocessing, resize: config.resize, width}
}

/**
 * Warm the decode path up (../model/decode-warm-up.ts), so the first request does not pay for sharp's and the
 * resize code's first use. A failure here does not stop the service: the requests' decodes report their own errors.
 */
async function warmUpDecode(options: ReturnType<typeof decodeOptions>, warnings: string[]): Promise<void> {
  try {
    await modelCore.warmUpDecode(options, new Float32Array(options.channels * options.height * options.width))
  } catch (error) {
    warnings.push(`The decoder's warm-up failed (${firstLine(error)}); the first request may be slower.`)
  }
}

/**
 * Memory the decodes may use together: the limit less what the loaded model holds (RSS) and a margin for
 * inference; one decode alone may use the limit less the runner's anonymous memory (./decode-admission.ts).
 */
function decodeBudget(config: RunnerConfig, info: RunnerReadyInfo): DecodeAdmission {
  const limitKb = config.memoryLimitKb ?? Number.MAX_SAFE_INTEGER / 1024
  const marginKb = Math.max(16 * 1024, limitKb * 0.05)
  const together = Math.max(0, (limitKb - info.rssKb - marginKb) * 1024)
  const alone = Math.max(0, (limitKb - ownKb('RssAnon')) * 1024)
  return new DecodeAdmission(together, alone, limitKb, collectGarbage)
}

type Decoded = {decodeMs: number; tensor: Float32Array}

/** Serve `infer` frames: decode each at once (admitted against the budget), infer in batches, in order. */
function serveRequests(channel: Channel, config: RunnerConfig, loaded: Loaded, hooks: RunnerHooks): void {
  const {maxBatch, model} = loaded
  const [c, h, w] = model.inputShape
  // input tensors are reused (./tensor-pool.ts): as many as the host keeps in flight (2 x maxBatch), and one more
  const tensors = new TensorPool(c * h * w, 2 * maxBatch + 1)
  const admission = decodeBudget(config, loaded.info)
  const options = decodeOptions(config, model)

  // stage 1, started as soon as a frame arrives: decode/resize (sharp works on its own threads, so the next images
  // are decoded while ONNX Runtime runs the current batch)
  const decode = async (header: HostMessage, payload: Buffer): Promise<Decoded> => {
    const {admitted, image} = hooks.beforeDecode?.(payload) ?? {image: payload}
    const reserve = async (bytes: number, size: {height: number; width: number}) => {
      const release = await admission.reserve(bytes, size)
      writeFrame(channel, {id: header.id, t: 'decoding'})
      await admitted?.()
      return release
    }

    const t0 = performance.now()
    const tensor = await tensors.fill((t) =>
      modelCore.preprocessInto(image, {...options, contentType: header.contentType, reserve}, t, 0),
    )
    return {decodeMs: performance.now() - t0, tensor}
  }

  // stage 2, in arrival order: inference, in batches of the images already decoded (./inference-line.ts)
  const line = new InferenceLine<HostMessage, Decoded>({
    fail: (header, error) => sendError(channel, header.id, error),
    maxBatch,
    run: async (batch) => runBatch(channel, loaded, tensors, batch),
  })

  const decoder = new FrameDecoder<HostMessage>(({header, payload}) => {
    if (header.t === 'infer') line.add(header, decode(header, payload))
  })
  channel.on('data', (chunk: Buffer) => decoder.push(chunk))
}

function sendError(channel: Channel, id: number, error: unknown): void {
  const code = error instanceof IccError ? error.code : 'INTERNAL'
  writeFrame(channel, {code, id, message: (error as Error).message, t: 'error'})
}

/** One ONNX Runtime run of a batch; its answers leave together (one writev, one wake-up of the host). */
async function runBatch(
  channel: Channel,
  {info, model, session}: Loaded,
  tensors: TensorPool,
  batch: {header: HostMessage; value: Decoded}[],
): Promise<void> {
  const [c, h, w] = model.inputShape
  const chw = c * h * w
  try {
    let input = batch[0].value.tensor
    if (batch.length > 1) {
      input = tensors.batch(batch.length)
      for (const [i, job] of batch.entries()) input.set(job.value.tensor, i * chw)
    }

    const t1 = performance.now()
    const out = await session.run({[info.inputName]: {data: input, dims: [batch.length, c, h, w]}})
    const inferenceMs = performance.now() - t1
    const data = out[info.outputName]
    const classes = data.length / batch.length
    channel.cork()
    try {
      for (const [i, job] of batch.entries()) {
        const start = data.byteOffset + i * classes * 4
        writeFrame(
          channel,
          {batch: batch.length, decodeMs: job.value.decodeMs, id: job.header.id, inferenceMs, t: 'result'},
          new Uint8Array(data.buffer, start, classes * 4),
        )
      }
    } finally {
      channel.uncork()
    }
  } catch (error) {
    for (const job of batch) sendError(channel, job.header.id, error)
  } finally {
    // ONNX Runtime is done with the inputs (the answers are views of its output, not of these)
    for (const job of batch) tensors.give(job.value.tensor)
  }
}

function firstLine(error: unknown): string {
  return String((error as Error)?.message ?? error).split('\n')[0]
}

/** Whether this module is the program (`node runner-main.js`), not imported by a wrapping runner. */
function isEntry(): boolean {
  try {
    return Boolean(process.argv[1]) && pathToFileURL(realpathSync(process.argv[1])).href === import.meta.url
  } catch {
    return false
  }
}

if (isEntry()) await runRunner()
