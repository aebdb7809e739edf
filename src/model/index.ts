/**
 * The model core: read SageMaker image-classification models (MXNet symbol + params), convert them to ONNX,
 * run them with ONNX Runtime.
 *
 * PLACEHOLDER: until the MXNet reader and ONNX exporter land, `loadModel` accepts only a plain `.onnx` file.
 */
import {createHash} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import * as ort from 'onnxruntime-node'

import type {LoadedModel} from './types.js'

import {ModelError} from '../errors.js'

export {preprocessImage} from './preprocess.js'
export * from './types.js'

export interface LoadModelOptions {
  /** Directory for the conversion cache (default: $XDG_CACHE_HOME/icc or ~/.cache/icc). */
  cacheDir?: string
  /** Pick this epoch's params file instead of the highest. */
  epoch?: number
}

export async function loadModel(path: string, _options: LoadModelOptions = {}): Promise<LoadedModel> {
  if (!path.endsWith('.onnx')) throw new ModelError('UNSUPPORTED_MODEL', `Only .onnx models are supported yet: ${path}`)
  const bytes = await readFile(path)
  const session = await ort.InferenceSession.create(bytes)
  const input = session.inputMetadata[0] as {isTensor: boolean; shape?: (number | string)[]}
  const output = session.outputMetadata[0] as {isTensor: boolean; shape?: (number | string)[]}
  await session.release()
  const [, c, h, w] = (input.shape ?? []).map(Number)
  return {
    hash: createHash('sha256').update(bytes).digest('hex'),
    inputShape: [c, h, w],
    numClasses: Number(output.shape?.at(-1)),
    onnxPath: path,
    summary: {format: 'onnx'},
    warnings: [],
  }
}

export interface SessionOptions {
  /** Use ONNX Runtime's CUDA execution provider. */
  gpu?: boolean
  /** Intra-op threads (default: ONNX Runtime's choice). */
  intraOpThreads?: number
}

export async function createSession(model: LoadedModel, options: SessionOptions = {}): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(model.onnxPath, {
    executionProviders: options.gpu ? ['cuda'] : ['cpu'],
    intraOpNumThreads: options.intraOpThreads,
  })
}
