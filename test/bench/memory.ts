/**
 * `npm run bench -- --memory`: how memory and load time grow with the model (a benchmark, never part of `npm test`).
 *
 * For each ResNet depth (1000 classes, 224x224, written by src/model/writer.ts once into a kept temp folder), each
 * figure from a fresh process (./memory-child.ts) so its peak RSS (VmHWM) is its own, with the runner's malloc
 * settings: the float32 conversion's peak (`icc convert-model`); the runner's complete load (conversion, the model
 * optimised ahead of time, session, warm-up of batch 1 and 2) from a cold cache and from the cache, its peak, its
 * time, the RSS after inferences and their p50; the same for the int8 model (`convert-model --quantize int8`,
 * calibrated on 16 photo-like JPEGs; loaded as a user's .onnx); and `icc serve --memory-limit-kb 500000` (the
 * connector's example limit) from an empty cache, conversion included, answering one photo. The table goes to stdout and, with --doc, between
 * the markers of docs/performance.md, where the rows measured replace those of the same model and precision (the
 * others stay: `--depths 18 --no-int8 --doc` updates one row).
 *
 * Usage: npm run bench -- --memory [--depths 18,34,50,101,152,200] [--no-int8 | --no-float] [--runs 20] [--doc]
 * (--no-float: only the int8 rows; --doc replaces only the rows measured, by model and kind, keeping the others)
 */
