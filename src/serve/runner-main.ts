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
 * runner exits. The runner exits when the pipe closes, so it
 * never outlives its host.
 *
 * Test hooks (`ICC_TEST_HOOKS=1` only; ignored otherwise): a request may carry `hang` (busy-loop, blocking the
 * event loop as a stuck native call would), `sleep:MS`, `crash` (exit 70 at once) or `alloc:MB` (touch that
 * much memory and hold it for a while); the env `ICC_TEST_LOAD_ALLOC_MB` allocates memory while loading.
 */
import {readFileSync, rmSync} from 'node:fs'
import {Socket} from 'node:net'
import {availableParallelism} from 'node:os'
import sharp from 'sharp'

import {DependencyError, IccError, isIccError, ModelError} from '../errors.js'
import * as modelCore from '../model/index.js'
import {InferenceLine} from './inference-line.js'
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
  modelPath: string
  /** Image preprocessing (default `exact`: the connector's OpenCV arithmetic). */
  resize?: modelCore.ResizeMode
  /** Which ONNX Runtime (../model/session.ts; default: $ICC_RUNTIME, else auto). */
  runtime?: modelCore.Runtime
  serviceName: string
}

const hooksEnabled = process.env.ICC_TEST_HOOKS === '1'
const held: Buffer[] = []

function procStatusKb(field: 'VmHWM' | 'VmRSS'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'))
    return m ? Number(m[1]) : Math.round(process.memoryUsage().rss / 1024)
  } catch {
    return Math.round(process.memoryUsage().rss / 1024)
  }
}

