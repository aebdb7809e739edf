/**
 * The checks of `icc doctor` for what `icc serve` itself needs (the "icc serve is ready" verdict, `for: "icc"`):
 * the Node.js version, the memory-limit mode serve will use (the same `memoryMode()` as serve), ONNX Runtime's CUDA
 * provider where onnxruntime-node has one, and a model loaded by a real runner of `icc serve` (the same load,
 * session and warm-up), with the measured peak and the memory-limit advice serve gives.
 */
import pino from 'pino'

import type {DoctorCheck} from './doctor-types.js'

import {MIN_NODE} from '../connector/catalog.js'
import {CUDA_PROVIDER_FIX, hasCudaProviderBuild, missingCudaProviderFiles, type Runtime} from '../model/index.js'
import {memoryMode} from '../serve/memory-mode.js'
import {memoryLimitSuggestions} from '../serve/memory.js'
import {Metrics} from '../serve/metrics.js'
import {Service} from '../serve/service.js'

export function checkNode(version = process.versions.node): DoctorCheck {
  const [major, minor] = version.split('.').map(Number)
  const ok = major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1])
  return {
    evidence: {execPath: process.execPath, version},
    fix: ok ? undefined : `Install Node.js ${MIN_NODE.join('.')} or later (20 LTS or 22 LTS).`,
    for: 'icc',
    id: 'node',
    message: `Node.js ${version} (${process.execPath})`,
    status: ok ? 'pass' : 'fail',
    title: `Node.js >= ${MIN_NODE.join('.')}`,
  }
}

/** What `icc serve` will do to enforce --memory-limit-kb here: exactly `memoryMode()`, which serve uses too. */
export async function checkMemoryMode(): Promise<DoctorCheck> {
  const m = await memoryMode()
  const what = {
    'cgroup-v1': 'cgroup v1 hard cap (the kernel enforces the limit)',
    'cgroup-v2': 'cgroup v2 hard cap (the kernel enforces the limit)',
    'rss-watchdog': 'RSS watchdog (icc polls the runner and kills it over the limit; no cgroup available)',
  }[m.mode]
  return {
    evidence: {...m},
    fix: m.hard
      ? undefined
      : 'For a hard cap like the Greengrass core, run icc serve as root or in a cgroup v2 subtree delegated to its user (systemd: Delegate=memory), or with the cgroup v1 memory controller writable.',
    for: 'icc',
    id: 'memory-mode',
    message: `icc serve will use the ${what}${m.reason ? `: ${m.reason}` : ''}`,
    status: m.hard ? 'pass' : 'warn',
    title: 'memory limit mode (icc serve)',
  }
}

/** ONNX Runtime's CUDA provider, on the platforms onnxruntime-node has one for; undefined elsewhere. */
export function checkCudaProvider(): DoctorCheck | undefined {
  if (!hasCudaProviderBuild()) return undefined
  const missing = missingCudaProviderFiles()
  return {
    evidence: {missing, platform: `${process.platform}-${process.arch}`},
    fix: missing.length > 0 ? CUDA_PROVIDER_FIX : undefined,
    for: 'icc',
    id: 'cuda-provider',
    message:
      missing.length > 0
        ? `not installed (missing ${missing.join(', ')}): only --gpu / GPUAcceleration GPU needs it`
        : 'installed (the CUDA 12 runtime and cuDNN 9 are checked when a GPU session starts)',
    status: missing.length > 0 ? 'skip' : 'pass',
    title: 'ONNX Runtime CUDA provider (--gpu)',
  }
}

export interface ModelCheckOptions {
  cacheDir?: string
  inputShape?: number[]
  maxBatch?: number
  memoryLimitKb?: number
  runtime?: Runtime
}

/**
 * Load the model in a real runner of `icc serve` without the memory cap (loadModel with optimisation, the CPU
 * session, the warm-up of one image and of `maxBatch`), read its measured peak and stop it: `Service.measureLoad`,
 * the same measurement as serve's start-up advice.
 */
export async function checkModel(path: string, options: ModelCheckOptions = {}): Promise<DoctorCheck> {
  const title = 'model loads in an icc serve runner'
  const service = {
    allowCpuFallback: false,
    cacheDir: options.cacheDir,
    gpu: false,
    inputShape: options.inputShape,
    logger: pino({level: 'silent'}),
    maxBatch: options.maxBatch,
    memoryLimitKb: options.memoryLimitKb ?? 0,
    metrics: new Metrics(),
    modelPath: path,
    name: 'doctor',
    queueLimit: 1,
    runtime: options.runtime,
    timeoutSeconds: 60,
  }
  try {
    const {info, memoryMode, peakKb} = await Service.measureLoad(service)
    const limit = options.memoryLimitKb
    const over = limit !== undefined && peakKb > limit
    return {
      evidence: {
        inputShape: info.inputShape,
        loadMs: info.loadMs,
        memoryLimitKb: limit,
        memoryMode,
        modelHash: info.modelHash,
        numClasses: info.numClasses,
        peakKb,
        peakRssKb: info.peakRssKb,
        rssKb: info.rssKb,
        runtime: info.runtime,
        warmupMs: info.warmupMs,
        warnings: info.warnings,
      },
      fix: over ? memoryLimitSuggestions(peakKb, {model: path}).join(' ') : undefined,
      for: 'icc',
      id: 'model',
      message: over
        ? `${path}: a complete load peaked at ${peakKb} KB, over --memory-limit-kb ${limit}`
        : `${path}: input ${info.inputShape.join('x')}, ${info.numClasses} classes, loaded in ${info.loadMs} ms, peak ${peakKb} KB`,
      status: over ? 'fail' : 'pass',
      title,
    }
  } catch (error) {
    const e = error as Error & {code?: string; suggestions?: string[]}
    return {
      evidence: {code: e.code, error: e.message},
      fix:
        e.suggestions?.join(' ') ||
        'Check the model path: a SageMaker model.tar.gz, its extracted folder, or an .onnx file.',
      for: 'icc',
      id: 'model',
      message: `${path}: ${e.message}`,
      status: 'fail',
      title,
    }
  }
}
