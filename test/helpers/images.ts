/**
 * Test helpers: real encoded images built with sharp (solid colours, split images, every PNG/JPEG flavour) and
 * hand-made hostile files (PNG decompression bomb, GIF), for the preprocessing, predict and serve tests.
 */
import {deflateSync} from 'node:zlib'
import sharp from 'sharp'

export interface Rgb {
  b: number
  g: number
  r: number
}

export type JpegFlavour = 'baseline' | 'cmyk' | 'progressive'

/** Raw RGB pixels of a `width` x `height` image whose every pixel is `colour`. */
export function solidPixels(width: number, height: number, colour: Rgb): Buffer {
  const px = Buffer.alloc(width * height * 3)
  for (let i = 0; i < px.length; i += 3) {
    px[i] = colour.r
    px[i + 1] = colour.g
    px[i + 2] = colour.b
  }

  return px
}

/** Raw RGB pixels: left half `left`, right half `right`. */
export function splitPixels(width: number, height: number, left: Rgb, right: Rgb): Buffer {
  const px = Buffer.alloc(width * height * 3)
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const c = x < width / 2 ? left : right
      const i = (y * width + x) * 3
      px[i] = c.r
      px[i + 1] = c.g
      px[i + 2] = c.b
    }
  }

  return px
}

/** Raw RGB pixels of a deterministic noisy pattern (compresses badly: good for truncation tests). */
export function noisePixels(width: number, height: number): Buffer {
  const px = Buffer.alloc(width * height * 3)
  let s = 12_345
  for (let i = 0; i < px.length; i++) {
    s = (s * 1_103_515_245 + 12_345) % 2_147_483_648
    px[i] = s >>> 23
  }

  return px
}

/** Encode raw RGB pixels as JPEG (quality 100, no chroma subsampling, so solid colours survive). */
export async function jpegFrom(
  pixels: Buffer,
  width: number,
  height: number,
  options: {flavour?: JpegFlavour; orientation?: number} = {},
): Promise<Buffer> {
  let image = sharp(pixels, {raw: {channels: 3, height, width}})
  if (options.flavour === 'cmyk') image = image.toColourspace('cmyk')
  if (options.orientation) image = image.withMetadata({orientation: options.orientation})
  return image
    .jpeg({chromaSubsampling: '4:4:4', progressive: options.flavour === 'progressive', quality: 100})
    .toBuffer()
}

/** Encode raw RGB pixels as PNG (8-bit RGB unless told). */
export async function pngFrom(
  pixels: Buffer,
  width: number,
  height: number,
  options: {kind?: 'gray' | 'gray16' | 'palette' | 'rgb' | 'rgb16' | 'rgba'; orientation?: number} = {},
): Promise<Buffer> {
  let image = sharp(pixels, {raw: {channels: 3, height, width}})
  switch (options.kind) {
    case 'gray': {
      image = image.toColourspace('b-w')
      break
    }

    case 'gray16': {
      image = image.toColourspace('grey16')
      break
    }

    case 'rgb16': {
      image = image.toColourspace('rgb16')
      break
    }

    case 'rgba': {
      image = image.ensureAlpha(0.5)
      break
    }

    default:
  }

  if (options.orientation) image = image.withMetadata({orientation: options.orientation})
  return image.png({palette: options.kind === 'palette'}).toBuffer()
}

/** A solid-colour JPEG. */
export async function solidJpeg(width: number, height: number, colour: Rgb, flavour: JpegFlavour = 'baseline') {
  return jpegFrom(solidPixels(width, height, colour), width, height, {flavour})
}

/** A solid-colour 8-bit RGB PNG. */
export async function solidPng(width: number, height: number, colour: Rgb) {
  return pngFrom(solidPixels(width, height, colour), width, height)
}

/** One PNG chunk (length, type, data, CRC-32). */
export function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8)
  head.writeUInt32BE(data.length, 0)
  head.write(type, 4, 'latin1')
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0)
  return Buffer.concat([head, data, crc])
}

