/**
 * Performance settings of `icc serve`, chosen with `npm run bench` on a 2-core machine (README, section
 * "Performance", has the figures). The runner's are kept in one place so the benchmark's in-process baseline uses
 * exactly what the runner uses.
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

import {setFlagsFromString} from 'node:v8'

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

/**
 * The host's V8 young generation stops growing: `bin/run.js` calls this before anything loads for `icc serve`, so
 * the new space stays at 2 MB (1 MB a semi-space) instead of doubling up to 32 MB; `serve()` calls it too, for
 * a host started from code (it then holds the size reached so far). Why: request bodies live in ArrayBuffers
 * outside the JS heap, which only a scavenge of the young generation frees young; with a grown young generation the
 * host scavenged about once in 10 s, the bodies' memory piled up, and V8 answered the external memory with full
 * mark-compacts, about two a second with 74 KB JPEGs (~5-20 ms of CPU each): ~0.3 ms of host CPU per request, in
 * some runs only, depending on how the heap had grown before. Held small, the young generation is scavenged several
 * times a second (~1 ms each), the bodies are freed young, and no mark-compact is needed: host CPU per request at
 * 640x480, concurrency 4, 1.08-1.13 -> 0.78-0.79 ms in the runs that had them, and the host's RSS under load
 * ~40 MB lower (README, "Performance").
 *
 * The flag is one V8 reads whenever it would grow the young generation, so setting it at run time takes effect
 * (`--max-semi-space-size` does not: V8 reads it only at start-up). A semi-space flag given on the command line or
 * in NODE_OPTIONS wins: then nothing is set. Returns whether the hold was set.
 */
export function holdHostYoungGeneration(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions = process.env.NODE_OPTIONS ?? '',
): boolean {
  if ([...execArgv, nodeOptions].some((a) => /--(max[-_]|min[-_])?semi[-_]space/.test(a))) return false
  setFlagsFromString('--semi-space-growth-factor=1')
  return true
}
