/**
 * The exact preprocessing mode against real OpenCV (python3-opencv): for a corpus generated here (every EXIF
 * orientation, ICC-tagged, CMYK, progressive, grey and 4:2:0/4:2:2/4:4:4 JPEGs; grey, palette, 16-bit and alpha
 * PNGs; sizes that scale down, up, by odd ratios, by exactly 2, to and from 1x1, extreme aspect ratios), icc's
 * input tensor equals `cv2.resize(cv2.imdecode(IMREAD_COLOR), INTER_LINEAR)` (BGR -> RGB) bit for bit.
 */
import assert from 'node:assert/strict'
import sharp from 'sharp'

import {preprocessImage} from '../../src/model/preprocess.js'
import {noisePixels, photoPixels} from '../helpers/images.js'
import {cjpeg, haveOpenCv, type OpenCvJob, openCvPreprocess} from '../helpers/opencv.js'

interface Case extends OpenCvJob {
  name: string
}

const raw = (width: number, height: number, channels: 1 | 2 | 3 | 4 = 3) => ({raw: {channels, height, width}})

async function corpus(): Promise<Case[]> {
  const cases: Case[] = []
  const add = (name: string, bytes: Uint8Array, width: number, height: number) =>
    cases.push({bytes, height, name, width})

  // resize geometry on an 8-bit RGB PNG of noise (every rounding shows)
  const sizes: Array<[number, number, number, number]> = [
    [640, 427, 224, 224],
    [451, 300, 224, 224],
    [100, 60, 50, 30], // exactly 2x: OpenCV's INTER_AREA fast path
    [100, 60, 50, 31],
    [37, 23, 224, 224],
    [1, 1, 224, 224],
    [300, 200, 1, 1],
    [2000, 3, 224, 224],
    [3, 900, 32, 32],
    [224, 224, 224, 224],
    [97, 61, 13, 7],
    [10, 10, 25, 7],
    [7, 5, 14, 10], // exactly 2x up
  ]
  for (const [w, h, dw, dh] of sizes) {
    add(`PNG ${w}x${h} -> ${dw}x${dh}`, await sharp(noisePixels(w, h), raw(w, h)).png().toBuffer(), dw, dh)
  }

  const photo = photoPixels(160, 120)
  const img = () => sharp(photo, raw(160, 120))
  for (const [name, pipeline] of [
    ['grey', img().toColourspace('b-w')],
    ['grey 16-bit', img().toColourspace('grey16')],
    ['RGB 16-bit', img().toColourspace('rgb16')],
    ['palette', img()],
    ['RGBA (alpha 0.5)', img().ensureAlpha(0.5)],
    ['grey + alpha', img().toColourspace('b-w').ensureAlpha(0.3)],
  ] as const) {
    const bytes = await pipeline.png({palette: name === 'palette'}).toBuffer()
    add(`PNG ${name}, decode`, bytes, 160, 120)
    add(`PNG ${name} -> 57x43`, bytes, 57, 43)
  }

  // 16-bit values whose low byte matters (not just 8-bit values scaled by 257)
  const wide = Buffer.alloc(64 * 48 * 6)
  for (let i = 0; i < wide.length; i += 2) wide.writeUInt16BE((i * 977) & 0xff_ff, i)
  add('PNG RGB 16-bit, arbitrary low bytes', await sharp(wide, raw(64, 48)).png().toBuffer(), 64, 48)

  for (const [name, options] of [
    ['4:2:0', {sample: '2x2'}],
    ['4:2:2', {sample: '2x1'}],
    ['4:4:4', {sample: '1x1'}],
    ['progressive 4:2:0', {progressive: true, sample: '2x2'}],
    ['grey', {grayscale: true, sample: '1x1'}],
  ] as const) {
    const bytes = await cjpeg(photo, 160, 120, options)
    add(`JPEG ${name}, decode`, bytes, 160, 120)
    add(`JPEG ${name} -> 224x224`, bytes, 224, 224)
    add(`JPEG ${name} -> 61x47`, bytes, 61, 47)
  }

  const odd = photoPixels(161, 121, 2)
  add('JPEG 4:2:0 odd size -> 100x100', await cjpeg(odd, 161, 121, {sample: '2x2'}), 100, 100)
  const cmyk = await sharp(photo, raw(160, 120)).toColourspace('cmyk').jpeg({quality: 90}).toBuffer()
  add('JPEG CMYK, decode', cmyk, 160, 120)
  add('JPEG CMYK -> 64x64', cmyk, 64, 64)
  const icc = await sharp(photo, raw(160, 120)).withIccProfile('p3').jpeg({quality: 90}).toBuffer()
  add('JPEG with an ICC profile, decode', icc, 160, 120)
  add('JPEG with an ICC profile -> 224x224', icc, 224, 224)

  const tall = photoPixels(40, 24, 3)
  for (let orientation = 1; orientation <= 8; orientation++) {
    const bytes = await sharp(tall, raw(40, 24)).withMetadata({orientation}).jpeg({quality: 95}).toBuffer()
    const [w, h] = orientation >= 5 ? [24, 40] : [40, 24]
    add(`JPEG EXIF orientation ${orientation}, decode`, bytes, w, h)
    add(`JPEG EXIF orientation ${orientation} -> 17x11`, bytes, 17, 11)
  }

  for (const orientation of [3, 6]) {
    const bytes = await sharp(tall, raw(40, 24)).withMetadata({orientation}).png().toBuffer()
    add(`PNG EXIF orientation ${orientation} -> 17x11`, bytes, 17, 11)
  }

  return cases
}

