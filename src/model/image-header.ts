/**
 * What icc reads from a JPEG or PNG before decoding it, with bounded work and no help from the decoder: the
 * dimensions (for the pixel limit), the EXIF orientation (the only metadata field icc uses), whether a JPEG is
 * CMYK/YCCK and carries Adobe's APP14 marker, and the bytes with every EXIF block removed.
 *
 * Removing EXIF before libvips sees the image is the defence against EXIF bombs (issue 21: an IFD0 with thousands
 * of pointers back to itself costs libexif time quadratic in the entries, 22 s for a 65 KB JPEG). The orientation
 * is read here instead, from IFD0 only, in one pass over at most the entries that fit in the block; a block that
 * is malformed counts as "no orientation", as it does for OpenCV.
 */
import {ModelError} from '../errors.js'

export type SupportedImageType = 'image/jpeg' | 'image/png'

export interface ImageHeader {
  /** The image's bytes without EXIF (the input itself when it had none). */
  bytes: Uint8Array
  /** JPEG colour components (1, 3 or 4); 0 for PNG. */
  components: number
  height: number
  /** True for a JPEG with an Adobe APP14 marker (libvips then inverts CMYK values, as Photoshop writes them). */
  hasAdobeMarker: boolean
  /** EXIF orientation 1..8 (1 when absent or invalid). */
  orientation: number
  /**
   * What decoding costs in memory (./decode-memory.ts): `progressive` for a progressive JPEG or an interlaced PNG
   * (the decoder holds the whole image before the first row comes out), `samples` per pixel as the decoder
   * delivers them, `bytesPerSample` (PNG 16-bit: 2) and, for a JPEG, `planes`: the components' sizes relative to
   * the image (3 for 4:4:4, 1.5 for 4:2:0).
   */
  decoding: {bytesPerSample: number; planes: number; progressive: boolean; samples: number}
  width: number
}

const EXIF_ID = [0x45, 0x78, 0x69, 0x66, 0, 0] // "Exif\0\0"
const ORIENTATION_TAG = 0x01_12
const ADOBE_ID = [0x41, 0x64, 0x6f, 0x62, 0x65] // "Adobe"

/** Read the header of a JPEG or PNG and drop its EXIF (see the module comment). */
export function readImageHeader(bytes: Uint8Array, format: SupportedImageType): ImageHeader {
  return format === 'image/png' ? readPng(bytes) : readJpeg(bytes)
}

function readPng(bytes: Uint8Array): ImageHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (bytes.length < 24 || view.getUint32(12) !== 0x49_48_44_52) {
    throw new ModelError('BAD_IMAGE', 'The PNG image is truncated or corrupt: its IHDR header is missing.')
  }

  const {height, width} = checkedDimensions(view.getUint32(16), view.getUint32(20), 'PNG')
  let orientation = 1
  const drop: Array<[number, number]> = []
  // chunks: length, type, data, CRC; eXIf holds a TIFF structure without the "Exif\0\0" prefix
  for (let pos = 8; pos + 12 <= bytes.length;) {
    const length = view.getUint32(pos)
    const end = pos + 12 + length
    if (view.getUint32(pos + 4) === 0x65_58_49_66) {
      if (drop.length === 0) orientation = exifOrientation(bytes.subarray(pos + 8, Math.min(end - 4, bytes.length)))
      drop.push([pos, Math.min(end, bytes.length)])
    }

    pos = end
  }

  return {
    bytes: without(bytes, drop),
    components: 0,
    decoding: pngDecoding(bytes),
    hasAdobeMarker: false,
    height,
    orientation,
    width,
  }
}

/** Samples per pixel of each PNG colour type (a palette expands to RGB, or RGBA with transparency: counted as 4). */
const PNG_SAMPLES: Record<number, number> = {0: 1, 2: 3, 3: 4, 4: 2, 6: 4}

function pngDecoding(bytes: Uint8Array): ImageHeader['decoding'] {
  return {
    bytesPerSample: bytes[24] === 16 ? 2 : 1,
    planes: 0,
    progressive: bytes[28] === 1,
    samples: PNG_SAMPLES[bytes[25]] ?? 4,
  }
}

