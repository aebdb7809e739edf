/**
 * The in-process ONNX Runtime of the tests' references: the build that icc resolves here ($ICC_RUNTIME, else auto:
 * onnxruntime-node where it loads; `npm run test:wasm` forces onnxruntime-web's wasm), so a test that compares icc
 * with ONNX Runtime run in this process compares like with like on either runtime.
 */
import type * as Ort from 'onnxruntime-node'

import {readFile} from 'node:fs/promises'

import {runtimeModule} from '../../src/model/session.js'

/** One output of a run: its values and dimensions. */
export interface InProcessOutput {
  data: Float32Array
  dims: readonly number[]
}

/** The ONNX Runtime module of the runtime icc runs sessions on here (both builds have the same API). */
export async function inProcessOrt(): Promise<typeof Ort> {
  return runtimeModule()
}

/** Run `model` (an ONNX file's path or bytes) once on `input` of `shape` in this process: every output, in order. */
export async function runOnnxInProcess(
  model: string | Uint8Array,
  input: Float32Array,
  shape: readonly number[],
): Promise<InProcessOutput[]> {
  const ort = await inProcessOrt()
  const s = await ort.InferenceSession.create(typeof model === 'string' ? new Uint8Array(await readFile(model)) : model)
  try {
    const out = await s.run({[s.inputNames[0]]: new ort.Tensor('float32', input, shape)})
    return s.outputNames.map((n) => ({data: out[n].data as Float32Array, dims: out[n].dims}))
  } finally {
    await s.release()
  }
}
