/**
 * One measurement of `npm run bench -- --memory` (./memory.ts), in a fresh process so that its peak RSS is its own:
 * `convert MODEL CACHE_DIR [--int8 CALIBRATION_DIR OUT]` converts as `icc convert-model` does; `load MODEL CACHE_DIR`
 * loads and warms up as the runner of `icc serve` does (./../../src/serve/runner-main.ts: loadModel, a garbage
 * collection, the runner's session, warm-up runs of batch 1 and 2) and then runs inferences. Prints one JSON line.
 * Run with --expose-gc, as the host starts its runners.
 */
import {readFileSync} from 'node:fs'
import {availableParallelism} from 'node:os'
import * as ort from 'onnxruntime-node'

import * as modelCore from '../../src/model/index.js'
import {cpuSessionOptions} from '../../src/model/session.js'

function statusKb(field: 'VmHWM' | 'VmRSS'): number {
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'))![1])
}

const gc = () => (globalThis as {gc?: () => void}).gc?.()
const [mode, model, cacheDir, ...rest] = process.argv.slice(2)
const t0 = performance.now()
if (mode === 'convert') {
  const int8 = rest[0] === '--int8'
  const output = int8 ? rest[2] : `${cacheDir}/out.onnx`
  const r = await modelCore.convertModel(model, output, {
    cacheDir,
    ...(int8 ? {calibration: rest[1], calibrationCount: 16, quantize: 'int8' as const} : {}),
  })
  process.stdout.write(JSON.stringify({bytes: r.bytes, ms: performance.now() - t0, peakKb: statusKb('VmHWM')}) + '\n')
} else {
  const m = await modelCore.loadModel(model, {cacheDir, optimize: process.env.ICC_BENCH_PLAIN !== '1'})
  gc()
  const session = await modelCore.createCpuSession(m, cpuSessionOptions(availableParallelism()))
  const [c, h, w] = m.inputShape
  const zeros = (n: number) => new ort.Tensor('float32', new Float32Array(n * c * h * w), [n, c, h, w])
  const feed = (n: number) => ({[session.inputNames[0]]: zeros(n)})
  await session.run(feed(1))
  const loadMs = performance.now() - t0
  await session.run(feed(2))
  gc()
  const loadPeakKb = statusKb('VmHWM')
  const runs = Number(rest[0] ?? 20)
  const times: number[] = []
  const x = new Float32Array(c * h * w).map((_, i) => (i * 37) % 255)
  for (let i = 0; i < runs; i++) {
    const t = performance.now()
    await session.run({[session.inputNames[0]]: new ort.Tensor('float32', x, [1, c, h, w])})
    times.push(performance.now() - t)
  }

  times.sort((a, b) => a - b)
  const steadyKb = statusKb('VmRSS')
  const result = {loadMs, loadPeakKb, p50Ms: times[Math.floor(times.length / 2)], peakKb: statusKb('VmHWM'), steadyKb}
  process.stdout.write(JSON.stringify(result) + '\n')
  await session.release()
}
