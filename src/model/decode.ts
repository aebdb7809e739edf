/**
 * Decoding a JPEG or PNG to full-resolution 8-bit RGB the way OpenCV's `cv::imdecode(buf, IMREAD_COLOR)` does (the
 * connector's decoder), with libvips (sharp) doing the codec work:
 *
 * - no colour management: an embedded ICC profile is ignored;
 * - the EXIF orientation (read by ./image-header.ts, EXIF removed before libvips sees it) applied as OpenCV's
 *   `ApplyExifOrientation` does (flips and a transpose);
 * - alpha dropped (not composited), grey and palette expanded to three equal or looked-up channels, 16-bit
 *   samples reduced to their high byte (libpng's `png_set_strip_16`, which OpenCV calls);
 * - CMYK/YCCK JPEGs: libjpeg's CMYK values (Adobe-inverted, as libvips undoes when the APP14 marker is present)
 *   through OpenCV's `icvCvt_CMYK2BGR_8u_C4C3R`: `c = k - ((255 - c) * k >> 8)` per channel;
 * - no shrink-on-load.
 *
 * Missing or truncated data is an error, never a half-grey image: libvips fails on errors, and a warning that
 * says data is missing (libjpeg's "premature end of data segment") fails too; any other warning is tolerated, as
 * OpenCV tolerates it.
 */
import type {ImageHeader} from './image-header.js'
import type {Image8} from './resize-linear.js'

import {loadSharp} from './sharp.js'

/** sharp's options for a decode of untrusted bytes. */
export interface DecodeLimits {
  limitInputPixels: number
}

/** Decode as OpenCV's IMREAD_COLOR does (see the module comment); RGB order, 3 channels. */
export async function decodeLikeOpenCv(header: ImageHeader, limits: DecodeLimits): Promise<Image8> {
  const cmyk = header.components === 4
  const sharp = await loadSharp()
  const {data, info} = await strictly(async (failOn) => {
    let pipeline = sharp(header.bytes, {autoOrient: false, failOn, ignoreIcc: true, ...limits})
    if (cmyk) pipeline = pipeline.pipelineColourspace('cmyk').toColourspace('cmyk')
    return pipeline.raw({depth: 'uchar'}).toBuffer({resolveWithObject: true})
  })
  const rgb = toRgb(data, info.width * info.height, info.channels, cmyk ? {inverted: header.hasAdobeMarker} : undefined)
  return orient({channels: 3, data: rgb, height: info.height, width: info.width}, header.orientation)
}

/** Warnings that mean the decoder ran out of data (the rest of the image would be made up). */
const MISSING_DATA = /premature end|truncat|missing|not enough|incomplete/i

/**
 * Run a sharp pipeline with `failOn: 'warning'` and, unless what stopped it says data is missing, once more with
 * `failOn: 'error'`: other warnings are tolerated (OpenCV decodes such images), and real errors fail again.
 */
export async function strictly<T>(decode: (failOn: 'error' | 'warning') => Promise<T>): Promise<T> {
  try {
    return await decode('warning')
  } catch (error) {
    if (MISSING_DATA.test(error instanceof Error ? error.message : String(error))) throw error
    return decode('error')
  }
}

/**
 * 1, 2, 3 or 4 samples per pixel to RGB: grey replicated, alpha dropped; with `cmyk`, 4 samples are a CMYK JPEG's
 * (inverted by libvips when `cmyk.inverted`) converted as OpenCV's `icvCvt_CMYK2BGR_8u_C4C3R`.
 */
function toRgb(data: Buffer, pixels: number, channels: number, cmyk?: {inverted: boolean}): Uint8Array {
  if (channels === 3) return data // libvips' own buffer: no copy
  const out = new Uint8Array(pixels * 3)
  if (channels <= 2) {
    for (let i = 0, j = 0; i < pixels; i++, j += channels) out.fill(data[j], 3 * i, 3 * i + 3)
  } else if (cmyk) {
    const flip = cmyk.inverted ? 255 : 0
    for (let i = 0, j = 0; i < pixels; i++, j += 4) {
      const k = data[j + 3] ^ flip
      for (let c = 0; c < 3; c++) out[3 * i + c] = k - (((255 - (data[j + c] ^ flip)) * k) >> 8)
    }
  } else {
    for (let i = 0, j = 0; i < pixels; i++, j += 4) {
      out[3 * i] = data[j]
      out[3 * i + 1] = data[j + 1]
      out[3 * i + 2] = data[j + 2]
    }
  }

  return out
}

/** OpenCV's `ApplyExifOrientation`: the EXIF orientations 2..8 as flips and a transpose. */
export function orient(image: Image8, orientation: number): Image8 {
  if (orientation <= 1 || orientation > 8) return image
  const {channels: cn, data, height: h, width: w} = image
  const swap = orientation >= 5
  const ow = swap ? h : w
  const oh = swap ? w : h
  const out = new Uint8Array(data.length)
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const [sx, sy] = sourceOf(orientation, x, y, ow, oh)
      const from = (sy * w + sx) * cn
      const to = (y * ow + x) * cn
      for (let c = 0; c < cn; c++) out[to + c] = data[from + c]
    }
  }

  return {channels: cn, data: out, height: oh, width: ow}
}

function sourceOf(orientation: number, x: number, y: number, ow: number, oh: number): [number, number] {
  switch (orientation) {
    case 2: {
      return [ow - 1 - x, y]
    }

    case 3: {
      return [ow - 1 - x, oh - 1 - y]
    }

    case 4: {
      return [x, oh - 1 - y]
    }

    case 5: {
      return [y, x]
    }

    case 6: {
      return [y, ow - 1 - x]
    }

    case 7: {
      return [oh - 1 - y, ow - 1 - x]
    }

    default: {
      return [oh - 1 - y, x]
    }
  }
}