/** A [C, H, W] float tensor back to interleaved RGB bytes (the values are whole numbers 0..255). */
function toRgb(t: Float32Array, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * 3)
  const plane = width * height
  for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) out[i * 3 + c] = t[c * plane + i]
  return out
}

describe('model/preprocess: the exact mode equals OpenCV', () => {
  let cases: Case[]
  let expected: Awaited<ReturnType<typeof openCvPreprocess>>

  before(async function () {
    this.timeout(300_000)
    if (!(await haveOpenCv())) throw new Error('python3-opencv is not installed (apt-get install python3-opencv)')
    cases = await corpus()
    expected = await openCvPreprocess(cases)
  })

  /** "name: how many values differ, by up to what" for each image whose tensor is not OpenCV's. */
  async function differences(resize: 'exact' | 'fast'): Promise<string[]> {
    const failures: string[] = []
    for (const [i, job] of cases.entries()) {
      const want = expected[i]
      assert.ok(want, `OpenCV could not decode ${job.name}`)
      assert.deepEqual([want.width, want.height], [job.width, job.height], job.name)
      const options = {channels: 3, height: job.height, resize, width: job.width}
      const got = toRgb(await preprocessImage(job.bytes, options), job.width, job.height)
      let diff = 0
      let count = 0
      for (const [p, value] of got.entries()) {
        const d = Math.abs(value - want.data[p])
        if (d > 0) count++
        diff = Math.max(diff, d)
      }

      if (diff > 0) failures.push(`${job.name}: ${count} of ${got.length} values differ, by up to ${diff}`)
    }

    return failures
  }

  it('gives OpenCV input tensors bit for bit on every image of the corpus', async () => {
    const failures = await differences('exact')
    assert.deepEqual(failures, [], `${failures.length} of ${cases.length} images differ from OpenCV`)
    assert.ok(cases.length >= 60, `${cases.length} images`)
  })

  it('(the comparison can fail: the fast mode differs on most resized images and on the ICC-tagged JPEG)', async () => {
    const failures = await differences('fast')
    assert.ok(failures.length > cases.length / 2, failures.join('\n'))
    assert.ok(
      failures.some((f) => f.startsWith('JPEG with an ICC profile, decode')),
      'the ICC profile is applied by the fast mode',
    )
  })
})
