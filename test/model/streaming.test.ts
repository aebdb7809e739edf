/**
 * Conversion that holds one copy of the weights, and the model optimised ahead of time in parts
 * (src/model/onnx-export.ts writeOnnx/splitPlan, src/model/optimize.ts): the streamed file is the in-memory
 * encoding's model, its weights come straight from the params file's bytes, and the joined optimised parts compute
 * what the plain model computes. Memory figures themselves are in `npm run bench -- --memory`.
 */
import type * as ort from 'onnxruntime-node'

import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import {readdir, readFile, writeFile} from 'node:fs/promises'
import {basename, join} from 'node:path'
import onnxProto from 'onnx-proto'

import {createCpuSession, loadModel, type ModelSession, openSession} from '../../src/model/index.js'
import {readParams} from '../../src/model/mxnet-params.js'
import {parseSymbol} from '../../src/model/mxnet-symbol.js'
import {exportOnnx, plan, splitPlan, writeOnnx} from '../../src/model/onnx-export/index.js'
import {optimizeParts, PART_BYTES, partBytesFor, planBytes, writeParts} from '../../src/model/optimize.js'
import {generateWeights, resnetSymbol, rng, writeParams} from '../../src/model/writer.js'
import {tempDir, writeModelDir} from '../helpers/model-fixtures.js'

const {onnx} = onnxProto

function resnet(numLayers: number, hw: number, dtype: 'float16' | 'float32' = 'float32') {
  const symbol = resnetSymbol({imageShape: [3, hw, hw], numClasses: 10, numLayers})
  const file = writeParams(generateWeights(symbol, [1, 3, hw, hw], 4), {dtype})
  return {file, sym: parseSymbol(symbol)}
}

async function run(session: ModelSession, x: Float32Array, n: number, hw: number): Promise<Float32Array> {
  const out = await session.run({[session.inputNames[0]]: {data: x, dims: [n, 3, hw, hw]}})
  return out[session.outputNames[0]]
}

function input(n: number, hw: number): Float32Array {
  const r = rng(9)
  return Float32Array.from({length: n * 3 * hw * hw}, () => Math.floor(r() * 256))
}

