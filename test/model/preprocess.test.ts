import assert from 'node:assert/strict'
import {readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import sharp from 'sharp'

import type {PreprocessOptions} from '../../src/model/types.js'

import {ModelError} from '../../src/errors.js'
import {readImageHeader} from '../../src/model/image-header.js'
import {
  preprocessImage,
  preprocessImageWithInfo,
  preprocessInto,
  sniffImageType,
  SUPPORTED_CONTENT_TYPES,
} from '../../src/model/preprocess.js'
import {SHARED} from '../helpers/cli.js'
import {
  exifBombJpeg,
  jpegFrom,
  lyingSizeJpeg,
  noisePixels,
  pngBomb,
  pngFrom,
  type Rgb,
  solidJpeg,
  solidPixels,
  solidPng,
  splitPixels,
  tinyGif,
} from '../helpers/images.js'

const RED: Rgb = {b: 0, g: 0, r: 255}
const BLUE: Rgb = {b: 255, g: 0, r: 0}
const COLOUR: Rgb = {b: 90, g: 30, r: 200}
const rgb = (width: number, height: number, extra: Partial<PreprocessOptions> = {}): PreprocessOptions => ({
  channels: 3,
  height,
  width,
  ...extra,
})

/** Value of channel c at (x, y) in a [C, H, W] tensor. */
function at(t: Float32Array, w: number, h: number, c: number, x: number, y: number): number {
  return t[c * w * h + y * w + x]
}

function assertSolid(t: Float32Array, w: number, h: number, colour: Rgb, tolerance: number) {
  const want = [colour.r, colour.g, colour.b]
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < w * h; i++) {
      const got = t[c * w * h + i]
      assert.ok(Math.abs(got - want[c]) <= tolerance, `channel ${c} pixel ${i}: ${got} vs ${want[c]} ±${tolerance}`)
    }
  }
}

async function rejects(promise: Promise<unknown>, code: string, message: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ModelError, `expected a ModelError, got ${String(error)}`)
    assert.equal(error.code, code)
    assert.match(error.message, message)
    assert.equal(error.exitCode, 4)
    return true
  })
}

