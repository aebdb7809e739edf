/**
 * The decode pipeline's warm-up at load (`icc serve`'s runner, before `ready`): synthetic images made on the spot
 * go through the same {@link preprocessInto} as a request, with the service's own options, so that the first
 * request does not pay for the first use of sharp's decoders (libvips and libjpeg/libpng set up on first use) and
 * of the resize and tensor code (which V8 compiles on their first runs): a JPEG at the model's input size twice
 * (the copy path, the common case), a JPEG larger than it (the resize path) and a PNG. Nothing here reaches a
 * client, the host's metrics or its logs.
 */
import type {PreprocessInfo} from './preprocess.js'
import type {PreprocessOptions} from './types.js'

import {preprocessInto} from './preprocess.js'
import {loadSharp} from './sharp.js'

/** One synthetic image of the warm-up: its format and size. */
interface WarmUpImage {
  format: 'jpeg' | 'png'
  height: number
  width: number
}

/** The images decoded, in order: the input size twice (V8 compiles on the second), then a resize, then a PNG. */
function warmUpImages(width: number, height: number): WarmUpImage[] {
  const same: WarmUpImage = {format: 'jpeg', height, width}
  const larger: WarmUpImage = {format: 'jpeg', height: Math.ceil(height * 1.5), width: Math.ceil(width * 1.5)}
  return [same, same, larger, {format: 'png', height, width}]
}

/** The warm-up images' pixels: an RGB pattern with edges and texture, so that the codecs do real work. */
export function warmUpPixels(width: number, height: number): Buffer {
  const raw = Buffer.alloc(width * height * 3)
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 37 + (i >> 7) * 11) & 0xff
  return raw
}

async function synthesize({format, height, width}: WarmUpImage): Promise<Buffer> {
  const image = (await loadSharp())(warmUpPixels(width, height), {raw: {channels: 3, height, width}})
  return format === 'jpeg' ? image.jpeg({quality: 90}).toBuffer() : image.png({compressionLevel: 1}).toBuffer()
}

/**
 * Decode the warm-up images through the request path with `options` (the service's channels, size, resize mode
 * and preprocessing) into `out` (one image's tensor); returns what each decode found, in order.
 */
export async function warmUpDecode(
  options: Omit<PreprocessOptions, 'contentType' | 'reserve'>,
  out: Float32Array,
): Promise<PreprocessInfo[]> {
  const infos: PreprocessInfo[] = []
  for (const image of warmUpImages(options.width, options.height)) {
    const bytes = await synthesize(image)
    infos.push(await preprocessInto(bytes, {...options, contentType: `image/${image.format}`}, out, 0))
  }

  return infos
}
