/** `icc predict`: one-shot inference on image files, in batches, with the connector's output per image. */
import type {ResizeMode} from './types.js'

import {UsageError} from '../errors.js'
import {formatFloat32, formatProbabilities, topK} from './format.js'
import {loadModel, type LoadModelOptions} from './load.js'
import {expandImageArgs, imagesError, loadImage} from './predict-images.js'
import {type Backend, createSession, type SessionOptions} from './session.js'
import {loadSharp} from './sharp.js'

export interface PredictOptions extends LoadModelOptions, SessionOptions {
  /** Image file paths. */
  images: string[]
  model: string
  /** Decode/resize mode (default `exact`: the connector's OpenCV arithmetic; docs/preprocessing.md). */
  resize?: ResizeMode
  topK?: number
}

export interface Prediction {
  image: string
  probabilities: number[]
  top: {index: number; label?: string; probability: number}[]
}

export interface PredictResult {
  /** The input error for the images that could not be classified (the command prints the others, then throws it). */
  error?: UsageError
  /** The connector's exact output per image (`[p0,p1,...]`), after `<image>: ` when there are several. */
  lines: string[]
  results: Prediction[]
  /** The ONNX Runtime that ran the model (./session.ts). */
  runtime: Backend
  warnings: string[]
}

/** One-shot inference on image files (or the images in a directory); each bad image is reported, none stops it. */
export async function predict(options: PredictOptions): Promise<PredictResult> {
  if (options.images.length === 0) {
    throw new UsageError('NO_IMAGES', 'No image given', {suggestions: ['icc predict --model DIR image.jpg']})
  }

  const k = options.topK ?? 5
  if (!Number.isInteger(k) || k < 1) throw new UsageError('BAD_TOP_K', `--top-k must be a positive integer, got ${k}`)
  // the decoder before the model: a sharp that does not load (old glibc) is its own error (exit 5), not each image's
  await loadSharp()
  const {failures, images} = await expandImageArgs(options.images)
  const model = await loadModel(options.model, options)
  const onWarning = (w: string) => {
    model.warnings.push(w)
    options.onWarning?.(w)
  }

  const session = await createSession(model, {...options, onWarning})
  const [c, h, w] = model.inputShape
  const shape = {channels: c, height: h, preprocessing: model.preprocessing, resize: options.resize, width: w}
  const plane = c * h * w
  const results: Prediction[] = []
  try {
    const batchSize = 16
    for (let start = 0; start < images.length; start += batchSize) {
      const batch: string[] = []
      const x = new Float32Array(Math.min(batchSize, images.length - start) * plane)
      for (const image of images.slice(start, start + batchSize)) {
        const tensor = await loadImage(image, shape)
        if (!(tensor instanceof Float32Array)) {
          failures.push(tensor)
          continue
        }

        x.set(tensor, batch.length * plane)
        batch.push(image)
      }

      if (batch.length === 0) continue
      const input = {data: x.subarray(0, batch.length * plane), dims: [batch.length, c, h, w]}
      const y = (await session.run({[session.inputNames[0]]: input}))[session.outputNames[0]]
      const n = y.length / batch.length
      for (const [i, image] of batch.entries()) {
        const probs = y.subarray(i * n, (i + 1) * n)
        const top = topK(probs, Math.min(k, n), model.labels)
        results.push({image, probabilities: Array.from(probs, (p) => Number(formatFloat32(p))), top})
      }
    }
  } finally {
    await session.release()
  }

  const several = images.length + failures.length > 1 || options.images.length > 1
  const lines = results.map((r) => (several ? `${r.image}: ` : '') + formatProbabilities(r.probabilities))
  return {
    error: failures.length > 0 ? imagesError(failures, results.length + failures.length, results) : undefined,
    lines,
    results,
    runtime: session.backend,
    warnings: model.warnings,
  }
}