describe('model/preprocess', () => {
  describe('sniffImageType', () => {
    it('recognises JPEG and PNG by their magic bytes only', async () => {
      assert.equal(sniffImageType(await solidJpeg(4, 4, RED)), 'image/jpeg')
      assert.equal(sniffImageType(await solidPng(4, 4, RED)), 'image/png')
      assert.equal(sniffImageType(tinyGif()), undefined)
      assert.equal(sniffImageType(Buffer.from('hello world')), undefined)
      assert.equal(sniffImageType(new Uint8Array(0)), undefined)
      assert.deepEqual([...SUPPORTED_CONTENT_TYPES].sort(), ['application/x-image', 'image/jpeg', 'image/png'])
    })
  })

  describe('decoding every supported flavour', () => {
    for (const flavour of ['baseline', 'progressive'] as const) {
      it(`${flavour} JPEG: solid colour gives that colour in every plane`, async () => {
        const t = await preprocessImage(await solidJpeg(48, 40, COLOUR, flavour), rgb(16, 16))
        assert.equal(t.length, 3 * 16 * 16)
        assertSolid(t, 16, 16, COLOUR, 2)
      })
    }

    it('CMYK JPEG is converted to RGB (fast: through a colour profile; exact: as OpenCV, uniform)', async () => {
      const bytes = await solidJpeg(32, 32, COLOUR, 'cmyk')
      assert.equal((await sharp(bytes).metadata()).space, 'cmyk')
      const t = await preprocessImage(bytes, rgb(8, 8, {resize: 'fast'}))
      // CMYK round trips through a colour profile: close, not exact.
      assertSolid(t, 8, 8, COLOUR, 25)
      assert.ok(at(t, 8, 8, 0, 3, 3) > at(t, 8, 8, 2, 3, 3) + 60, 'red stays well above blue')
      // OpenCV converts without a profile (bit for bit in opencv-parity.test.ts): a solid colour stays solid
      const exact = await preprocessImage(bytes, rgb(8, 8))
      const first = {b: at(exact, 8, 8, 2, 0, 0), g: at(exact, 8, 8, 1, 0, 0), r: at(exact, 8, 8, 0, 0, 0)}
      assertSolid(exact, 8, 8, first, 0)
      assert.ok(first.r > first.b + 60, 'red stays well above blue')
    })

    it('8-bit RGB PNG decodes exactly', async () => {
      assertSolid(await preprocessImage(await solidPng(20, 10, COLOUR), rgb(5, 5)), 5, 5, COLOUR, 0)
    })

    it('grayscale PNG is replicated into three equal planes', async () => {
      const grey = {b: 100, g: 100, r: 100}
      const bytes = await pngFrom(solidPixels(12, 12, grey), 12, 12, {kind: 'gray'})
      assert.equal((await sharp(bytes).metadata()).channels, 1)
      assertSolid(await preprocessImage(bytes, rgb(6, 6)), 6, 6, grey, 0)
    })

    it('palette PNG decodes to its colours', async () => {
      const bytes = await pngFrom(splitPixels(16, 16, RED, BLUE), 16, 16, {kind: 'palette'})
      assert.equal((await sharp(bytes).metadata()).isPalette, true)
      const t = await preprocessImage(bytes, rgb(16, 16))
      assert.deepEqual([at(t, 16, 16, 0, 0, 0), at(t, 16, 16, 1, 0, 0), at(t, 16, 16, 2, 0, 0)], [255, 0, 0])
      assert.deepEqual([at(t, 16, 16, 0, 15, 9), at(t, 16, 16, 1, 15, 9), at(t, 16, 16, 2, 15, 9)], [0, 0, 255])
    })

    it('RGBA PNG: alpha is dropped, not flattened (colour kept under 50% transparency)', async () => {
      const bytes = await pngFrom(solidPixels(10, 10, COLOUR), 10, 10, {kind: 'rgba'})
      assert.equal((await sharp(bytes).metadata()).channels, 4)
      assertSolid(await preprocessImage(bytes, rgb(10, 10)), 10, 10, COLOUR, 0)
    })

    it('16-bit RGB and grey PNGs come out in 0..255', async () => {
      const rgb16 = await pngFrom(solidPixels(8, 8, COLOUR), 8, 8, {kind: 'rgb16'})
      assert.equal((await sharp(rgb16).metadata()).depth, 'ushort')
      assertSolid(await preprocessImage(rgb16, rgb(4, 4)), 4, 4, COLOUR, 0)
      const grey16 = await pngFrom(solidPixels(8, 8, {b: 77, g: 77, r: 77}), 8, 8, {kind: 'gray16'})
      assert.equal((await sharp(grey16).metadata()).depth, 'ushort')
      const t = await preprocessImage(grey16, {channels: 1, height: 4, width: 4})
      assert.deepEqual(
        [...t],
        Array.from({length: 16}, () => 77),
      )
    })

    for (const resize of ['fast', 'exact'] as const) {
      it(`a large JPEG (${resize === 'fast' ? 'shrink-on-load' : 'full-resolution'}) still gives the right colour`, async () => {
        const t = await preprocessImage(await solidJpeg(1600, 1200, COLOUR), rgb(224, 224, {resize}))
        assertSolid(t, 224, 224, COLOUR, 2)
      })
    }
  })

  describe('layout, resizing and orientation', () => {
    it('puts R, G and B in separate planes (left red, right blue)', async () => {
      const t = await preprocessImage(await pngFrom(splitPixels(8, 4, RED, BLUE), 8, 4), rgb(8, 4))
      for (let y = 0; y < 4; y++) {
        for (let x = 0; x < 8; x++) {
          const left = x < 4
          assert.equal(at(t, 8, 4, 0, x, y), left ? 255 : 0, `R at ${x},${y}`)
          assert.equal(at(t, 8, 4, 1, x, y), 0, `G at ${x},${y}`)
          assert.equal(at(t, 8, 4, 2, x, y), left ? 0 : 255, `B at ${x},${y}`)
        }
      }
    })

    it('stretches to H x W without keeping the aspect ratio or cropping (100x50 -> 32x32)', async () => {
      const t = await preprocessImage(await pngFrom(splitPixels(100, 50, RED, BLUE), 100, 50), rgb(32, 32))
      for (const y of [0, 15, 31]) {
        for (let x = 0; x < 15; x++) assert.equal(at(t, 32, 32, 0, x, y), 255, `red at ${x},${y}`)
        for (let x = 17; x < 32; x++) assert.equal(at(t, 32, 32, 2, x, y), 255, `blue at ${x},${y}`)
      }

      // Bilinear: the columns at the seam are blends, not a hard edge.
      const seam = at(t, 32, 32, 0, 15, 0) + at(t, 32, 32, 0, 16, 0)
      assert.ok(seam > 0 && seam < 510, `seam is blended (${seam})`)
    })

    for (const [orientation, top, bottom] of [
      [1, undefined, undefined],
      [6, RED, BLUE],
      [8, BLUE, RED],
    ] as const) {
      it(`applies EXIF orientation ${orientation}`, async () => {
        const bytes = await jpegFrom(splitPixels(40, 20, RED, BLUE), 40, 20, {orientation})
        const t = await preprocessImage(bytes, rgb(8, 8))
        const isRed = (x: number, y: number) => at(t, 8, 8, 0, x, y) > 200 && at(t, 8, 8, 2, x, y) < 50
        const isBlue = (x: number, y: number) => at(t, 8, 8, 2, x, y) > 200 && at(t, 8, 8, 0, x, y) < 50
        if (top === undefined) {
          assert.ok(isRed(0, 0) && isRed(0, 7) && isBlue(7, 0) && isBlue(7, 7), 'left red, right blue')
        } else {
          const want = (c: Rgb) => (c === RED ? isRed : isBlue)
          assert.ok(want(top)(0, 0) && want(top)(7, 1), 'top half')
          assert.ok(want(bottom)(0, 7) && want(bottom)(7, 6), 'bottom half')
        }
      })
    }

    it('gives a 1-channel model the luma of a colour image (BT.601 weights)', async () => {
      const t = await preprocessImage(await solidPng(6, 6, COLOUR), {channels: 1, height: 3, width: 3})
      assert.equal(t.length, 9)
      const luma = Math.round(0.299 * COLOUR.r + 0.587 * COLOUR.g + 0.114 * COLOUR.b)
      assert.deepEqual(
        [...t],
        Array.from({length: 9}, () => luma),
      )
    })

    it('applies scale, mean, std and BGR order from a PreprocessingSpec', async () => {
      const colour = {b: 30, g: 20, r: 10}
      const t = await preprocessImage(
        await solidPng(4, 4, colour),
        rgb(2, 2, {preprocessing: {channelOrder: 'BGR', mean: [1, 2, 3], scale: 1, std: [2, 2, 2]}}),
      )
      assert.deepEqual([...t], [14.5, 14.5, 14.5, 14.5, 9, 9, 9, 9, 3.5, 3.5, 3.5, 3.5])
      const scaled = await preprocessImage(await solidPng(4, 4, colour), {
        channels: 1,
        height: 1,
        preprocessing: {scale: 1 / 255},
        width: 1,
      })
      const luma = Math.round(0.299 * 10 + 0.587 * 20 + 0.114 * 30)
      assert.ok(Math.abs(scaled[0] - luma / 255) < 1e-6)
    })

    it('writes a batch in place at the given offsets', async () => {
      const out = new Float32Array(2 * 3 * 4).fill(-1)
      await preprocessInto(await solidPng(4, 4, RED), rgb(2, 2), out, 0)
      await preprocessInto(await solidJpeg(8, 8, BLUE), rgb(2, 2), out, 12)
      assert.deepEqual([...out.subarray(0, 12)], [255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0])
      assert.ok(out.subarray(12, 20).every((v) => v <= 2) && out.subarray(20).every((v) => v >= 253))
      await rejects(preprocessInto(await solidPng(4, 4, RED), rgb(2, 2), out, 13), 'BAD_PREPROCESS_OPTIONS', /fit/)
    })

    it('reproduces the raw pixels of the fashion-MNIST test PNGs (28x28 grey, no resize)', async () => {
      const root = join(SHARED, 'models', 'fashion-mnist-lenet', 'test')
      let checked = 0
      for (const label of (await readdir(root)).sort()) {
        for (const name of (await readdir(join(root, label))).sort().slice(0, 3)) {
          const bytes = await readFile(join(root, label, name))
          const {data, info} = await sharp(bytes).toColourspace('b-w').raw().toBuffer({resolveWithObject: true})
          assert.deepEqual([info.width, info.height, info.channels], [28, 28, 1])
          const t = await preprocessImage(bytes, {channels: 1, contentType: 'image/png', height: 28, width: 28})
          assert.deepEqual([...t], [...data], `${label}/${name}`)
          checked++
        }
      }

      assert.ok(checked >= 10, `checked ${checked} images`)
    })
  })

  describe('content types', () => {
    it('accepts image/jpeg, image/png, application/x-image and none (with parameters, any case)', async () => {
      const png = await solidPng(4, 4, RED)
      for (const contentType of [undefined, '', 'image/png', 'IMAGE/PNG; charset=binary', 'application/x-image']) {
        const {info, tensor} = await preprocessImageWithInfo(png, rgb(2, 2, {contentType}))
        assert.equal(info.format, 'image/png')
        assert.equal(info.contentTypeMismatch, false, String(contentType))
        assert.equal(tensor[0], 255)
        assert.ok(info.decodeMs >= 0 && info.sourceWidth === 4 && info.sourceHeight === 4)
      }
    })

    it('takes image/jpg (a common spelling) as image/jpeg', async () => {
      const {info} = await preprocessImageWithInfo(await solidJpeg(4, 4, RED), rgb(2, 2, {contentType: 'Image/JPG'}))
      assert.equal(info.contentType, 'image/jpeg')
      assert.equal(info.contentTypeMismatch, false)
    })

    it('decodes what the bytes are when the content type lies, and says so', async () => {
      const {info, tensor} = await preprocessImageWithInfo(
        await solidPng(4, 4, BLUE),
        rgb(2, 2, {contentType: 'image/jpeg'}),
      )
      assert.equal(info.format, 'image/png')
      assert.equal(info.contentTypeMismatch, true)
      assert.deepEqual([...tensor.subarray(8)], [255, 255, 255, 255])
    })

    it('refuses unsupported declared types and unsupported formats', async () => {
      const jpeg = await solidJpeg(4, 4, RED)
      await rejects(
        preprocessImage(jpeg, rgb(2, 2, {contentType: 'text/plain'})),
        'UNSUPPORTED_CONTENT_TYPE',
        /text\/plain/,
      )
      await rejects(
        preprocessImage(jpeg, rgb(2, 2, {contentType: 'image/gif'})),
        'UNSUPPORTED_CONTENT_TYPE',
        /image\/gif/,
      )
      await rejects(preprocessImage(tinyGif(), rgb(2, 2)), 'UNSUPPORTED_CONTENT_TYPE', /GIF/)
      await rejects(
        preprocessImage(tinyGif(), rgb(2, 2, {contentType: 'image/png'})),
        'UNSUPPORTED_CONTENT_TYPE',
        /GIF.*image\/png/,
      )
      const webp = await sharp(solidPixels(4, 4, RED), {raw: {channels: 3, height: 4, width: 4}})
        .webp()
        .toBuffer()
      await rejects(preprocessImage(webp, rgb(2, 2)), 'UNSUPPORTED_CONTENT_TYPE', /WebP/)
      const tiff = await sharp(solidPixels(4, 4, RED), {raw: {channels: 3, height: 4, width: 4}})
        .tiff()
        .toBuffer()
      await rejects(preprocessImage(tiff, rgb(2, 2)), 'UNSUPPORTED_CONTENT_TYPE', /TIFF/)
    })
  })

  describe('broken and hostile input', () => {
    it('reads the orientation of an EXIF bomb itself and hands libvips the image without EXIF', async function () {
      // 5000 pointers back to IFD0 held libvips ~22 s (issue 21); with EXIF removed it is an ordinary decode, so
      // this timeout is only a backstop far below the unbounded case
      this.timeout(10_000)
      const base = await jpegFrom(splitPixels(40, 20, RED, BLUE), 40, 20)
      const bomb = exifBombJpeg(base, 5000, 6)
      assert.ok(bomb.length > 60_000)
      const header = readImageHeader(bomb, 'image/jpeg')
      assert.equal(header.orientation, 6)
      assert.equal(Buffer.from(header.bytes).indexOf('Exif'), -1, 'no EXIF left for libvips')
      assert.deepEqual(Buffer.from(header.bytes), base, 'everything else kept')
      for (const resize of ['exact', 'fast'] as const) {
        // orientation 6 turns left-red/right-blue into top-red/bottom-blue
        const t = await preprocessImage(bomb, rgb(8, 8, {resize}))
        assert.ok(at(t, 8, 8, 0, 4, 0) > 200 && at(t, 8, 8, 2, 4, 0) < 50, `${resize}: red on top`)
        assert.ok(at(t, 8, 8, 2, 4, 7) > 200 && at(t, 8, 8, 0, 4, 7) < 50, `${resize}: blue at the bottom`)
      }
    })

    it('refuses a JPEG whose data runs out before its declared size (no mostly-grey image)', async () => {
      const small = await jpegFrom(noisePixels(64, 48), 64, 48)
      const lying = lyingSizeJpeg(small, 7000, 7000)
      assert.ok(lying.length < 20_000)
      for (const resize of ['exact', 'fast'] as const) {
        await rejects(
          preprocessImage(lying, rgb(8, 8, {resize})),
          'BAD_IMAGE',
          /could not be decoded: .*premature end/i,
        )
      }
    })

    it('still decodes a JPEG with a harmless decoder warning (stray bytes between segments), as OpenCV does', async () => {
      const base = await jpegFrom(splitPixels(16, 16, RED, BLUE), 16, 16)
      const sos = base.indexOf(Buffer.from([0xff, 0xda]))
      const stray = Buffer.concat([base.subarray(0, sos), Buffer.from([1, 2, 3]), base.subarray(sos)])
      for (const resize of ['exact', 'fast'] as const) {
        const t = await preprocessImage(stray, rgb(16, 16, {resize}))
        assert.ok(at(t, 16, 16, 0, 0, 0) > 250 && at(t, 16, 16, 2, 0, 0) < 5, `${resize}: red on the left`)
      }
    })

    it('refuses a 0-byte body', async () => {
      await rejects(preprocessImage(new Uint8Array(0), rgb(2, 2)), 'BAD_IMAGE', /empty \(0 bytes\)/)
    })

    it('refuses garbage bytes', async () => {
      const garbage = Buffer.from('this is not an image at all, just some text bytes')
      await rejects(preprocessImage(garbage, rgb(2, 2, {contentType: 'image/jpeg'})), 'BAD_IMAGE', /not a JPEG or PNG/)
      // JPEG magic followed by garbage: no frame header.
      const fake = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0, 0]), Buffer.alloc(64, 0x42)])
      await rejects(preprocessImage(fake, rgb(2, 2)), 'BAD_IMAGE', /JPEG/)
    })

    for (const flavour of ['baseline', 'progressive'] as const) {
      it(`refuses a truncated ${flavour} JPEG instead of decoding it partially`, async () => {
        const full = await jpegFrom(noisePixels(256, 256), 256, 256, {flavour})
        assert.equal((await preprocessImage(full, rgb(8, 8))).length, 192)
        const cut = full.subarray(0, Math.floor(full.length * 0.7))
        await rejects(preprocessImage(cut, rgb(8, 8)), 'BAD_IMAGE', /JPEG image could not be decoded: .*premature end/i)
      })
    }

    it('refuses a truncated PNG', async () => {
      const full = await pngFrom(noisePixels(64, 64), 64, 64)
      await rejects(preprocessImage(full.subarray(0, full.length >> 1), rgb(8, 8)), 'BAD_IMAGE', /PNG/)
      await rejects(preprocessImage(full.subarray(0, 12), rgb(8, 8)), 'BAD_IMAGE', /IHDR/)
    })

    it('refuses a PNG decompression bomb from its header, before decoding', async () => {
      const bomb = pngBomb(100_000, 100_000)
      assert.ok(bomb.length < 10_000, `bomb is ${bomb.length} bytes`)
      await rejects(preprocessImage(bomb, rgb(224, 224)), 'IMAGE_TOO_LARGE', /100000x100000 .*not decoded/)
    })

    it('refuses a side over 65535 pixels from its header (a 1x49M PNG would take a minute to decode)', async () => {
      // within the pixel limit, but the decoders' time grows with the rows: this strip took 30-120 s to decode
      for (const resize of ['fast', 'exact'] as const) {
        await rejects(
          preprocessImage(pngBomb(1, 49_000_000), rgb(32, 32, {resize})),
          'IMAGE_TOO_LARGE',
          /1x49000000: a side of 49000000 pixels is more than the 65535 icc decodes/,
        )
        await rejects(preprocessImage(pngBomb(65_536, 1), rgb(2, 2, {resize})), 'IMAGE_TOO_LARGE', /65536 pixels/)
        // the longest side allowed is decoded (a shrink of 65535 times is within libvips' limit)
        assert.equal((await preprocessImage(await solidPng(1, 65_535, RED), rgb(1, 1, {resize})))[0], 255)
      }

      assert.equal((await preprocessImage(await solidPng(3000, 1, RED), rgb(2, 2, {resize: 'fast'})))[0], 255)
    })

    it('honours a custom maxPixels for JPEG and PNG', async () => {
      await rejects(
        preprocessImage(await solidJpeg(100, 100, RED), rgb(8, 8, {maxPixels: 5000})),
        'IMAGE_TOO_LARGE',
        /100x100/,
      )
      await rejects(
        preprocessImage(await solidPng(100, 60, RED), rgb(8, 8, {maxPixels: 5999})),
        'IMAGE_TOO_LARGE',
        /6000 pixels/,
      )
      assert.equal((await preprocessImage(await solidPng(100, 60, RED), rgb(8, 8, {maxPixels: 6000})))[0], 255)
    })

    it('refuses impossible model shapes and preprocessing specs', async () => {
      const png = await solidPng(4, 4, RED)
      await rejects(preprocessImage(png, {channels: 4, height: 2, width: 2}), 'BAD_PREPROCESS_OPTIONS', /1 or 3/)
      await rejects(preprocessImage(png, rgb(0, 2)), 'BAD_PREPROCESS_OPTIONS', /width/)
      await rejects(preprocessImage(png, rgb(2, 2, {preprocessing: {mean: [1, 2]}})), 'BAD_PREPROCESS_OPTIONS', /mean/)
      await rejects(preprocessImage(png, rgb(2, 2, {preprocessing: {std: [0]}})), 'BAD_PREPROCESS_OPTIONS', /std/)
    })
  })
})
