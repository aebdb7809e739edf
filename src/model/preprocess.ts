/**
 * Image preprocessing, shared by `icc predict` and the runner of `icc serve` (it is on the hot path).
 *
 * It does what the SageMaker image-classification algorithm does at inference (MXNet `imdecode` + resize):
 *
 * 1. Identify the format from the bytes (`sniffImageType`). Only JPEG and PNG are served, as by the connector.
 *    The request's content type must be one of {@link SUPPORTED_CONTENT_TYPES} (`image/jpg` counts as
 *    `image/jpeg`) or absent; when it names the
 *    other supported format than the bytes hold (a "lying" content type), **the bytes win**: the image is
 *    decoded as what it is and `info.contentTypeMismatch` is set so the caller can log it. A content type that
 *    is not supported (image/gif, text/plain...) or bytes in another format (GIF, WebP, TIFF, BMP...) give
 *    `ModelError` `UNSUPPORTED_CONTENT_TYPE`.
 * 2. Read the header without the decoder (./image-header.ts): the dimensions, to refuse images above `maxPixels`
 *    (default 50 megapixels) with `IMAGE_TOO_LARGE` *before* anything is decoded (decompression bombs), and the
 *    EXIF orientation with a bounded parser; EXIF is removed before libvips sees the bytes (EXIF bombs).
 * 3. Decode and resize to exactly H x W, **without keeping the aspect ratio and without cropping**, in one of two
 *    modes (`ResizeMode`, docs/preprocessing.md):
 *    - `exact` (the default): the connector's OpenCV pipeline bit for bit: decoded as `cv2.imdecode(IMREAD_COLOR)`
 *      at full resolution (./decode.ts: no ICC colour management, orientation applied, alpha dropped, grey and
 *      palette expanded, 16-bit to the high byte, CMYK as OpenCV converts it), then `cv2.resize(INTER_LINEAR)`
 *      with OpenCV's fixed-point arithmetic (./resize-linear.ts);
 *    - `fast`: sharp (libvips) converts through an embedded ICC profile to sRGB, shrinks large JPEGs on load and
 *      resizes with its own linear filter. Faster on large images; answers may differ from the connector's.
 *    Truncated or corrupt pixel data is an error in both modes, never a half-grey image (a decoder warning that
 *    data is missing counts). The alpha channel is **dropped, not flattened**: a transparent pixel keeps its colour.
 * 4. Lay out NCHW float32 in one pass: values 0..255 with no mean/std (SageMaker networks normalise with their
 *    first BatchNorm), unless a {@link PreprocessingSpec} gives `scale`, `mean`, `std` and `channelOrder`:
 *    `out = (pixel * scale - mean[c]) / std[c]`, with `c` the index of the channel in the network's order.
 *    A 1-channel model gets luma computed like OpenCV (`0.299 R + 0.587 G + 0.114 B`, fixed point, rounded),
 *    which leaves grey images exactly unchanged.
 *
 * Errors are `ModelError`s with codes `BAD_IMAGE` (empty, garbage, truncated, corrupt), `IMAGE_TOO_LARGE`,
 * `UNSUPPORTED_CONTENT_TYPE` and `BAD_PREPROCESS_OPTIONS` (a programming or model-shape error).
 */
import type {PreprocessingSpec, PreprocessOptions} from './types.js'

import {ModelError} from '../errors.js'
import {isSupportedContentType, normaliseContentType, SUPPORTED_CONTENT_TYPES} from './content-type.js'
import {decodeMemoryBytes} from './decode-memory.js'
import {decodeLikeOpenCv, strictly} from './decode.js'
import {type ImageHeader, readImageHeader, type SupportedImageType} from './image-header.js'
import {resizeLinear} from './resize-linear.js'
import {loadSharp} from './sharp.js'
import {DEFAULT_RESIZE_MODE} from './types.js'

export {SUPPORTED_CONTENT_TYPES} from './content-type.js'
export type {SupportedImageType} from './image-header.js'

export {DEFAULT_RESIZE_MODE, type ResizeMode} from './types.js'

/** Default decompression-bomb guard: 50 megapixels. */
export const DEFAULT_MAX_PIXELS = 50_000_000

