/**
 * `npm run bench -- --runtime wasm`: the WebAssembly runtime (onnxruntime-web) against the native one
 * (onnxruntime-node) on this machine, ResNet-18 at 224x224 with threads = cores (src/model/session.ts):
 *   - per-inference time in process, each runtime's session made and warmed up by the factory, runs interleaved;
 *   - the pipeline: `icc serve --runtime X` end to end over its unix socket (decode + inference + host), p50 at
 *     concurrency 1, and the wasm/native ratio of both;
 *   - the first request after `ready` against the steady state, per runtime (the warm-ups' job), the median over
 *     several starts (one first request per start), measured with a client already warmed up.
 * Targets (issue 23): wasm <= 2.6x native per inference; first request within 1.5x of steady state.
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {createServer} from 'node:http'
import {availableParallelism, loadavg, tmpdir} from 'node:os'
import {join} from 'node:path'

import * as modelCore from '../../src/model/index.js'
import {cpuSessionOptions, openSession, warmUp} from '../../src/model/session.js'
import {http, startServe} from '../helpers/serve-host.js'
import {buildModel, photoJpeg} from './inputs.js'
import {median} from './stats.js'

type Backend = modelCore.Backend
const BACKENDS: Backend[] = ['native', 'wasm']

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t = performance.now()
  await f()
  return performance.now() - t
}

/** p50 ms per inference of each runtime, runs interleaved so that the machine's load falls on both alike. */
async function inference(model: modelCore.LoadedModel, n: number): Promise<Record<Backend, number>> {
  const [c, h, w] = model.inputShape
  const feeds = {data: {data: new Float32Array(c * h * w).fill(0.5), dims: [1, c, h, w]}}
  const sessions = []
  for (const b of BACKENDS) {
    const s = await openSession(model.onnxPath, cpuSessionOptions(availableParallelism()), b)
    await warmUp(s, feeds)
    sessions.push(s)
  }

  const samples: number[][] = sessions.map(() => [])
  for (let i = 0; i < n; i++) {
    for (const [k, s] of sessions.entries()) samples[k].push(await timed(() => s.run(feeds)))
  }

  for (const s of sessions) await s.release()
  return {native: median(samples[0]), wasm: median(samples[1])}
}

/**
 * The benchmark's own HTTP client, warmed up on a throwaway local server: the first request measured is the
 * service's first, not this process's first use of node:http's client.
 */
async function warmClient(dir: string, jpeg: Buffer): Promise<void> {
  const socket = join(dir, 'client-warm-up.sock')
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => res.end('[0.5]'))
  })
  await new Promise<void>((resolve) => {
    server.listen(socket, resolve)
  })
  for (let i = 0; i < 5; i++) await http({socket}, 'POST', '/invocations', jpeg, {'content-type': 'image/jpeg'})
  await new Promise((resolve) => {
    server.close(resolve)
  })
}

/** icc serve on `runtime`: its start, its first request after ready, and the p50 of the next `n`. */
async function servedOnce(modelPath: string, runtime: Backend, jpeg: Buffer, dir: string, n: number) {
  const socket = join(dir, `${runtime}.sock`)
  const t0 = performance.now()
  const host = await startServe(['--model', modelPath, '--runtime', runtime, '--cache-dir', join(dir, 'cache')], {
    socket,
    timeoutMs: 300_000,
  })
  const readyMs = performance.now() - t0
  const invoke = async () => {
    const r = await http({socket}, 'POST', '/invocations', jpeg, {'content-type': 'image/jpeg'})
    if (r.status !== 200) throw new Error(`icc serve answered ${r.status}: ${r.body.slice(0, 300)}`)
  }

  try {
    const firstMs = await timed(invoke)
    const steady: number[] = []
    for (let i = 0; i < n; i++) steady.push(await timed(invoke))
    return {firstMs, readyMs, steadyMs: median(steady)}
  } finally {
    await host.stop()
  }
}

/**
 * `starts` starts of icc serve on `runtime` (a first request is one sample per start): the medians of the ready
 * time, the first request, the steady p50 and the first/steady ratio of each start.
 */
async function served(modelPath: string, runtime: Backend, jpeg: Buffer, dir: string, n: number, starts: number) {
  const runs = []
  for (let i = 0; i < starts; i++) runs.push(await servedOnce(modelPath, runtime, jpeg, dir, n))
  return {
    firstMs: median(runs.map((r) => r.firstMs)),
    firstOverSteady: median(runs.map((r) => r.firstMs / r.steadyMs)),
    readyMs: median(runs.map((r) => r.readyMs)),
    starts,
    steadyMs: median(runs.map((r) => r.steadyMs)),
  }
}

export async function runtimeBench(argv: string[]): Promise<void> {
  const quick = argv.includes('--quick')
  const n = quick ? 10 : 40
  const starts = quick ? 3 : 5
  const dir = await mkdtemp(join(tmpdir(), 'icc-bench-rt-'))
  const log = (s: string) => process.stderr.write(`[bench runtime] ${s}\n`)
  try {
    log('building ResNet-18 (224x224, 1000 classes)')
    const m = await buildModel(dir, 18)
    const jpeg = await photoJpeg(224, 224, 224)
    const model = await modelCore.loadModel(m.servePath, {cacheDir: join(dir, 'cache')})
    log('per-inference time, in process')
    const perInference = await inference(model, n)
    await warmClient(dir, jpeg)
    const pipeline: Record<string, Awaited<ReturnType<typeof served>>> = {}
    for (const b of BACKENDS) {
      log(`icc serve --runtime ${b}, ${starts} starts`)
      pipeline[b] = await served(m.servePath, b, jpeg, dir, n, starts)
    }

    const report = {
      cpus: availableParallelism(),
      date: new Date().toISOString(),
      firstOverSteady: Object.fromEntries(BACKENDS.map((b) => [b, pipeline[b].firstOverSteady])),
      inferenceRatio: perInference.wasm / perInference.native,
      loadavgAtStart: loadavg(),
      node: process.version,
      perInferenceMs: perInference,
      pipeline,
      pipelineRatio: pipeline.wasm.steadyMs / pipeline.native.steadyMs,
    }
    const f = (x: number) => x.toFixed(x < 10 ? 2 : 0)
    console.log(JSON.stringify(report, null, 2))
    console.log(
      `ResNet-18 224x224, ${report.cpus} threads: inference native ${f(perInference.native)} ms, wasm ${f(perInference.wasm)} ms (x${f(report.inferenceRatio)}, target <= 2.6: ${report.inferenceRatio <= 2.6 ? 'PASS' : 'FAIL'})`,
    )
    console.log(
      `icc serve p50: native ${f(pipeline.native.steadyMs)} ms, wasm ${f(pipeline.wasm.steadyMs)} ms (pipeline x${f(report.pipelineRatio)})`,
    )
    for (const b of BACKENDS) {
      const r = report.firstOverSteady[b]
      console.log(
        `${b}: ready after ${f(pipeline[b].readyMs)} ms; first request ${f(pipeline[b].firstMs)} ms = x${f(r)} of steady (target <= 1.5: ${r <= 1.5 ? 'PASS' : 'FAIL'})`,
      )
    }
  } finally {
    await rm(dir, {force: true, recursive: true})
  }
}
