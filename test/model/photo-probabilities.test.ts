/**
 * The connector's answers on photos that must be resized: `icc predict` (exact preprocessing, the default) against
 * the float64 MXNet reference fed with OpenCV's own decode + INTER_LINEAR resize, on SageMaker-format ResNets (the
 * writer's ResNet-18 and the real SageMaker 0.12 ResNet-18 symbol with generated weights).
 */
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import sharp from 'sharp'

import {predict} from '../../src/model/index.js'
import {readParams} from '../../src/model/mxnet-params.js'
import {generateWeights, writeParams} from '../../src/model/writer.js'
import {SHARED} from '../helpers/cli.js'
import {photoPixels} from '../helpers/images.js'
import {tempDir, writeModelDir} from '../helpers/model-fixtures.js'
import {referenceRun} from '../helpers/mxnet-reference.js'
import {cjpeg, haveOpenCv, openCvPreprocess} from '../helpers/opencv.js'

const HW = 64 // the float64 reference is plain loops: 64x64 keeps it fast (global pooling: any size works)

async function photos(dir: string): Promise<string[]> {
  const raw = (w: number, h: number) => ({raw: {channels: 3 as const, height: h, width: w}})
  const files: Array<[string, Buffer]> = [
    [
      'icc-640x427.jpg',
      await sharp(photoPixels(640, 427, 1), raw(640, 427))
        .withIccProfile('p3')
        .jpeg()
        .toBuffer(),
    ],
    ['1411x1411.jpg', await cjpeg(photoPixels(1411, 1411, 2), 1411, 1411, {sample: '2x2'})],
    [
      '451x300.png',
      await sharp(photoPixels(451, 300, 3), raw(451, 300))
        .png()
        .toBuffer(),
    ],
    [
      '50x37-up.png',
      await sharp(photoPixels(50, 37, 4), raw(50, 37))
        .png()
        .toBuffer(),
    ],
  ]
  return Promise.all(
    files.map(async ([name, bytes]) => {
      await writeFile(join(dir, name), bytes)
      return join(dir, name)
    }),
  )
}

/** OpenCV's resized RGB (HWC bytes) as the reference's float64 NCHW input. */
function chw(rgb: Uint8Array): Float64Array {
  const plane = HW * HW
  const out = new Float64Array(3 * plane)
  for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) out[c * plane + i] = rgb[i * 3 + c]
  return out
}

describe('icc predict on resized photos against OpenCV + the float64 reference', function () {
  this.timeout(300_000)
  let files: string[]
  let inputs: Float64Array[]
  let root: string

  before(async () => {
    if (!(await haveOpenCv())) throw new Error('python3-opencv is not installed (apt-get install python3-opencv)')
    root = await tempDir('icc-photos-')
    files = await photos(root)
    const resized = await openCvPreprocess(files.map((f) => ({bytes: readFileSync(f), height: HW, width: HW})))
    inputs = resized.map((r, i) => {
      assert.ok(r, `OpenCV decodes ${files[i]}`)
      return chw(r.data)
    })
  })

  async function check(dir: string, symbol: string, label: string) {
    const params = new Map(
      readParams(readFileSync(join(dir, 'image-classification-0001.params'))).arrays.map((a) => [a.name, a]),
    )
    const exact = await predict({cacheDir: join(root, 'cache'), images: files, model: dir})
    const fast = await predict({cacheDir: join(root, 'cache'), images: files, model: dir, resize: 'fast'})
    let worstExact = 0
    let worstFast = 0
    for (const [i, file] of files.entries()) {
      const [ref] = referenceRun(symbol, params, {data: inputs[i], shape: [1, 3, HW, HW]})
      const diff = (p: number[]) => Math.max(...p.map((v, k) => Math.abs(v - ref.data[k])))
      const d = diff(exact.results[i].probabilities)
      assert.ok(d <= 5e-5, `${label}, ${file}: max probability difference ${d} > 5e-5`)
      worstExact = Math.max(worstExact, d)
      worstFast = Math.max(worstFast, diff(fast.results[i].probabilities))
      const top = Math.max(...ref.data)
      assert.ok(top < 0.99 && top > 1.5 / ref.data.length, `${label}: a non-degenerate answer (top ${top})`)
    }

    // the comparison can fail: the fast mode's answers are further from the connector's
    assert.ok(worstFast > 10 * worstExact, `${label}: fast ${worstFast} vs exact ${worstExact}`)
  }

  it("the writer's SageMaker ResNet-18 gives the reference's probabilities within 5e-5", async () => {
    const dir = join(root, 'resnet18')
    const fx = await writeModelDir(dir, {imageShape: [3, HW, HW], numClasses: 10, numLayers: 18})
    await check(dir, fx.symbol, 'ResNet-18 (writer)')
  })

  it('the real SageMaker 0.12 ResNet-18 symbol gives the reference probabilities within 5e-5', async () => {
    const source = join(SHARED, 'models', 'sagemaker-resnet18-v0.12')
    const symbol = readFileSync(join(source, 'image-classification-symbol.json'), 'utf8')
    const dir = join(root, 'sagemaker-0.12')
    await mkdir(dir, {recursive: true})
    await writeFile(join(dir, 'image-classification-symbol.json'), symbol)
    await writeFile(
      join(dir, 'image-classification-0001.params'),
      writeParams(generateWeights(symbol, [1, 3, HW, HW], 3)),
    )
    await writeFile(join(dir, 'model-shapes.json'), JSON.stringify([{name: 'data', shape: [1, 3, HW, HW]}]))
    await check(dir, symbol, 'SageMaker 0.12 ResNet-18')
  })
})
