// @tier unit: needs neither ../shared nor child processes (npm run test:unit)
import assert from 'node:assert/strict'
import {readFile, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {DependencyError, IccError} from '../../src/errors.js'
import {resolveArtifact} from '../../src/model/artifact.js'
import {defaultCacheDir} from '../../src/model/cache.js'
import {
  createSession,
  formatFloat32,
  formatProbabilities,
  inspectModel,
  loadModel,
  missingCudaProviderFiles,
  topK,
} from '../../src/model/index.js'
import {writeParams} from '../../src/model/writer.js'
import {packTarGz, tempDir, writeModelDir} from '../helpers/model-fixtures.js'

describe('model artifacts and the conversion cache', function () {
  this.timeout(60_000)

  it('picks the highest epoch unless told, reads shapes and labels', async () => {
    const dir = await tempDir()
    await writeModelDir(dir, {epochs: [3, 12, 7], labels: ['cat', 'dog', 'n01440764 tench', 'owl', 'fox']})
    const a = await resolveArtifact(dir)
    assert.equal(a.epoch, 12)
    assert.match(a.paramsPath!, /image-classification-0012\.params$/)
    assert.deepEqual(a.shape, [1, 3, 32, 32])
    assert.deepEqual(a.labels, ['cat', 'dog', 'tench', 'owl', 'fox'])
    assert.equal((await resolveArtifact(dir, {epoch: 7})).epoch, 7)
    await assert.rejects(
      resolveArtifact(dir, {epoch: 5}),
      (e: IccError) => e.code === 'NO_EPOCH' && /3, 7, 12/.test(e.suggestions[0]),
    )
  })

  it('warns and assumes 3x224x224 without model-shapes.json; the sidecar may give labels, shape and preprocessing', async () => {
    const dir = await tempDir()
    await writeModelDir(dir, {imageShape: [3, 40, 40], numLayers: 18, shapes: false})
    const cache = join(dir, 'cache')
    const m = await loadModel(dir, {cacheDir: cache})
    assert.deepEqual(m.inputShape, [3, 224, 224])
    assert.match(m.warnings.join('\n'), /No model-shapes\.json/)
    await writeFile(
      join(dir, 'icc-model.json'),
      JSON.stringify({labels: ['a', 'b', 'c', 'd', 'e'], preprocessing: {scale: 0.5}, shape: [3, 40, 40]}),
    )
    const m2 = await loadModel(dir, {cacheDir: cache})
    assert.deepEqual(m2.inputShape, [3, 40, 40])
    assert.deepEqual(m2.labels, ['a', 'b', 'c', 'd', 'e'])
    assert.deepEqual(m2.preprocessing, {scale: 0.5})
    assert.deepEqual(m2.warnings, [])
  })

  it('gives clear errors for missing paths, missing params and bad shapes files', async () => {
    const dir = await tempDir()
    await assert.rejects(
      resolveArtifact(join(dir, 'nope')),
      (e: IccError) => e.code === 'NO_SUCH_MODEL' && e.exitCode === 2,
    )
    await assert.rejects(resolveArtifact(dir), (e: IccError) => e.code === 'NO_MODEL' && e.exitCode === 4)
    await writeModelDir(dir)
    await writeFile(join(dir, 'model-shapes.json'), '[{"name":"data","shape":[1,3,-5,32]}]')
    await assert.rejects(resolveArtifact(dir), (e: IccError) => e.code === 'BAD_SHAPE')
    await rm(join(dir, 'image-classification-0001.params'))
    await assert.rejects(resolveArtifact(dir), (e: IccError) => e.code === 'NO_PARAMS')
  })

  it('loads a model.tar.gz (extracted into the cache once)', async () => {
    const dir = await tempDir()
    await writeModelDir(join(dir, 'src'), {labels: ['a', 'b', 'c', 'd', 'e']})
    const tgz = await packTarGz(
      join(dir, 'src'),
      ['image-classification-symbol.json', 'image-classification-0001.params', 'model-shapes.json', 'synset.txt'],
      join(dir, 'model.tar.gz'),
    )
    const cache = join(dir, 'cache')
    const m = await loadModel(tgz, {cacheDir: cache})
    assert.deepEqual(m.labels, ['a', 'b', 'c', 'd', 'e'])
    assert.equal(m.summary.architecture, 'ResNet-20')
    const again = await loadModel(tgz, {cacheDir: cache})
    assert.equal(again.summary.fromCache, true)
    assert.equal(again.onnxPath, m.onnxPath)
  })

  it('converts once, then loads from the cache; a corrupt entry is rebuilt', async () => {
    const dir = await tempDir()
    await writeModelDir(dir)
    const cache = join(dir, 'cache')
    const first = await loadModel(dir, {cacheDir: cache})
    assert.equal(first.summary.fromCache, false)
    const original = await readFile(first.onnxPath)
    const second = await loadModel(dir, {cacheDir: cache})
    assert.equal(second.summary.fromCache, true)
    assert.equal(second.hash, first.hash)
    // Flip a byte in the middle: same length, different content.
    const damaged = Buffer.from(original)
    damaged[damaged.length >> 1] ^= 0xff
    await writeFile(first.onnxPath, damaged)
    const third = await loadModel(dir, {cacheDir: cache})
    assert.equal(third.summary.fromCache, false)
    assert.match(third.warnings.join('\n'), /checksum mismatch/)
    assert.ok((await readFile(first.onnxPath)).equals(original))
    // Truncated entry, and a missing sidecar.
    await writeFile(first.onnxPath, original.subarray(0, 100))
    assert.equal((await loadModel(dir, {cacheDir: cache})).summary.fromCache, false)
    await rm(first.onnxPath.replace(/\.onnx$/, '.json'))
    assert.equal((await loadModel(dir, {cacheDir: cache})).summary.fromCache, false)
    assert.equal((await loadModel(dir, {cacheDir: cache})).summary.fromCache, true)
    // A different epoch is a different entry.
    await writeModelDir(dir, {epochs: [2]})
    const other = await loadModel(dir, {cacheDir: cache})
    assert.notEqual(other.hash, first.hash)
    assert.equal(other.summary.fromCache, false)
  })

  it('a GPU session either loads CUDA or says what is missing (exit 5), and can fall back to the CPU', async () => {
    const dir = await tempDir()
    await writeModelDir(dir)
    const m = await loadModel(dir, {cacheDir: join(dir, 'cache')})
    let gpuError: unknown
    try {
      // onnxruntime-node's CUDA provider, whatever ICC_RUNTIME says (wasm: ./runtimes.test.ts)
      await (await createSession(m, {gpu: true, runtime: 'native'})).release()
    } catch (error) {
      gpuError = error
    }

    if (gpuError !== undefined) {
      assert.ok(gpuError instanceof DependencyError, String(gpuError))
      assert.equal(gpuError.exitCode, 5)
      assert.equal(gpuError.code, 'CUDA_UNAVAILABLE')
      for (const f of missingCudaProviderFiles()) assert.ok(gpuError.message.includes(f), gpuError.message)
      const warnings: string[] = []
      const s = await createSession(m, {
        fallbackToCpu: true,
        gpu: true,
        onWarning: (w) => warnings.push(w),
        runtime: 'native',
      })
      assert.deepEqual(s.inputNames, ['data'])
      await s.release()
      assert.match(warnings.join('\n'), /running on the CPU/)
    }
  })

  it('inspect reports missing and mis-shaped parameters as problems instead of failing', async () => {
    const dir = await tempDir()
    const fx = await writeModelDir(dir)
    const kept = fx.weights.filter((w) => !w.name.endsWith('stage2_unit1_conv1_weight'))
    const fc = kept.find((w) => w.name === 'arg:fc1_bias')!
    fc.shape = [4]
    fc.data = fc.data.subarray(0, 4)
    await writeFile(join(dir, 'image-classification-0001.params'), writeParams(kept))
    const r = await inspectModel(dir, {cacheDir: join(dir, 'cache')})
    assert.equal(r.converts, false)
    assert.equal(r.architecture, 'ResNet-20')
    const text = r.problems.join('\n')
    assert.match(text, /stage2_unit1_conv1_weight \(32x16x3x3\) is missing/)
    assert.match(text, /fc1_bias has shape 4, the graph needs 5/)
    // the conversion is refused, naming a parameter the graph does not fit
    assert.match(text, /conversion: .*(stage2_unit1_conv1|fc1_bias)/)
  })

  it('chooses the cache directory from ICC_CACHE_DIR, XDG_CACHE_HOME or the home directory', () => {
    assert.equal(defaultCacheDir({ICC_CACHE_DIR: '/x/y', XDG_CACHE_HOME: '/c'}), '/x/y')
    assert.equal(defaultCacheDir({XDG_CACHE_HOME: '/c'}), '/c/icc')
    assert.match(defaultCacheDir({}), /\.cache\/icc$/)
  })
})

describe('connector output format', () => {
  it('prints the shortest decimal that reads back as the same float32, no spaces', () => {
    const values = Float32Array.from([0.1, 1 / 3, 0, 1, 1e-9, 0.999_999_94, 2.5e-45, 123_456.79])
    const text = formatProbabilities(values)
    assert.match(text, /^\[[^\s]+\]$/)
    const back = text.slice(1, -1).split(',').map(Number)
    assert.deepEqual(Float32Array.from(back), values)
    assert.equal(formatFloat32(Math.fround(0.1)), '0.1')
    assert.equal(formatFloat32(Math.fround(1 / 3)), '0.33333334')
    assert.equal(formatProbabilities([0.5, 0.25]), '[0.5,0.25]')
    // Shortest: no shorter representation round-trips.
    for (const v of values) {
      const s = formatFloat32(v)
      const digits = s.replace(/e.*$/, '').replaceAll(/[^\d]/g, '').replace(/^0+/, '').length
      if (digits > 1) {
        const shorter = Number(v.toPrecision(digits - 1))
        assert.notEqual(Math.fround(shorter), v, s)
      }
    }
  })

  it('ranks the top classes with labels', () => {
    assert.deepEqual(topK([0.1, 0.6, 0.3], 2, ['a', 'b', 'c']), [
      {index: 1, label: 'b', probability: 0.6},
      {index: 2, label: 'c', probability: 0.3},
    ])
  })
})