function readJpeg(bytes: Uint8Array): ImageHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let orientation = 1
  let exifSeen = false
  let hasAdobeMarker = false
  let frame: undefined | {components: number; decoding: ImageHeader['decoding']; height: number; width: number}
  const drop: Array<[number, number]> = []
  // every segment up to the start of scan (EXIF may also follow the frame header)
  let pos = 2
  while (pos + 4 <= bytes.length) {
    if (bytes[pos] !== 0xff) {
      // stray bytes between segments: libjpeg skips them with a warning, and so does this walk (an EXIF block
      // behind them is still found and removed)
      if (frame) {
        pos++
        continue
      }

      throw new ModelError('BAD_IMAGE', `The JPEG image is corrupt: no marker at byte ${pos} of its header.`)
    }

    const marker = bytes[pos + 1]
    if (marker === 0xff) {
      pos++ // fill byte
      continue
    }

    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      pos += 2 // markers without a length
      continue
    }

    if (marker === 0xd9 || marker === 0xda) break // end of image / start of scan
    const end = pos + 2 + view.getUint16(pos + 2)
    const data = bytes.subarray(pos + 4, Math.min(end, bytes.length))
    if (marker === 0xe1 && startsWith(data, EXIF_ID)) {
      if (!exifSeen) orientation = exifOrientation(data.subarray(EXIF_ID.length))
      exifSeen = true
      drop.push([pos, Math.min(end, bytes.length)])
    } else if (marker === 0xee && startsWith(data, ADOBE_ID)) {
      hasAdobeMarker = true
    }

    const isFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc
    if (isFrame && !frame && pos + 10 <= bytes.length) {
      frame = {
        components: bytes[pos + 9],
        decoding: jpegDecoding(bytes.subarray(pos + 9, Math.min(end, bytes.length)), marker),
        ...checkedDimensions(view.getUint16(pos + 7), view.getUint16(pos + 5), 'JPEG'),
      }
    }

    pos = end
  }

  if (!frame) throw new ModelError('BAD_IMAGE', 'The JPEG image is truncated or corrupt: it has no frame header (SOF).')
  return {bytes: without(bytes, drop), hasAdobeMarker, orientation, ...frame}
}

/**
 * A JPEG frame header's decoding costs, from its component list (`sof`: the count, then id, sampling factors
 * HHHHVVVV and table per component) and its marker (SOF2, SOF6, SOF10, SOF14 are progressive).
 */
function jpegDecoding(sof: Uint8Array, marker: number): ImageHeader['decoding'] {
  const count = sof[0] ?? 0
  const factors: number[] = []
  for (let i = 0; i < count && 3 + 3 * i < sof.length; i++) factors.push(sof[2 + 3 * i])
  const area = (f: number) => (f >> 4) * (f & 0x0f)
  const largest = Math.max(1, ...factors.map((f) => area(f)))
  const planes = factors.reduce((sum, f) => sum + area(f) / largest, 0) || count
  return {bytesPerSample: 1, planes, progressive: (marker & 0x03) === 0x02, samples: count}
}

/** The orientation tag of IFD0 in a TIFF structure; 1 when absent, invalid or out of bounds. */
export function exifOrientation(tiff: Uint8Array): number {
  if (tiff.length < 8) return 1
  const view = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength)
  const order = view.getUint16(0)
  if (order !== 0x49_49 && order !== 0x4d_4d) return 1
  const little = order === 0x49_49
  if (view.getUint16(2, little) !== 42) return 1
  const ifd = view.getUint32(4, little)
  if (ifd + 2 > tiff.length) return 1
  // at most the entries that fit in the block: one pass, no pointers followed
  const count = Math.min(view.getUint16(ifd, little), Math.floor((tiff.length - ifd - 2) / 12))
  for (let i = 0; i < count; i++) {
    const entry = ifd + 2 + i * 12
    if (view.getUint16(entry, little) !== ORIENTATION_TAG) continue
    if (view.getUint16(entry + 2, little) !== 3) return 1 // SHORT
    const value = view.getUint16(entry + 8, little)
    return value >= 1 && value <= 8 ? value : 1
  }

  return 1
}

function startsWith(data: Uint8Array, prefix: number[]): boolean {
  return data.length >= prefix.length && prefix.every((b, i) => data[i] === b)
}

function without(bytes: Uint8Array, drop: Array<[number, number]>): Uint8Array {
  if (drop.length === 0) return bytes
  const parts: Uint8Array[] = []
  let from = 0
  for (const [start, end] of drop) {
    parts.push(bytes.subarray(from, start))
    from = end
  }

  parts.push(bytes.subarray(from))
  return Buffer.concat(parts)
}

function checkedDimensions(width: number, height: number, name: 'JPEG' | 'PNG') {
  if (width === 0 || height === 0) {
    throw new ModelError('BAD_IMAGE', `The ${name} header declares an empty image (${width}x${height}).`)
  }

  return {height, width}
}