describe('streamed conversion and the model optimised ahead of time', function () {
  this.timeout(120_000)

  for (const dtype of ['float32', 'float16'] as const) {
    it(`writes to a file the model that exportOnnx encodes in memory (${dtype} params)`, async () => {
      const {file, sym} = resnet(20, 32, dtype)
      const params = new Map(readParams(file, 'x', {lazy: true}).arrays.map((a) => [a.name, a]))
      const options = {inputShape: [1, 3, 32, 32], params}
      const path = join(await tempDir(), 'm.onnx')
      const written = await writeOnnx(sym, options, path)
      const bytes = await readFile(path)
      assert.equal(written.length, bytes.length)
      const streamed = onnx.ModelProto.toObject(onnx.ModelProto.decode(bytes))
      const inMemory = onnx.ModelProto.toObject(onnx.ModelProto.decode(exportOnnx(sym, options).bytes))
      assert.ok(streamed.graph.initializer.length > 50)
      assert.deepEqual(streamed, inMemory)
    })
  }

  it('writes the big initializers to an external file, page-aligned, and the model is the same once they are read', async () => {
    const {file, sym} = resnet(20, 32)
    const params = new Map(readParams(file, 'x', {lazy: true}).arrays.map((a) => [a.name, a]))
    const options = {inputShape: [1, 3, 32, 32], params}
    const dir = await tempDir()
    const parts = await writeParts(splitPlan(plan(sym, options), 100_000), join(dir, 'p'))
    assert.ok(parts.length > 1)
    const inMemory = onnx.ModelProto.decode(exportOnnx(sym, options).bytes).graph!.initializer!
    const want = new Map(inMemory.map((t) => [t.name!, t]))
    let external = 0
    for (const part of parts) {
      // a part without an initializer of 4 KiB has no data file
      const data = existsSync(`${part}.data`) ? await readFile(`${part}.data`) : Buffer.alloc(0)
      for (const t of onnx.ModelProto.decode(await readFile(part)).graph!.initializer!) {
        const expected = want.get(t.name!)!
        assert.deepEqual(t.dims!.map(Number), expected.dims!.map(Number), t.name!)
        if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) {
          assert.ok(t.rawData!.length < 4096, `${t.name} (${t.rawData!.length} bytes) is inline`)
          assert.deepEqual(t.rawData, expected.rawData)
          continue
        }

        const ref = Object.fromEntries(t.externalData!.map((e) => [e.key, e.value]))
        assert.equal(ref.location, basename(`${part}.data`))
        assert.equal(Number(ref.offset) % 4096, 0, `${t.name} at ${ref.offset}`)
        const bytes = data.subarray(Number(ref.offset), Number(ref.offset) + Number(ref.length))
        assert.ok(Buffer.from(expected.rawData!).equals(bytes), `${t.name}: the external bytes differ`)
        external++
      }
    }

    assert.ok(external > 10, `${external} external initializers`)
  })

  it('leaves nothing in the cache when ONNX Runtime cannot optimise a part', async () => {
    const {file, sym} = resnet(20, 32)
    const params = new Map(readParams(file, 'x', {lazy: true}).arrays.map((a) => [a.name, a]))
    const dir = await tempDir()
    const parts = await writeParts(splitPlan(plan(sym, {inputShape: [1, 3, 32, 32], params}), 100_000), join(dir, 'p'))
    assert.ok(parts.length > 2)
    // the second part's model cut short: the first is optimised, the second refused
    await writeFile(parts[1], (await readFile(parts[1])).subarray(0, 100))
    await assert.rejects(optimizeParts(parts, join(dir, 'p')))
    assert.deepEqual(await readdir(dir), [])
  })

  it('takes float32 weights from the params file bytes themselves, not from copies', () => {
    const {file, sym} = resnet(20, 32)
    const params = new Map(readParams(file, 'x', {lazy: true}).arrays.map((a) => [a.name, a]))
    const {inits} = plan(sym, {inputShape: [1, 3, 32, 32], params})
    const fromParams = inits.filter((t) => params.has(t.name))
    assert.ok(fromParams.length > 50)
    for (const t of fromParams) assert.equal(t.bytes().buffer, file.buffer, `${t.name} is a copy`)
  })

  it('cuts a ResNet between units into parts that chain input to output', () => {
    const {file, sym} = resnet(20, 32)
    const params = new Map(readParams(file, 'x', {lazy: true}).arrays.map((a) => [a.name, a]))
    const whole = plan(sym, {inputShape: [1, 3, 32, 32], params})
    const parts = splitPlan(whole, 20_000)
    assert.ok(parts.length > 3, `${parts.length} parts`)
    assert.equal(parts[0].inputName, whole.inputName)
    for (let k = 1; k < parts.length; k++) assert.deepEqual([parts[k].inputName], parts[k - 1].outputNames)
    assert.deepEqual(parts.at(-1)!.outputNames, whole.outputNames)
    assert.equal(
      parts.reduce((s, p) => s + p.model.graph!.node!.length, 0),
      whole.model.graph!.node!.length,
    )
    assert.equal(splitPlan(whole, 1e12).length, 1)
  })

  it('keeps each part within the bytes asked for, unless it has no point to cut at', () => {
    const {file, sym} = resnet(20, 32)
    const params = new Map(readParams(file, 'x', {lazy: true}).arrays.map((a) => [a.name, a]))
    const whole = plan(sym, {inputShape: [1, 3, 32, 32], params})
    const maxBytes = 60_000
    const parts = splitPlan(whole, maxBytes)
    assert.equal(
      parts.reduce((s, p) => s + planBytes(p), 0),
      planBytes(whole),
    )
    for (const [k, p] of parts.entries()) {
      // a part over the bytes is one unit that cannot be cut (cut at every point, it stays whole)
      const bytes = planBytes(p)
      assert.ok(bytes <= maxBytes || splitPlan(p, 1).length === 1, `part ${k} of ${parts.length}: ${bytes} bytes`)
    }
  })

  it('cuts a small model into parts of a quarter of its weights, a deep one into parts of PART_BYTES', () => {
    const mb = 1024 * 1024
    // ResNet-18 (45 MB of weights): parts of at most ~11 MB
    assert.equal(partBytesFor(45 * mb), Math.floor((45 * mb) / 4))
    assert.equal(partBytesFor(240 * mb), PART_BYTES)
    assert.ok(partBytesFor(mb) >= 4 * mb, 'a tiny model is not cut into many parts')
  })

  it('loads the optimised model (cached, weights in external files) and it computes what the plain one does', async () => {
    const dir = await tempDir()
    const cacheDir = join(dir, 'cache')
    // a CIFAR ResNet-20 (~1 MB of weights) in parts of 100 KB
    await writeModelDir(join(dir, 'm'), {numLayers: 20})
    // optimising ahead of time is native only (whatever ICC_RUNTIME says)
    const optimize = {partBytes: 100_000}
    const m = await loadModel(join(dir, 'm'), {cacheDir, optimize, runtime: 'native'})
    assert.ok(m.optimizedPath, `an optimised model: ${m.warnings.join('; ')}`)
    const files = await readdir(join(cacheDir, 'onnx-cpu'))
    assert.ok(files.filter((f) => f.endsWith('.data')).length > 1, `parts: ${files.join(', ')}`)
    const options: ort.InferenceSession.SessionOptions = {executionProviders: ['cpu'], graphOptimizationLevel: 'all'}
    const plain = await openSession(m.onnxPath, options)
    const optimized = await createCpuSession(m, options, (w) => assert.fail(w))
    for (const n of [1, 2]) {
      const x = input(n, 32)
      const [a, b] = [await run(plain, x, n, 32), await run(optimized, x, n, 32)]
      let max = 0
      for (const [i, v] of a.entries()) max = Math.max(max, Math.abs(v - b[i]))
      assert.ok(max < 1e-5, `batch ${n}: max diff ${max}`)
    }

    await plain.release()
    await optimized.release()
    // from the cache the second time; a damaged weights file is noticed and the model made again
    assert.equal(
      (await loadModel(join(dir, 'm'), {cacheDir, optimize, runtime: 'native'})).optimizedPath,
      m.optimizedPath,
    )
    const data = join(
      cacheDir,
      'onnx-cpu',
      files.find((f) => f.endsWith('.0.data'))!,
    )
    const bytes = await readFile(data)
    bytes[bytes.length - 1] ^= 0xff
    await writeFile(data, bytes)
    const again = await loadModel(join(dir, 'm'), {cacheDir, optimize, runtime: 'native'})
    assert.ok(again.optimizedPath, again.warnings.join('; '))
    assert.notEqual(again.optimizedPath, m.optimizedPath)
    assert.equal(existsSync(data), false, 'the damaged file is removed')
    const session = await createCpuSession(again, options, (w) => assert.fail(w))
    await session.release()
  })
})