/**
 * A PNG decompression bomb: a valid signature and IHDR declaring `width` x `height` 8-bit RGB pixels, and an
 * IDAT holding a few deflated rows of zeros. The file is a few hundred bytes.
 */
export function pngBomb(width = 100_000, height = 100_000): Buffer {
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr[8] = 8 // bit depth
  ihdr[9] = 2 // colour type RGB
  const rows = deflateSync(Buffer.alloc((width * 3 + 1) * 4))
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', rows),
    pngChunk('IEND', Buffer.alloc(0)),
  ])
}

/** A minimal 1x1 GIF89a. */
export function tinyGif(): Buffer {
  return Buffer.from('R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==', 'base64')
}

function crc32(data: Buffer): number {
  let crc = 0xff_ff_ff_ff
  for (const byte of data) {
    crc ^= byte
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xed_b8_83_20 : crc >>> 1
  }

  return (crc ^ 0xff_ff_ff_ff) >>> 0
}

/**
 * An EXIF bomb (issue 21): `jpeg` with an APP1 EXIF block whose IFD0 holds an orientation entry and then `pointers`
 * Exif-IFD pointers, each back to IFD0 (libexif's time grows with the square of the entries: 5000 took 22 s).
 */
export function exifBombJpeg(jpeg: Buffer, pointers: number, orientation: number): Buffer {
  const count = pointers + 1
  const tiff = Buffer.alloc(8 + 2 + count * 12 + 4)
  tiff.write('II', 0, 'latin1')
  tiff.writeUInt16LE(42, 2)
  tiff.writeUInt32LE(8, 4)
  tiff.writeUInt16LE(count, 8)
  for (let i = 0; i < count; i++) {
    const at = 10 + i * 12
    if (i === 0) {
      tiff.writeUInt16LE(0x01_12, at) // Orientation, SHORT, 1
      tiff.writeUInt16LE(3, at + 2)
      tiff.writeUInt32LE(1, at + 4)
      tiff.writeUInt16LE(orientation, at + 8)
    } else {
      tiff.writeUInt16LE(0x87_69, at) // ExifIFDPointer, LONG, 1 -> IFD0
      tiff.writeUInt16LE(4, at + 2)
      tiff.writeUInt32LE(1, at + 4)
      tiff.writeUInt32LE(8, at + 8)
    }
  }

  const payload = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff])
  const head = Buffer.from([0xff, 0xe1, 0, 0])
  head.writeUInt16BE(payload.length + 2, 2)
  return Buffer.concat([jpeg.subarray(0, 2), head, payload, jpeg.subarray(2)])
}

/** `jpeg` with its frame header rewritten to claim `width` x `height` (the data stays that of the real image). */
export function lyingSizeJpeg(jpeg: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(jpeg)
  for (let pos = 2; pos + 9 < out.length; pos += 2 + out.readUInt16BE(pos + 2)) {
    const marker = out[pos + 1]
    if (marker >= 0xc0 && marker <= 0xc2) {
      out.writeUInt16BE(height, pos + 5)
      out.writeUInt16BE(width, pos + 7)
      return out
    }
  }

  throw new Error('no frame header')
}

/** Raw RGB pixels of a photo stand-in: smooth colour fields, edges and texture (JPEG-friendly, every pixel differs). */
export function photoPixels(width: number, height: number, seed = 1): Buffer {
  const px = Buffer.alloc(width * height * 3)
  const noise = noisePixels(width, height)
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        const i = (y * width + x) * 3 + c
        const field = Math.sin((x * seed) / 37 + c) * Math.cos(y / 23 - c) * 100
        const edge = (x + seed * y) % 97 < 30 ? 40 : -40
        px[i] = Math.max(0, Math.min(255, Math.round(128 + field + edge + (noise[i] - 128) / 8)))
      }
    }
  }

  return px
}