/** What {@link preprocessImageWithInfo} reports besides the tensor. */
export interface PreprocessInfo {
  /** Content type as declared by the caller (normalised: lower case, no parameters), if any. */
  contentType?: string
  /** True when the declared content type named the other supported format than the bytes hold. */
  contentTypeMismatch: boolean
  /** Milliseconds spent decoding + resizing in sharp (libvips). */
  decodeMs: number
  /** Format found in the bytes. */
  format: SupportedImageType
  /** Source dimensions as stored in the file (before EXIF orientation). */
  sourceHeight: number
  sourceWidth: number
  /** Milliseconds spent in the float conversion/transpose. */
  tensorMs: number
}

/** Identify JPEG or PNG from the magic bytes; `undefined` for anything else. */
export function sniffImageType(bytes: Uint8Array): SupportedImageType | undefined {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg'
  if (bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return 'image/png'
  return undefined
}

/**
 * Name a format icc does not serve from its magic bytes (for error messages), or `undefined` when the bytes are
 * not a known image format at all.
 */
export function sniffOtherImageFormat(bytes: Uint8Array): string | undefined {
  const ascii = (start: number, end: number) => String.fromCodePoint(...bytes.subarray(start, end))
  if (bytes.length >= 6 && (ascii(0, 6) === 'GIF87a' || ascii(0, 6) === 'GIF89a')) return 'GIF'
  if (bytes.length >= 12 && ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') return 'WebP'
  if (bytes.length >= 4 && (ascii(0, 4) === 'II*\0' || ascii(0, 4) === 'MM\0*')) return 'TIFF'
  if (bytes.length >= 2 && ascii(0, 2) === 'BM') return 'BMP'
  if (bytes.length >= 12 && ascii(4, 8) === 'ftyp') return 'HEIF/AVIF'
  if (bytes.length >= 4 && ascii(0, 4) === '%PDF') return 'PDF'
  if (bytes.length >= 5 && /^\s*<(\?xml|svg)/i.test(ascii(0, Math.min(bytes.length, 64)))) return 'SVG/XML'
  return undefined
}

/**
 * Decode, orient, resize and lay out one image as a `[C, H, W]` float32 tensor (see the module comment).
 * @throws ModelError BAD_IMAGE, IMAGE_TOO_LARGE, UNSUPPORTED_CONTENT_TYPE, BAD_PREPROCESS_OPTIONS
 */
export async function preprocessImage(bytes: Uint8Array, options: PreprocessOptions): Promise<Float32Array> {
  const out = new Float32Array(tensorLength(options))
  await preprocessInto(bytes, options, out, 0)
  return out
}

/** {@link preprocessImage}, also returning what was found and how long decoding took. */
export async function preprocessImageWithInfo(
  bytes: Uint8Array,
  options: PreprocessOptions,
): Promise<{info: PreprocessInfo; tensor: Float32Array}> {
  const tensor = new Float32Array(tensorLength(options))
  const info = await preprocessInto(bytes, options, tensor, 0)
  return {info, tensor}
}

/**
 * Write one image's `[C, H, W]` tensor into `out` starting at element `offset` (zero-copy batching: image `i` of
 * a batch goes at `offset = i * C * H * W`).
 */
export async function preprocessInto(
  bytes: Uint8Array,
  options: PreprocessOptions,
  out: Float32Array,
  offset: number,
): Promise<PreprocessInfo> {
  const length = tensorLength(options)
  if (!Number.isInteger(offset) || offset < 0 || offset + length > out.length) {
    throw new ModelError(
      'BAD_PREPROCESS_OPTIONS',
      `The output tensor has ${out.length} elements; ${length} do not fit at offset ${offset}.`,
    )
  }

  const contentType = normaliseContentType(options.contentType)
  const format = checkFormat(bytes, contentType)
  const header = readImageHeader(bytes, format)
  const {height: sourceHeight, width: sourceWidth} = header
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS
  checkSize(sourceWidth, sourceHeight, maxPixels)

  const {channels, height, width} = options
  const mode = options.resize ?? DEFAULT_RESIZE_MODE
  const release = await options.reserve?.(decodeMemoryBytes(header, {height, mode, width}), {
    height: sourceHeight,
    width: sourceWidth,
  })
  const started = performance.now()
  let raw: Uint8Array
  try {
    raw =
      mode === 'exact'
        ? resizeLinear(await decodeLikeOpenCv(header, {limitInputPixels: maxPixels}), width, height).data
        : await decodeFast(header, width, height, maxPixels)
  } catch (error) {
    throw new ModelError('BAD_IMAGE', `The ${formatName(format)} image could not be decoded: ${firstLine(error)}.`, {
      cause: error,
      suggestions: ['Check that the file is complete (not truncated) and is a valid JPEG or PNG image.'],
    })
  } finally {
    release?.()
  }

  const decoded = performance.now()
  if (raw.length !== width * height * 3) {
    throw new ModelError(
      'BAD_IMAGE',
      `The decoder returned ${raw.length} bytes for a ${width}x${height} RGB image; the image is not usable.`,
    )
  }

  writeTensor(raw, out, offset, channels, width * height, options.preprocessing)
  return {
    contentType,
    contentTypeMismatch: contentType !== undefined && contentType !== 'application/x-image' && contentType !== format,
    decodeMs: decoded - started,
    format,
    sourceHeight,
    sourceWidth,
    tensorMs: performance.now() - decoded,
  }
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]

function tensorLength(options: PreprocessOptions): number {
  const {channels, height, width} = options
  if (channels !== 1 && channels !== 3) {
    throw new ModelError('BAD_PREPROCESS_OPTIONS', `Models must take 1 or 3 input channels, not ${channels}.`)
  }

  for (const [name, value] of [
    ['width', width],
    ['height', height],
  ] as const) {
    if (!Number.isInteger(value) || value < 1 || value > 16_384) {
      throw new ModelError(
        'BAD_PREPROCESS_OPTIONS',
        `The model input ${name} must be an integer 1..16384, not ${value}.`,
      )
    }
  }

  const spec = options.preprocessing
  if (spec) {
    for (const key of ['mean', 'std'] as const) {
      const list = spec[key]
      if (list && list.length !== 1 && list.length !== channels) {
        throw new ModelError(
          'BAD_PREPROCESS_OPTIONS',
          `preprocessing.${key} has ${list.length} values; give 1 or ${channels} (one per channel).`,
        )
      }

      if (list?.some((v) => !Number.isFinite(v) || (key === 'std' && v === 0))) {
        throw new ModelError('BAD_PREPROCESS_OPTIONS', `preprocessing.${key} must hold finite numbers (std non-zero).`)
      }
    }
  }

  return channels * width * height
}

function checkFormat(bytes: Uint8Array, contentType: string | undefined): SupportedImageType {
  if (contentType !== undefined && !isSupportedContentType(contentType)) {
    throw new ModelError(
      'UNSUPPORTED_CONTENT_TYPE',
      `Content type "${contentType}" is not supported; send image/jpeg or image/png (application/x-image or no content type lets icc detect the format).`,
      {details: {contentType, supported: SUPPORTED_CONTENT_TYPES}},
    )
  }

  if (bytes.length === 0) {
    throw new ModelError('BAD_IMAGE', 'The image is empty (0 bytes).', {
      suggestions: ['Send the bytes of a JPEG or PNG image as the request body.'],
    })
  }

  const format = sniffImageType(bytes)
  if (format) return format
  const other = sniffOtherImageFormat(bytes)
  if (other) {
    throw new ModelError(
      'UNSUPPORTED_CONTENT_TYPE',
      `The image is ${other}; only JPEG and PNG images are supported${contentType ? ` (the request said ${contentType})` : ''}.`,
      {details: {contentType, detected: other}, suggestions: ['Convert the image to JPEG or PNG.']},
    )
  }

  const head = Buffer.from(bytes.subarray(0, 8)).toString('hex')
  throw new ModelError(
    'BAD_IMAGE',
    `The data (${bytes.length} bytes, starting ${head}) is not a JPEG or PNG image${contentType ? ` although the request said ${contentType}` : ''}.`,
    {details: {contentType, size: bytes.length}},
  )
}

/**
 * The longest side icc decodes: the largest a JPEG can have. The decoders' time grows with the number of rows, not
 * only of pixels (a 200 KB PNG of 1x49,000,000 pixels, under the pixel limit, takes 30-120 s), so the side is
 * bounded too: a 1x65,535 PNG decodes in about 0.1 s. It also keeps every shrink within the 1,000,000 times libvips'
 * resizer can (beyond that it fails with "vshrink not set").
 */
export const MAX_SIDE = 65_535

/** Refuses, from the header, an image over the pixel limit or with a side over MAX_SIDE. */
function checkSize(width: number, height: number, maxPixels: number): void {
  const details = {height, maxPixels, maxSide: MAX_SIDE, width}
  if (width * height > maxPixels) {
    throw new ModelError(
      'IMAGE_TOO_LARGE',
      `The image is ${width}x${height} (${width * height} pixels), more than the limit of ${maxPixels} pixels; it was not decoded.`,
      {details, suggestions: ['Send a smaller image (the model only needs its input size), or raise the pixel limit.']},
    )
  }

  if (Math.max(width, height) > MAX_SIDE) {
    throw new ModelError(
      'IMAGE_TOO_LARGE',
      `The image is ${width}x${height}: a side of ${Math.max(width, height)} pixels is more than the ${MAX_SIDE} icc decodes (the most a JPEG can have); it was not decoded.`,
      {details, suggestions: ['Crop or scale the image so that neither side is over 65535 pixels.']},
    )
  }
}

/** The `fast` mode: sharp decodes (ICC to sRGB, shrink-on-load), orients and resizes. */
async function decodeFast(header: ImageHeader, width: number, height: number, maxPixels: number): Promise<Buffer> {
  const sharp = await loadSharp()
  return strictly((failOn) => {
    let pipeline = sharp(header.bytes, {autoOrient: false, failOn, limitInputPixels: maxPixels})
    // the orientation read by ./image-header.ts (EXIF was removed): rotate, then mirror, as libvips' autorot does
    const {flop, rotate} = ORIENTATION_STEPS[header.orientation] ?? ORIENTATION_STEPS[1]
    if (rotate) pipeline = pipeline.rotate(rotate)
    if (flop) pipeline = pipeline.flop()
    return pipeline
      .removeAlpha()
      .toColourspace('srgb')
      .resize(width, height, {fit: 'fill', kernel: 'linear'})
      .raw({depth: 'uchar'})
      .toBuffer()
  })
}

const ORIENTATION_STEPS: Record<number, {flop: boolean; rotate: number}> = {
  1: {flop: false, rotate: 0},
  2: {flop: true, rotate: 0},
  3: {flop: false, rotate: 180},
  4: {flop: true, rotate: 180},
  5: {flop: true, rotate: 90},
  6: {flop: false, rotate: 90},
  7: {flop: true, rotate: 270},
  8: {flop: false, rotate: 270},
}

function formatName(format: SupportedImageType): string {
  return format === 'image/png' ? 'PNG' : 'JPEG'
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  return message.split('\n')[0].replace(/\.$/, '')
}

/** HWC uint8 RGB -> CHW float32 (RGB/BGR or luma), with optional scale/mean/std, in one pass per plane. */
function writeTensor(
  raw: Uint8Array,
  out: Float32Array,
  offset: number,
  channels: number,
  plane: number,
  spec: PreprocessingSpec | undefined,
): void {
  const scale = spec?.scale ?? 1
  const meanOf = (c: number) => (spec?.mean ? (spec.mean.length === 1 ? spec.mean[0] : spec.mean[c]) : 0)
  const stdOf = (c: number) => (spec?.std ? (spec.std.length === 1 ? spec.std[0] : spec.std[c]) : 1)
  const plain = scale === 1 && !spec?.mean && !spec?.std
  if (channels === 1) {
    const mul = scale / stdOf(0)
    const add = -meanOf(0) / stdOf(0)
    for (let i = 0, j = 0; i < plane; i++, j += 3) {
      // OpenCV's fixed-point RGB -> gray (BT.601 weights), exact for grey pixels.
      const y = (raw[j] * 4899 + raw[j + 1] * 9617 + raw[j + 2] * 1868 + 8192) >> 14
      out[offset + i] = plain ? y : y * mul + add
    }

    return
  }

  const bgr = spec?.channelOrder === 'BGR'
  for (let c = 0; c < 3; c++) {
    const source = bgr ? 2 - c : c
    const base = offset + c * plane
    if (plain) {
      for (let i = 0, j = source; i < plane; i++, j += 3) out[base + i] = raw[j]
    } else {
      const mul = scale / stdOf(c)
      const add = -meanOf(c) / stdOf(c)
      for (let i = 0, j = source; i < plane; i++, j += 3) out[base + i] = raw[j] * mul + add
    }
  }
}
