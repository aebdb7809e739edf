/**
 * The benchmarks' inputs, built on the spot: photo-like JPEGs and SageMaker-format ResNets (MXNet symbol + params
 * written by the project's writer, 1000 classes), so nothing is downloaded and every run measures the same thing.
 */
import {join} from 'node:path'
import sharp from 'sharp'

import {writeModelDir} from '../helpers/model-fixtures.js'

export type Depth = 18 | 50

/** Classes of the benchmark models (ImageNet's count). */
export const CLASSES = 1000

/** A photo-like JPEG: smooth gradients and blobs plus sensor-like noise, so its size is realistic. */
export async function photoJpeg(width: number, height: number, seed: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3)
  let s = seed
  const rnd = () => {
    s = (s * 1_103_515_245 + 12_345) % 2_147_483_648
    return s / 2_147_483_648
  }

  const blobs = Array.from({length: 6}, () => ({
    c: [rnd() * 255, rnd() * 255, rnd() * 255],
    r: (0.1 + rnd() * 0.3) * width,
    x: rnd() * width,
    y: rnd() * height,
  }))
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3
      for (let c = 0; c < 3; c++) {
        let v = ((x / width) * 120 + (y / height) * 80 + c * 30) % 256
        for (const b of blobs) {
          const d = Math.hypot(x - b.x, y - b.y) / b.r
          if (d < 1) v = v * d + b.c[c] * (1 - d)
        }

        v += 40 * Math.sin(x / 7 + c) * Math.cos(y / 11) + (rnd() - 0.5) * 24
        raw[i + c] = Math.max(0, Math.min(255, Math.round(v)))
      }
    }
  }

  return sharp(raw, {raw: {channels: 3, height, width}})
    .jpeg({quality: 88})
    .toBuffer()
}

export interface BenchModel {
  depth: Depth
  /** How the model was built. */
  origin: string
  /** What `icc serve --model` gets. */
  servePath: string
}

/**
 * A SageMaker-format model directory (symbol JSON + params + model-shapes.json + synset.txt) written by the
 * project's MXNet writer (the tests' fixture helper), which `icc serve` converts to ONNX (and caches).
 */
export async function buildModel(dir: string, depth: Depth): Promise<BenchModel> {
  const {dir: servePath} = await writeModelDir(join(dir, `resnet${depth}`), {
    format: 'V2',
    imageShape: [3, 224, 224],
    labels: Array.from({length: CLASSES}, (_, i) => `n${String(i).padStart(8, '0')} class ${i}`),
    numClasses: CLASSES,
    numLayers: depth,
  })
  return {
    depth,
    origin: 'SageMaker-format MXNet model written by src/model/writer.ts, converted by loadModel',
    servePath,
  }
}
