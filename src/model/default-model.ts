/**
 * The bundled default model of `icc serve` (used when no --model is given): a real SageMaker-format CIFAR
 * ResNet-20 (32x32 input) whose weights are set analytically so that it names the dominant colour of an image.
 *
 * How: bn_data scales pixels to 0..1, conv0 copies R, G, B into channels 0..2, every residual branch is zeroed and
 * every shortcut convolution passes channels 0..2 through, so the identity path carries the image to the global
 * average pool, which yields the mean colour m. The classifier computes logit_k = s * (2 m.c_k - |c_k|^2), i.e.
 * minus the squared distance to colour prototype c_k up to a term common to all classes. The files (symbol,
 * params, model-shapes.json, synset.txt) are written by the MXNet writer into the cache on first use.
 */
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {atomicWrite, CACHE, defaultCacheDir} from './cache.js'
import {makeWritableDir} from './disk-errors.js'
import {inferShapes, parseSymbol} from './mxnet-symbol.js'
import {resnetSymbol, writeParams} from './writer.js'

export const DEFAULT_MODEL_VERSION = 'colours-v2'
export const DEFAULT_MODEL_SIZE = 32

/**
 * Colour prototypes (RGB in 0..1); the order is the class order. Blue is the blue of a sky, not the display primary,
 * so that a photo of a clear sky (mean about 0.3, 0.57, 0.9) is nearer to blue than to gray.
 */
export const COLOURS: [string, [number, number, number]][] = [
  ['black', [0, 0, 0]],
  ['white', [1, 1, 1]],
  ['gray', [0.5, 0.5, 0.5]],
  ['red', [1, 0, 0]],
  ['orange', [1, 0.55, 0]],
  ['yellow', [1, 1, 0]],
  ['green', [0, 0.75, 0]],
  ['cyan', [0, 1, 1]],
  ['blue', [0.2, 0.45, 0.9]],
  ['magenta', [1, 0, 1]],
]
const SCALE = 12
const EPS = 2e-5

/** The default model's files, as bytes. */
export function defaultModelFiles(): Record<string, string | Uint8Array> {
  const size = DEFAULT_MODEL_SIZE
  const symbol = resnetSymbol({imageShape: [3, size, size], numClasses: COLOURS.length, numLayers: 20})
  const sym = parseSymbol(symbol)
  const {varShapes} = inferShapes(sym, {data: [1, 3, size, size]})
  const arrays: {data: Float32Array; name: string; shape: number[]}[] = []
  for (const n of sym.nodes) {
    if (n.op !== 'null' || n.name === 'data' || n.name === 'softmax_label') continue
    const shape = varShapes.get(n.name)!
    const data = new Float32Array(shape.reduce((p, q) => p * q, 1))
    const {name} = n
    const isData = name.startsWith('bn_data')
    if (name.endsWith('_gamma')) data.fill(1)
    else if (name.endsWith('_moving_var')) data.fill(isData ? 255 * 255 - EPS : 1 - EPS)
    else if (name === 'conv0_weight' || name.endsWith('_sc_weight')) {
      // Pass channels 0..2 straight through (centre tap of a 3x3 kernel, or a 1x1 kernel).
      const [, cin, kh, kw] = shape
      for (let ch = 0; ch < 3; ch++) data[((ch * cin + ch) * kh + (kh >> 1)) * kw + (kw >> 1)] = 1
    } else if (name === 'fc1_weight') {
      const [, inF] = shape
      for (const [k, [, c]] of COLOURS.entries()) for (let ch = 0; ch < 3; ch++) data[k * inF + ch] = 2 * SCALE * c[ch]
    } else if (name === 'fc1_bias') {
      for (const [k, [, c]] of COLOURS.entries()) data[k] = -SCALE * (c[0] ** 2 + c[1] ** 2 + c[2] ** 2)
    }
    // Everything else (betas, moving means, residual-branch convolutions) stays zero.

    const aux = name.endsWith('_moving_mean') || name.endsWith('_moving_var')
    arrays.push({data, name: `${aux ? 'aux' : 'arg'}:${name}`, shape})
  }

  return {
    'image-classification-0001.params': writeParams(arrays, {format: 'V2'}),
    'image-classification-symbol.json': symbol,
    'model-shapes.json': JSON.stringify([{name: 'data', shape: [1, 3, size, size]}]),
    'synset.txt': COLOURS.map(([label]) => label).join('\n') + '\n',
  }
}

/** Write the default model into the cache (once; a damaged copy is rewritten) and return its folder. */
export async function ensureDefaultModel(cacheDir: string = defaultCacheDir()): Promise<string> {
  const dir = join(cacheDir, 'default-model', DEFAULT_MODEL_VERSION)
  const files = defaultModelFiles()
  await makeWritableDir(dir, CACHE)
  for (const [name, content] of Object.entries(files)) {
    const want = typeof content === 'string' ? Buffer.from(content) : Buffer.from(content)
    const have = await readFile(join(dir, name)).catch(() => undefined)
    if (!have || !have.equals(want)) await atomicWrite(join(dir, name), want)
  }

  return dir
}
