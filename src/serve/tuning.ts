/**
 * Performance settings of `icc serve`, chosen with `npm run bench` on a 2-core machine (docs/performance.md has
 * the figures, docs/performance-log.md each measurement). The runner's are kept in one place so the benchmark's
 * in-process baseline uses exactly what the runner uses.
 *
 * - ONNX Runtime CPU session (cpuSessionOptions in ../model/session.ts, the one session factory): graph
 *   optimisation 'all' (the NCHWc layout transform alone is worth ~40% on
 *   ResNets vs 'extended'), sequential execution with one inter-op thread (the parallel executor halved the
 *   throughput), intra-op threads = the cores, and no spin-waiting of the intra-op threads after each operator:
 *   spinning burnt the CPU that the host and the next image's JPEG decode need (+6% throughput at concurrency 4,
 *   same latency at concurrency 1).
 * - glibc malloc in the runner: fixed trim/mmap thresholds (128 KiB), so the memory ONNX Runtime frees after
 *   loading a model (the protobuf copy of the weights) goes back to the system instead of staying in the heap:
 *   ResNet-50 runner RSS ~320 MB -> ~200 MB, same speed. An explicit setting in the environment wins.
 * - V8 in host and runner, once they serve: a young generation held small in the host (holdHostYoungGeneration),
 *   and a lower interrupt budget in both (tierUpServingCode), so the request path is compiled by TurboFan within
 *   seconds instead of a minute or more at a low request rate.
 * - A full garbage collection in the host when it goes idle after big uploads (fullGc, ./http-io.ts ByteBudget),
 *   so that the bodies' memory goes back to the system.
 */
import {setFlagsFromString} from 'node:v8'
import {runInNewContext} from 'node:vm'

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
 * ~40 MB lower (docs/performance-log.md).
 *
 * The flag is one V8 reads whenever it would grow the young generation, so setting it at run time takes effect
 * (`--max-semi-space-size` does not: V8 reads it only at start-up). A semi-space flag given on the command line or
 * in NODE_OPTIONS wins: then nothing is set. Returns whether the hold was set.
 */
export function holdHostYoungGeneration(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions = process.env.NODE_OPTIONS ?? '',
): boolean {
  return setUnlessGiven(/--(max[-_]|min[-_])?semi[-_]space/, '--semi-space-growth-factor=1', execArgv, nodeOptions)
}

/** V8's interrupt budget (bytes of bytecode a function runs between two of its tiering checks) once serving. */
export const SERVING_INTERRUPT_BUDGET = 4096

/**
 * Lower V8's interrupt budget from its default (66 KiB of bytecode) to {@link SERVING_INTERRUPT_BUDGET}: the host
 * calls this once it is ready, the runner once its model is loaded (and the benchmark's in-process floor, so it
 * runs as the runner does). V8 hands a function to TurboFan after it has run a few budgets' worth of bytecode; a
 * request runs each function of its path once or twice, so at a low request rate the path stayed in V8's baseline
 * code for a minute or more (the `^` frames of a perf profile, time in inline-cache stubs and call builtins), and
 * each ONNX Runtime run between two requests evicts what the CPU caches held of it. Two hosts side by side
 * (ResNet-18, 224x224, concurrency 1, the first ~20 s of their life, as `npm run bench` measures it): the time a
 * request spends outside decode and inference fell by 0.32-0.37 ms (1.75-1.84 -> 1.43-1.47 ms on a slow phase of
 * the CI machine), a sixth of that in the runner; after a minute of load still by 0.11 ms. 16384 kept half of the
 * gain, 1024 bought no more than noise. Set at run time, the flag is read whenever a function's budget is renewed:
 * code already warm from start-up follows at its next check, and start-up itself is not affected. A budget flag on
 * the command line wins: then nothing is set. Returns whether it was set.
 */
export function tierUpServingCode(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions = process.env.NODE_OPTIONS ?? '',
): boolean {
  return setUnlessGiven(
    /--interrupt[-_]budget/,
    `--interrupt-budget=${SERVING_INTERRUPT_BUDGET}`,
    execArgv,
    nodeOptions,
  )
}

/** Set a V8 flag at run time unless the user's command line or NODE_OPTIONS has one that `given` matches. */
function setUnlessGiven(given: RegExp, flag: string, execArgv: readonly string[], nodeOptions: string): boolean {
  if ([...execArgv, nodeOptions].some((a) => given.test(a))) return false
  setFlagsFromString(flag)
  return true
}

/**
 * V8's full garbage collection as a function, for the host to give request bodies' memory back when it goes idle
 * (./http-io.ts ByteBudget); undefined where it cannot be had. Node exposes `gc` only with --expose-gc: given on
 * the command line, `globalThis.gc` is used; otherwise the flag is set at run time and `gc` taken from a new
 * context (the main context's global stays as it is). One collection of the host's heap takes a few ms.
 */
export function fullGc(): (() => void) | undefined {
  const given = (globalThis as {gc?: unknown}).gc
  if (typeof given === 'function') return given as () => void
  try {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as unknown
    return typeof gc === 'function' ? (gc as () => void) : undefined
  } catch {
    return undefined
  }
}
