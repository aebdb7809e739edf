// @tier unit: needs neither ../shared nor child processes (npm run test:unit)
import assert from 'node:assert/strict'
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import sharp from 'sharp'

import {ensureDefaultModel, loadModel, predict} from '../../src/model/index.js'
import {rng} from '../../src/model/writer.js'
import {tempDir} from '../helpers/model-fixtures.js'

/** A noisy image: mostly `main` with speckles of `other` colours and per-pixel jitter. */
async function noisyImage(path: string, main: number[], seed: number, width = 120, height = 90): Promise<string> {
  const r = rng(seed)
  const raw = Buffer.alloc(width * height * 3)
  for (let i = 0; i < width * height; i++) {
    const speck = r() < 0.2
    for (let c = 0; c < 3; c++) {
      const base = speck ? r() * 255 : main[c]
      raw[i * 3 + c] = Math.max(0, Math.min(255, Math.round(base + (r() - 0.5) * 50)))
    }
  }

  await sharp(raw, {raw: {channels: 3, height, width}})
    .jpeg({quality: 90})
    .toFile(path)
  return path
}

describe('bundled default model (dominant colour)', function () {
  this.timeout(60_000)

  it('is a SageMaker-format ResNet written into the cache once, and rewritten when damaged', async () => {
    const cache = await tempDir()
    const dir = await ensureDefaultModel(cache)
    const m = await loadModel(dir, {cacheDir: cache})
    assert.equal(m.summary.architecture, 'ResNet-20')
    assert.equal(m.summary.paramsFormat, 'V2')
    assert.deepEqual(m.inputShape, [3, 32, 32])
    assert.ok(m.labels?.includes('red') && m.labels.includes('blue'))
    const params = join(dir, 'image-classification-0001.params')
    const original = await readFile(params)
    await writeFile(params, original.subarray(0, 50))
    assert.equal(await ensureDefaultModel(cache), dir)
    assert.ok((await readFile(params)).equals(original))
  })

  it('names the dominant colour of solid and noisy photo-like images', async () => {
    const cache = await tempDir()
    const dir = await ensureDefaultModel(cache)
    const cases: [string, number[]][] = [
      ['red', [220, 30, 25]],
      ['green', [40, 170, 50]],
      ['blue', [20, 40, 210]],
      ['yellow', [245, 230, 30]],
      ['cyan', [30, 230, 235]],
      ['magenta', [220, 30, 210]],
      ['white', [250, 250, 248]],
      ['black', [8, 8, 10]],
      ['orange', [250, 140, 10]],
      ['gray', [128, 128, 128]],
    ]
    const images: string[] = []
    const expected: string[] = []
    for (const [i, [name, rgb]] of cases.entries()) {
      const solid = join(cache, `${name}-solid.png`)
      await sharp({create: {background: {b: rgb[2], g: rgb[1], r: rgb[0]}, channels: 3, height: 50, width: 70}})
        .png()
        .toFile(solid)
      images.push(solid)
      expected.push(name)
      if (name !== 'gray' && name !== 'white' && name !== 'black') {
        images.push(await noisyImage(join(cache, `${name}-noisy.jpg`), rgb, i + 1))
        expected.push(name)
      }
    }

    const r = await predict({cacheDir: cache, images, model: dir, topK: 3})
    const got = r.results.map((x) => x.top[0].label)
    assert.deepEqual(got, expected)
    for (const x of r.results) {
      assert.ok(Math.abs(x.probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-5)
      assert.ok(x.top[0].probability > 0.5, `${x.image}: ${x.top[0].probability}`)
    }
  })
})
