/**
 * How much memory decoding one image takes, estimated from its header before anything is decoded (issue 21: a
 * 288 KB progressive 7000x7000 JPEG needs ~295 MB to decode, a 592 KB 16-bit RGBA interlaced PNG ~570 MB). The
 * runner of `icc serve` admits decodes against the memory its limit leaves (../serve/decode-admission.ts).
 *
 * The parts, in bytes, for a W x H image (measured with sharp 0.33 / libvips 8.15, peak RSS of one decode, see
 * docs/decode-memory.md):
 * - the decoded pixels: W x H x samples (8-bit; the exact mode's full-resolution decode, or in the `fast` mode a
 *   JPEG shrunk on load by up to 8);
 * - a progressive JPEG: libjpeg's coefficients of the whole image, W x H x planes x 2 bytes;
 * - an interlaced PNG: the whole image at its own depth, W x H x samples x bytesPerSample;
 * - the exact mode's RGB copy when the decoder gives other than 3 samples, and its rotated copy when the EXIF
 *   orientation turns the image;
 * plus {@link DECODE_OVERHEAD} for libvips' buffers and the margin of the estimate.
 */
import type {ImageHeader} from './image-header.js'
import type {ResizeMode} from './types.js'

/** Fraction added to the sum of the parts (measured peaks were within 5 % of it; the rest is margin). */
export const DECODE_OVERHEAD = 0.15

/** Bytes one decode of this image takes at its peak (see the module comment). */
export function decodeMemoryBytes(
  header: Pick<ImageHeader, 'decoding' | 'height' | 'orientation' | 'width'>,
  target: {height: number; mode: ResizeMode; width: number},
): number {
  const {decoding, height, width} = header
  const pixels = width * height
  const shrink = target.mode === 'fast' && decoding.planes > 0 ? jpegShrink(header, target) : 1
  let bytes = Math.ceil(width / shrink) * Math.ceil(height / shrink) * decoding.samples
  if (decoding.progressive) {
    bytes += decoding.planes > 0 ? pixels * decoding.planes * 2 : pixels * decoding.samples * decoding.bytesPerSample
  }

  if (target.mode === 'exact') {
    if (decoding.samples !== 3) bytes += pixels * 3
    if (header.orientation > 1) bytes += pixels * 3
  }

  return Math.ceil(bytes * (1 + DECODE_OVERHEAD))
}

/** libvips' JPEG shrink-on-load for a resize to the target (1, 2, 4 or 8; never below the target's size). */
function jpegShrink(header: {height: number; width: number}, target: {height: number; width: number}): number {
  const factor = Math.min(header.width / target.width, header.height / target.height)
  let shrink = 1
  while (shrink < 8 && factor >= shrink * 2) shrink *= 2
  return shrink
}
