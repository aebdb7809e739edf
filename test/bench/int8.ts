/**
 * `npm run bench:int8`: what `icc convert-model --quantize int8` buys (a benchmark, never part of `npm test`).
 *
 * For ResNet-18 and ResNet-50 (1000 classes, written by the project's writer): calibrate on 32 photo-like JPEGs,
 * then, in this process with the runner's session options, measure side by side (taking turns, request by
 * request) the float32 and the int8 model: inference p50, the whole pipeline p50 (decode + resize + inference of
 * a 640x480 JPEG), throughput at concurrency 4 and the size of the model file; and, on 200 other JPEGs, the top-1
 * agreement of the two, how many classes float32 chose (the writer's weights are untrained: a few classes win
 * every image, so agreement is easy there) and how far the probabilities move. Then the real trained model of ../shared (the fashion-MNIST LeNet, when present): top-1
 * agreement and accuracy against the labels on its 1000 test images, calibrated on every 10th.
 *
 * Usage: node dist/test/bench/int8.js [--quick] [--out FILE] [--models 18,50]
 */
import {readdirSync} from 'node:fs'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {availableParallelism, tmpdir} from 'node:os'
import {join} from 'node:path'
import * as ort from 'onnxruntime-node'
import sharp from 'sharp'

import * as modelCore from '../../src/model/index.js'
import {quantizeInt8} from '../../src/model/quantize.js'
import {cpuSessionOptions} from '../../src/model/session.js'
import {SHARED} from '../helpers/cli.js'
import {buildModel, type Depth, photoJpeg} from './inputs.js'
import {median, throughput} from './stats.js'

const argv = process.argv.slice(2)
const quick = argv.includes('--quick')
const out = argv.includes('--out') ? argv[argv.indexOf('--out') + 1] : undefined
const depths = (argv.includes('--models') ? argv[argv.indexOf('--models') + 1] : '18,50')
  .split(',')
  .map(Number) as Depth[]
const started = Date.now()
const log = (s: string) => process.stderr.write(`[int8 ${((Date.now() - started) / 1000).toFixed(0)}s] ${s}\n`)
const argmax = (v: ArrayLike<number>) => {
  let best = 0
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i
  return best
}

async function resnets(dir: string, report: Record<string, unknown>): Promise<void> {
  const n = {agreement: quick ? 50 : 200, calibration: 32, latency: quick ? 30 : 80, throughputMs: quick ? 2000 : 4000}
  const jpegs = await Promise.all(
    Array.from({length: n.calibration + n.agreement}, async (_, i) => photoJpeg(640, 480, 1000 + i)),
  )
  for (const depth of depths) {
    const m = await buildModel(dir, depth)
    const loaded = await modelCore.loadModel(m.servePath, {cacheDir: join(dir, 'cache')})
    const [c, h, w] = loaded.inputShape
    const pre = async (jpeg: Buffer) =>
      modelCore.preprocessImage(jpeg, {channels: c, height: h, preprocessing: loaded.preprocessing, width: w})
    const tensors = await Promise.all(jpegs.map(async (j) => pre(j)))
    const float = await readFile(loaded.onnxPath)
    const t0 = performance.now()
    const int8Path = join(dir, `resnet${depth}.int8.onnx`)
    const q = await quantizeInt8(loaded.onnxPath, int8Path, {
      calibration: tensors.slice(0, n.calibration),
      inputShape: [c, h, w],
    })
    const quantizeMs = performance.now() - t0
    log(`resnet${depth}: quantized in ${quantizeMs.toFixed(0)} ms (${q.convolutions} convolutions)`)
    const options = cpuSessionOptions(availableParallelism())
    const sessions = {
      float32: await ort.InferenceSession.create(float, options),
      int8: await ort.InferenceSession.create(int8Path, options),
    }
    const run = async (s: ort.InferenceSession, x: Float32Array) =>
      (await s.run({[s.inputNames[0]]: new ort.Tensor('float32', x, [1, c, h, w])}))[s.outputNames[0]]
        .data as Float32Array
    // on images that were not used for calibration: top-1 agreement, how many classes float32 chose at all (the
    // writer's weights are not trained: a few classes win everything, which makes agreement easy), and how far the
    // probabilities move
    let agree = 0
    let maxDiff = 0
    let sumDiff = 0
    let count = 0
    const classes = new Set<number>()
    for (const x of tensors.slice(n.calibration)) {
      const a = await run(sessions.float32, x)
      const b = await run(sessions.int8, x)
      classes.add(argmax(a))
      if (argmax(a) === argmax(b)) agree++
      for (const [k, v] of a.entries()) {
        const d = Math.abs(v - b[k])
        maxDiff = Math.max(maxDiff, d)
        sumDiff += d
        count++
      }
    }

    // latency, taking turns; the pipeline includes decoding the 640x480 JPEG
    const lat: Record<string, {inference: number[]; pipeline: number[]}> = {
      float32: {inference: [], pipeline: []},
      int8: {inference: [], pipeline: []},
    }
    for (let i = 0; i < n.latency + 5; i++) {
      for (const kind of ['float32', 'int8'] as const) {
        const jpeg = jpegs[n.calibration + (i % n.agreement)]
        const a = performance.now()
        const x = await pre(jpeg)
        const b = performance.now()
        await run(sessions[kind], x)
        const e = performance.now()
        if (i < 5) continue
        lat[kind].inference.push(e - b)
        lat[kind].pipeline.push(e - a)
      }
    }

    const rows: Record<string, unknown> = {}
    for (const kind of ['float32', 'int8'] as const) {
      const one = async () => run(sessions[kind], await pre(jpegs[n.calibration]))
      rows[kind] = {
        inferenceP50Ms: median(lat[kind].inference),
        modelBytes: kind === 'int8' ? q.bytes : float.length,
        pipelineP50Ms: median(lat[kind].pipeline),
        throughputC4: (await throughput(one, 4, n.throughputMs)).rate,
      }
    }

    const f = rows.float32 as Record<string, number>
    const i8 = rows.int8 as Record<string, number>
    report[`resnet${depth}`] = {
      ...rows,
      agreement: {distinctFloat32Classes: classes.size, images: n.agreement, same: agree},
      probabilityDifference: {max: maxDiff, mean: sumDiff / count},
      quantizeMs,
      speedup: {
        inference: f.inferenceP50Ms / i8.inferenceP50Ms,
        pipeline: f.pipelineP50Ms / i8.pipelineP50Ms,
        throughputC4: i8.throughputC4 / f.throughputC4,
      },
    }
    log(`resnet${depth}: ${JSON.stringify(report[`resnet${depth}`])}`)
    await sessions.float32.release()
    await sessions.int8.release()
  }
}

