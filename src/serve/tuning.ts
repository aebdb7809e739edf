/**
 * Performance settings of the model runner, chosen with `npm run bench` on a 2-core machine (README, section
 * "Performance", has the figures). Kept in one place so the benchmark's in-process baseline uses exactly what the
 * runner uses.
 *
 * - ONNX Runtime CPU session: graph optimisation 'all' (the NCHWc layout transform alone is worth ~40% on
 *   ResNets vs 'extended'), sequential execution with one inter-op thread (the parallel executor halved the
 *   throughput), intra-op threads = the cores, and no spin-waiting of the intra-op threads after each operator:
 *   spinning burnt the CPU that the host and the next image's JPEG decode need (+6% throughput at concurrency 4,
 *   same latency at concurrency 1).
 * - glibc malloc in the runner: fixed trim/mmap thresholds (128 KiB), so the memory ONNX Runtime frees after
 *   loading a model (the protobuf copy of the weights) goes back to the system instead of staying in the heap:
 *   ResNet-50 runner RSS ~320 MB -> ~200 MB, same speed. An explicit setting in the environment wins.
 */
import type {InferenceSession} from 'onnxruntime-node'

export function cpuSessionOptions(intraOpThreads: number): InferenceSession.SessionOptions {
  return {
    executionMode: 'sequential',
    executionProviders: ['cpu'],
    extra: {session: {intra_op: {allow_spinning: '0'}}},
    graphOptimizationLevel: 'all',
    interOpNumThreads: 1,
    intraOpNumThreads: intraOpThreads,
  }
}

/** Environment for a runner process (see above); values already set in `env` are kept. */
export function runnerMallocEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return {
    MALLOC_MMAP_THRESHOLD_: env.MALLOC_MMAP_THRESHOLD_ ?? '131072',
    MALLOC_TRIM_THRESHOLD_: env.MALLOC_TRIM_THRESHOLD_ ?? '131072',
  }
}
