/**
 * OpenCV's `cv::resize(..., INTER_LINEAR)` for 8-bit interleaved images, bit for bit (the exact preprocessing
 * mode; see docs/preprocessing.md). What it reproduces, from OpenCV 4.x `modules/imgproc/src/resize.cpp`:
 *
 * - same size: a copy; an exact 2x downscale in both directions: OpenCV switches to INTER_AREA's fast path, the
 *   rounded mean of each 2x2 block;
 * - otherwise `resizeGeneric_` with half-pixel centres: `f = float((d + 0.5) * scale - 0.5)` (computed in double,
 *   stored as float), `s = floor(f)`, weights `saturate_cast<short>((1 - f) * 2048)` and `(f * 2048)` rounded
 *   half to even (INTER_RESIZE_COEF_BITS = 11); columns left of the image take the first pixel and columns
 *   right of it the last (weight 2048), rows are clamped to the image but keep their weights;
 * - horizontal pass in int32 (`S[sx] * a0 + S[sx + cn] * a1`), vertical pass as OpenCV's 8-bit specialisation
 *   (`VResizeLinear<uchar, int, short, ...>`, identical in its SIMD and scalar loops):
 *   `(((b0 * (D0 >> 4)) >> 16) + ((b1 * (D1 >> 4)) >> 16) + 2) >> 2`.
 */

/** An interleaved 8-bit image. */
export interface Image8 {
  channels: number
  data: Uint8Array
  height: number
  width: number
}

const COEF_SCALE = 2048

/** Resize `src` to `width` x `height` exactly as OpenCV's INTER_LINEAR does for CV_8UC(n). */
export function resizeLinear(src: Image8, width: number, height: number): Image8 {
  const {channels: cn, height: sh, width: sw} = src
  const dst: Image8 = {channels: cn, data: new Uint8Array(width * height * cn), height, width}
  if (width === sw && height === sh) {
    dst.data.set(src.data.subarray(0, width * height * cn))
    return dst
  }

  const scaleX = 1 / (width / sw)
  const scaleY = 1 / (height / sh)
  if (isAreaFast2x(scaleX, scaleY)) {
    areaFast2x(src, dst)
    return dst
  }

  const x = columnTable(sw, width, scaleX, cn)
  const rows = rowTable(sh, height, scaleY)
  const rowLength = width * cn
  // horizontally resized source rows, computed once each (downscaling skips rows nobody needs)
  const cache = new Map<number, Int32Array>()
  const horizontal = (sy: number): Int32Array => {
    let row = cache.get(sy)
    if (!row) {
      row = resizeRow(src.data, sy * sw * cn, x, rowLength)
      cache.set(sy, row)
    }

    return row
  }

  for (let dy = 0; dy < height; dy++) {
    const D0 = horizontal(rows.y0[dy])
    const D1 = horizontal(rows.y1[dy])
    const b0 = rows.b0[dy]
    const b1 = rows.b1[dy]
    const out = dy * rowLength
    for (let i = 0; i < rowLength; i++) {
      dst.data[out + i] = (((b0 * (D0[i] >> 4)) >> 16) + ((b1 * (D1[i] >> 4)) >> 16) + 2) >> 2
    }

    // rows are used in increasing order: forget the ones below this row's first
    for (const key of cache.keys()) if (key < rows.y0[dy]) cache.delete(key)
  }

  return dst
}

/** OpenCV's `is_area_fast && iscale_x == 2 && iscale_y == 2` test (scales within DBL_EPSILON of 2). */
function isAreaFast2x(scaleX: number, scaleY: number): boolean {
  const ix = Math.round(scaleX)
  const iy = Math.round(scaleY)
  return ix === 2 && iy === 2 && Math.abs(scaleX - ix) < Number.EPSILON && Math.abs(scaleY - iy) < Number.EPSILON
}

function areaFast2x(src: Image8, dst: Image8): void {
  const {channels: cn, width: sw} = src
  const stride = sw * cn
  for (let dy = 0; dy < dst.height; dy++) {
    const r0 = 2 * dy * stride
    const r1 = r0 + stride
    const out = dy * dst.width * cn
    for (let dx = 0; dx < dst.width; dx++) {
      for (let c = 0; c < cn; c++) {
        const i = 2 * dx * cn + c
        const sum = src.data[r0 + i] + src.data[r0 + i + cn] + src.data[r1 + i] + src.data[r1 + i + cn]
        dst.data[out + dx * cn + c] = (sum + 2) >> 2
      }
    }
  }
}

/** `saturate_cast<short>(v)` of a float: round half to even (cvRound), then clamp. */
function toShort(v: number): number {
  let r = Math.round(v)
  if (r - v === 0.5 && r % 2 !== 0) r -= 1 // Math.round rounds .5 up; cvRound rounds it to even
  return Math.min(32_767, Math.max(-32_768, r))
}

/** The source offset and the two weights of every output element (per channel) of a row. */
function columnTable(sw: number, dw: number, scaleX: number, cn: number) {
  const offset = new Int32Array(dw * cn)
  const next = new Int32Array(dw * cn)
  const a0 = new Int32Array(dw * cn)
  const a1 = new Int32Array(dw * cn)
  for (let dx = 0; dx < dw; dx++) {
    let fx = Math.fround((dx + 0.5) * scaleX - 0.5)
    let sx = Math.floor(fx)
    fx = Math.fround(fx - sx)
    if (sx < 0) {
      fx = 0
      sx = 0
    }

    const atRightEdge = sx + 1 >= sw // OpenCV's xmax: these take the pixel at sx (clamped) times 2048
    if (sx >= sw - 1) {
      fx = 0
      sx = sw - 1
    }

    const w0 = atRightEdge ? COEF_SCALE : toShort(Math.fround(1 - fx) * COEF_SCALE)
    const w1 = atRightEdge ? 0 : toShort(fx * COEF_SCALE)
    for (let c = 0; c < cn; c++) {
      const i = dx * cn + c
      offset[i] = sx * cn + c
      next[i] = atRightEdge ? sx * cn + c : (sx + 1) * cn + c
      a0[i] = w0
      a1[i] = w1
    }
  }

  return {a0, a1, next, offset}
}

function rowTable(sh: number, dh: number, scaleY: number) {
  const y0 = new Int32Array(dh)
  const y1 = new Int32Array(dh)
  const b0 = new Int32Array(dh)
  const b1 = new Int32Array(dh)
  const clamp = (v: number) => (v < 0 ? 0 : v >= sh ? sh - 1 : v)
  for (let dy = 0; dy < dh; dy++) {
    let fy = Math.fround((dy + 0.5) * scaleY - 0.5)
    const sy = Math.floor(fy)
    fy = Math.fround(fy - sy)
    y0[dy] = clamp(sy)
    y1[dy] = clamp(sy + 1)
    b0[dy] = toShort(Math.fround(1 - fy) * COEF_SCALE)
    b1[dy] = toShort(fy * COEF_SCALE)
  }

  return {b0, b1, y0, y1}
}

function resizeRow(data: Uint8Array, start: number, table: ReturnType<typeof columnTable>, length: number): Int32Array {
  const row = new Int32Array(length)
  const {a0, a1, next, offset} = table
  for (let i = 0; i < length; i++) row[i] = data[start + offset[i]] * a0[i] + data[start + next[i]] * a1[i]
  return row
}