function touchMemory(mb: number): void {
  const b = Buffer.allocUnsafe(mb * 1024 * 1024)
  for (let i = 0; i < b.length; i += 4096) b[i] = 1
  held.push(b)
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

async function main(): Promise<void> {
  // never Node's inspector on SIGUSR1; SIGUSR2 and SIGHUP do not end the runner (./signals.ts). The line on stdout
  // goes to the host's log
  handleServeSignals((_signal, what) => console.log(what))
  // libvips' operation cache (up to 50 MB) never hits here: every request is a new image
  sharp.cache(false)
  const config = JSON.parse(process.env.ICC_RUNNER_CONFIG ?? '{}') as RunnerConfig
  const channel = new Socket({allowHalfOpen: false, fd: 3, readable: true, writable: true})
  channel.on('error', () => process.exit(0))
  channel.on('end', () => process.exit(0))
  channel.on('close', () => process.exit(0))

  const fatal = (error: unknown): void => {
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

  let session: modelCore.ModelSession
  let maxBatch = Math.max(1, config.maxBatch ?? DEFAULT_MAX_BATCH)
  let model: modelCore.LoadedModel
  let info: RunnerReadyInfo
  try {
    const started = performance.now()
    if (hooksEnabled && process.env.ICC_TEST_LOAD_ALLOC_MB) touchMemory(Number(process.env.ICC_TEST_LOAD_ALLOC_MB))
    // on the CPU, the model optimised ahead of time (../model/optimize.ts): about one copy of the weights to load
    model = await modelCore.loadModel(config.modelPath, {
      cacheDir: config.cacheDir,
      optimize: !config.gpu,
      labelsFile: config.labelsFile,
      runtime: config.runtime,
      shape: config.inputShape,
    })
    await holdCacheEntry(config.cacheDir, model)
    collectGarbage()
    const warnings = [...model.warnings]
    const opened = await openSession(model, config, warnings)
    session = opened.session
    const loadMs = performance.now() - started
    const [c, h, w] = model.inputShape
    const warm = performance.now()
    // warm up every batch size the runner will use, so no request pays for a first run (and the peak memory
    // reported below includes the largest batch); a model whose batch dimension is fixed runs one image at a time
    const zeros = (n: number) => ({data: new Float32Array(n * c * h * w), dims: [n, c, h, w]})
    // on wasm, runs until V8's optimising tier has taken over (../model/session.ts)
    await modelCore.warmUp(session, {[session.inputNames[0]]: zeros(1)})
    if (maxBatch > 1) {
      try {
        await session.run({[session.inputNames[0]]: zeros(maxBatch)})
      } catch (error) {
        if (config.maxBatch !== undefined) {
          warnings.push(
            `--max-batch ${maxBatch} is ignored: the model does not run a batch of ${maxBatch} (${firstLine(error)}); it serves one image at a time.`,
          )
        }

        maxBatch = 1
      }
    }

    collectGarbage()
    info = {
      inputName: session.inputNames[0],
      inputShape: model.inputShape,
      labels: model.labels,
      loadMs: Math.round(loadMs),
      modelHash: model.hash,
      numClasses: model.numClasses,
      onnxPath: model.onnxPath,
      outputName: session.outputNames[0],
      peakRssKb: procStatusKb('VmHWM'),
      provider: opened.provider,
      rssKb: procStatusKb('VmRSS'),
      runtime: session.backend,
      summary: model.summary,
      warmupMs: Math.round(performance.now() - warm),
      warnings,
    }
  } catch (error) {
    fatal(error)
    return
  }

  const [c, h, w] = model.inputShape
  const chw = c * h * w
  type Decoded = {decodeMs: number; tensor: Float32Array}
  // input tensors are reused (./tensor-pool.ts): as many as the host keeps in flight (2 x maxBatch), and one more
  const tensors = new TensorPool(chw, 2 * maxBatch + 1)

  // stage 1, started as soon as a frame arrives: hooks + decode/resize (sharp works on its own threads, so the next
  // images are decoded while ONNX Runtime runs the current batch)
  const decode = async (header: HostMessage, payload: Buffer): Promise<Decoded> => {
    if (hooksEnabled && header.hook) await runHook(header.hook)
    const t0 = performance.now()
    const options = {
      channels: c,
      contentType: header.contentType,
      height: h,
      preprocessing: model.preprocessing,
      resize: config.resize,
      width: w,
    }
    const tensor = await tensors.fill((t) => modelCore.preprocessInto(payload, options, t, 0))
    return {decodeMs: performance.now() - t0, tensor}
  }

  const sendError = (id: number, error: unknown): void => {
    const code = error instanceof IccError ? error.code : 'INTERNAL'
    writeFrame(channel, {code, id, message: (error as Error).message, t: 'error'})
  }

  // stage 2, in arrival order: inference, in batches of the images already decoded (./inference-line.ts)
  const line = new InferenceLine<HostMessage, Decoded>({
    fail: (header, error) => sendError(header.id, error),
    maxBatch,
    async run(batch) {
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
        // the answers of one run leave together (one writev, one wake-up of the host)
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
        for (const job of batch) sendError(job.header.id, error)
      } finally {
        // ONNX Runtime is done with the inputs (the answers are views of its output, not of these)
        for (const job of batch) tensors.give(job.value.tensor)
      }
    },
  })

  const decoder = new FrameDecoder<HostMessage>(({header, payload}) => {
    if (header.t === 'infer') line.add(header, decode(header, payload))
  })
  channel.on('data', (chunk: Buffer) => decoder.push(chunk))
  writeFrame(channel, {info, t: 'ready'})
  // the request path from here on reaches TurboFan within seconds at a low request rate (./tuning.ts)
  tierUpServingCode()
}

async function runHook(hook: string): Promise<void> {
  const [name, arg] = hook.split(':')
  switch (name) {
    case 'alloc': {
      touchMemory(Number(arg || 256))
      await new Promise((r) => {
        setTimeout(r, 3000)
      })
      break
    }

    case 'crash': {
      process.exit(70)
      break
    }

    case 'hang': {
      const until = Date.now() + 10 * 60_000
      while (Date.now() < until) {
        // a stuck computation: the event loop never comes back
      }

      break
    }

    case 'sleep': {
      await new Promise((r) => {
        setTimeout(r, Number(arg || 1000))
      })
      break
    }

    default:
  }
}

await main()

function firstLine(error: unknown): string {
  return String((error as Error)?.message ?? error).split('\n')[0]
}
