/**
 * Image preprocessing, shared by `icc predict` and the runner of `icc serve`.
 *
 * What the SageMaker image-classification algorithm does at inference: decode (JPEG/PNG), apply EXIF orientation,
 * convert to RGB (or gray for 1-channel models), resize to H x W without keeping the aspect ratio and without
 * cropping (bilinear), and lay out NCHW float32 with values in 0..255 (the network normalises itself).
 */
import sharp from 'sharp'

import type {PreprocessOptions} from './types.js'

import {ModelError} from '../errors.js'

export async function preprocessImage(bytes: Uint8Array, options: PreprocessOptions): Promise<Float32Array> {
  const {channels, height, width} = options
  let raw: Buffer
  try {
    let pipeline = sharp(bytes, {limitInputPixels: options.maxPixels ?? 50_000_000}).rotate()
    pipeline = channels === 1 ? pipeline.grayscale() : pipeline.removeAlpha().toColourspace('srgb')
    raw = await pipeline.resize(width, height, {fit: 'fill', kernel: 'linear'}).raw().toBuffer()
  } catch (error) {
    throw new ModelError('BAD_IMAGE', `The image could not be decoded: ${(error as Error).message}`, {cause: error})
  }

  const plane = width * height
  const out = new Float32Array(channels * plane)
  const src = raw.length / plane
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < plane; i++) out[c * plane + i] = raw[i * src + c]
  }

  return out
}