import {execa} from 'execa'
import {existsSync} from 'node:fs'
import {mkdir, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {runnerMallocEnv} from '../../src/serve/tuning.js'
import {writeModelDir} from '../helpers/model-fixtures.js'
import {http, type RunningHost, startServe} from '../helpers/serve-host.js'
import {CLASSES, photoJpeg} from './inputs.js'

const MARK_START = '<!-- bench:memory:start -->'
const MARK_END = '<!-- bench:memory:end -->'
const CHILD = new URL('memory-child.js', import.meta.url).pathname

interface Measure {
  bytes?: number
  loadMs?: number
  loadPeakKb?: number
  ms?: number
  p50Ms?: number
  peakKb?: number
  steadyKb?: number
}

async function child(args: string[]): Promise<Measure> {
  const r = await execa(process.execPath, ['--expose-gc', CHILD, ...args], {
    env: {...process.env, ...runnerMallocEnv()},
    reject: false,
  })
  if (r.exitCode !== 0) throw new Error(`memory-child ${args.join(' ')}: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Measure
}

const mb = (kb?: number) => (kb === undefined ? '-' : `${Math.round(kb / 1024)}`)
const sec = (ms?: number) => (ms === undefined ? '-' : (ms / 1000).toFixed(1))

/** The table's rows: `old`'s (the document's) with those measured now put in place of theirs, or added. */
function mergeRows(old: string, rows: string[]): string[] {
  const key = (row: string) => row.split('|')[1].trim()
  const measured = new Map(rows.map((r) => [key(r), r]))
  const kept = old
    .split('\n')
    .filter((l) => l.startsWith('| ResNet-'))
    .map((l) => measured.get(key(l)) ?? l)
  const added = rows.filter((r) => !kept.includes(r))
  const depth = (row: string) => Number(/ResNet-(\d+)/.exec(row)![1])
  return [...kept, ...added].sort((a, b) => depth(a) - depth(b) || (key(a) < key(b) ? -1 : 1))
}

/** One depth's measurements: its model, a cache folder of its own (removed before and after), what to run. */
interface DepthRun {
  cache: string
  calibration: string
  depth: number
  jpeg: Uint8Array
  model: string
  runs: string
}

/** The float32 row: conversion, load cold and cached, and `icc serve` under the connector's example limit. */
async function floatRow(r: DepthRun): Promise<string> {
  const paramsMb = (await stat(join(r.model, 'image-classification-0001.params'))).size / 2 ** 20
  const convert = await child(['convert', r.model, join(r.cache, 'convert')])
  const cold = await child(['load', r.model, join(r.cache, 'serve'), r.runs])
  const warm = await child(['load', r.model, join(r.cache, 'serve'), r.runs])
  const served = await serveAtLimit(r.model, join(r.cache, 'limit'), r.jpeg)
  return `| ResNet-${r.depth} float32 | ${paramsMb.toFixed(0)} | ${mb(convert.peakKb)} | ${mb(cold.loadPeakKb)} / ${mb(warm.loadPeakKb)} | ${mb(warm.steadyKb)} | ${sec(cold.loadMs)} / ${sec(warm.loadMs)} | ${warm.p50Ms?.toFixed(0)} | ${served} |`
}

/** The int8 row: `convert-model --quantize int8`, then its .onnx loaded and served as a user's model. */
async function int8Row(r: DepthRun): Promise<string> {
  const out = join(r.cache, `resnet${r.depth}.int8.onnx`)
  // a cache of its own: the float conversion is part of a first `convert-model --quantize int8`
  const q = await child(['convert', r.model, join(r.cache, 'convert-int8'), '--int8', r.calibration, out])
  const first = await child(['load', out, join(r.cache, 'serve'), r.runs])
  const again = await child(['load', out, join(r.cache, 'serve'), r.runs])
  const served = await serveAtLimit(out, join(r.cache, 'limit-int8'), r.jpeg)
  const qMb = (q.bytes ?? 0) / 2 ** 20
  return `| ResNet-${r.depth} int8 | (${qMb.toFixed(0)}) | ${mb(q.peakKb)} | ${mb(first.loadPeakKb)} / ${mb(again.loadPeakKb)} | ${mb(again.steadyKb)} | ${sec(first.loadMs)} / ${sec(again.loadMs)} | ${again.p50Ms?.toFixed(0)} | ${served} |`
}

/**
 * `icc serve --model MODEL --memory-limit-kb 500000` (the connector's example limit) from the empty cache `cache`,
 * conversion included, and one photo sent to it: "ready in N s, answered", or what went wrong.
 */
async function serveAtLimit(model: string, cache: string, jpeg: Uint8Array): Promise<string> {
  await mkdir(cache, {recursive: true})
  const socket = join(cache, 'icc.sock')
  const t0 = performance.now()
  let host: RunningHost
  try {
    const args = ['--model', model, '--memory-limit-kb', '500000', '--cache-dir', cache]
    host = await startServe(args, {socket, timeoutMs: 600_000})
  } catch (error) {
    process.stderr.write(`[bench --memory] ${(error as Error).message}\n`)
    return '**not ready**'
  }

  try {
    const ready = (performance.now() - t0) / 1000
    const res = await http({socket}, 'POST', '/invocations', jpeg, {'content-type': 'image/jpeg'})
    return res.status === 200 ? `ready in ${ready.toFixed(1)} s, answered` : `**answered ${res.status}**`
  } finally {
    await host.stop()
  }
}

export async function memoryBench(argv: string[]): Promise<void> {
  const arg = (name: string, d: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : d)
  const depths = arg('--depths', '18,34,50,101,152,200').split(',').map(Number)
  const runs = arg('--runs', '20')
  const int8 = !argv.includes('--no-int8')
  const float = !argv.includes('--no-float')
  const root = join(tmpdir(), 'icc-bench-memory')
  const log = (s: string) => process.stderr.write(`[bench --memory] ${s}\n`)
  const calibration = join(root, 'calibration')
  if (int8 && !existsSync(join(calibration, '15.jpg'))) {
    await mkdir(calibration, {recursive: true})
    for (let i = 0; i < 16; i++) await writeFile(join(calibration, `${i}.jpg`), await photoJpeg(320, 240, 100 + i))
  }

  const header =
    '| model | params MB | convert peak MB | load peak MB, cold / cached | steady RSS MB | load s, cold / cached | p50 ms | `serve --memory-limit-kb 500000`, cold |\n' +
    '| --- | --- | --- | --- | --- | --- | --- | --- |'
  const jpeg = await photoJpeg(640, 480, 7)
  const rows: string[] = []
  for (const depth of depths) {
    const model = join(root, `resnet${depth}`)
    if (!existsSync(join(model, 'model-shapes.json'))) {
      log(`writing ResNet-${depth}`)
      await writeModelDir(model, {format: 'V2', imageShape: [3, 224, 224], numClasses: CLASSES, numLayers: depth})
    }

    const cache = join(root, `cache-${depth}`)
    await rm(cache, {force: true, recursive: true})
    const run: DepthRun = {cache, calibration, depth, jpeg, model, runs}
    if (float) rows.push(await floatRow(run))
    if (float) log(rows.at(-1)!)
    if (int8) rows.push(await int8Row(run))
    if (int8) log(rows.at(-1)!)
    await rm(cache, {force: true, recursive: true})
  }

  const table = `${header}\n${rows.join('\n')}`
  process.stdout.write(table + '\n')
  if (argv.includes('--doc')) {
    const doc = new URL('../../../docs/performance.md', import.meta.url).pathname
    const text = await readFile(doc, 'utf8')
    const [before, rest] = text.split(MARK_START)
    const [old, after] = rest.split(MARK_END)
    await writeFile(doc, `${before}${MARK_START}\n${header}\n${mergeRows(old, rows).join('\n')}\n${MARK_END}${after}`)
  }
}