async function fashionMnist(dir: string, report: Record<string, unknown>): Promise<void> {
  const root = join(SHARED, 'models', 'fashion-mnist-lenet')
  let labels: string[]
  try {
    labels = readdirSync(join(root, 'test')).sort()
  } catch {
    report.fashionMnist = `not measured: ${root} is not there`
    return
  }

  const files: {file: string; label: number}[] = []
  for (const [k, label] of labels.entries()) {
    for (const f of readdirSync(join(root, 'test', label)).sort())
      files.push({file: join(root, 'test', label, f), label: k})
  }

  const inputs = await Promise.all(
    files.map(async ({file}) => Float32Array.from(await sharp(file).grayscale().raw().toBuffer(), (v) => v / 255)),
  )
  const loaded = await modelCore.loadModel(root, {cacheDir: join(dir, 'cache'), shape: [1, 1, 28, 28]})
  const float = await readFile(loaded.onnxPath)
  const int8Path = join(dir, 'fashion-mnist.int8.onnx')
  const q = await quantizeInt8(float, int8Path, {
    calibration: inputs.filter((_, i) => i % 10 === 0),
    inputShape: [1, 28, 28],
  })
  const top1 = async (model: string | Uint8Array) => {
    const s = await ort.InferenceSession.create(model as string)
    const all = new Float32Array(inputs.length * 784)
    for (const [i, x] of inputs.entries()) all.set(x, i * 784)
    const y = (await s.run({[s.inputNames[0]]: new ort.Tensor('float32', all, [inputs.length, 1, 28, 28])}))[
      s.outputNames[0]
    ].data as Float32Array
    await s.release()
    return inputs.map((_, i) => argmax(y.subarray(i * 10, i * 10 + 10)))
  }

  const a = await top1(float)
  const b = await top1(int8Path)
  report.fashionMnist = {
    accuracyFloat32: a.filter((p, i) => p === files[i].label).length / files.length,
    accuracyInt8: b.filter((p, i) => p === files[i].label).length / files.length,
    agreement: a.filter((p, i) => p === b[i]).length / files.length,
    images: files.length,
    quantized: {convolutions: q.convolutions, tensors: q.tensors},
  }
  log(`fashion-MNIST LeNet: ${JSON.stringify(report.fashionMnist)}`)
}

const dir = await mkdtemp(join(tmpdir(), 'icc-int8-'))
const report: Record<string, unknown> = {
  cpus: availableParallelism(),
  date: new Date().toISOString(),
  mode: quick ? 'quick' : 'full',
}
try {
  await resnets(dir, report)
  await fashionMnist(dir, report)
  const lines = ['model     kind      inference p50   pipeline p50   c=4 /s   model MB   top-1 agreement']
  for (const depth of depths) {
    const r = report[`resnet${depth}`] as Record<string, any>
    for (const kind of ['float32', 'int8']) {
      const x = r[kind]
      lines.push(
        `resnet${String(depth).padEnd(4)}${kind.padEnd(10)}${x.inferenceP50Ms.toFixed(1).padStart(10)} ms${x.pipelineP50Ms.toFixed(1).padStart(12)} ms` +
          `${x.throughputC4.toFixed(1).padStart(9)}${(x.modelBytes / 1e6).toFixed(1).padStart(11)}` +
          (kind === 'int8'
            ? `   ${r.agreement.same}/${r.agreement.images} (float32 chose ${r.agreement.distinctFloat32Classes} distinct classes)`
            : ''),
      )
    }

    lines.push(
      `  speed-up: inference x${r.speedup.inference.toFixed(2)}, pipeline x${r.speedup.pipeline.toFixed(2)}, throughput at c=4 x${r.speedup.throughputC4.toFixed(2)}; ` +
        `|int8 - float32| per probability: max ${r.probabilityDifference.max.toExponential(1)}, mean ${r.probabilityDifference.mean.toExponential(1)}`,
    )
  }

  const fm = report.fashionMnist as Record<string, any> | string
  lines.push(
    typeof fm === 'string'
      ? `fashion-MNIST: ${fm}`
      : `fashion-MNIST LeNet (${fm.images} labelled images): top-1 agreement int8 vs float32 ${(fm.agreement * 100).toFixed(1)} %, ` +
          `accuracy float32 ${(fm.accuracyFloat32 * 100).toFixed(1)} %, int8 ${(fm.accuracyInt8 * 100).toFixed(1)} %`,
  )
  process.stdout.write(lines.join('\n') + '\n')
} finally {
  if (out) await writeFile(out, JSON.stringify(report, null, 2) + '\n')
  await rm(dir, {force: true, recursive: true})
}
