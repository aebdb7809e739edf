/**
 * The model flags shared by the commands that read a SageMaker model (inspect-model, convert-model, predict,
 * pull-model, serve), with one wording each.
 */
import {Args, Flags} from '@oclif/core'

import {RUNTIMES} from '../src/model/session.js'

export const modelPathArg = Args.string({description: 'Model folder, model.tar.gz or .onnx file.', required: true})

export const cacheDirFlag = Flags.string({
  description: 'Conversion cache directory (default $ICC_CACHE_DIR or ~/.cache/icc).',
})

export const labelsFlag = Flags.string({
  description:
    'Class names: a file with one a line (as synset.txt) or a JSON array; one per class of the model (else exit 2).',
})

/** `--input-shape C,H,W`: the model's input when model-shapes.json is absent and the parameters do not tell it. */
export const inputShapeFlag = Flags.custom<number[]>({
  description:
    'Input shape C,H,W (e.g. 3,224,224) when the model has no model-shapes.json (default: inferred from its parameters).',
  async parse(input) {
    const dims = input.split(/[,x]/).map((d) => Number(d.trim()))
    if (dims.length !== 3 || dims.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new Error(`--input-shape takes three positive integers C,H,W (e.g. 1,28,28), got "${input}"`)
    }

    return dims
  },
})()

/** The preprocessing mode (predict, serve): see docs/preprocessing.md. */
export const resizeFlag = Flags.string({
  default: 'exact',
  description:
    "Image preprocessing. exact: decode and resize as the connector's OpenCV did, bit for bit (no ICC colour management, full-resolution decode, cv2.resize INTER_LINEAR). fast: libvips decodes (ICC to sRGB, shrink-on-load) and resizes; faster on large photos, MAY CHANGE ANSWERS. See docs/preprocessing.md.",
  options: ['exact', 'fast'],
})

/** `--runtime` (serve, predict, convert-model, doctor): which ONNX Runtime (src/model/session.ts, docs/runtimes.md). */
export const runtimeFlag = Flags.string({
  description:
    'ONNX Runtime: native (onnxruntime-node), wasm (onnxruntime-web, WebAssembly: slower, runs where no native binary does) or auto: native where its binary loads, else wasm. Default: $ICC_RUNTIME, else auto.',
  options: [...RUNTIMES],
})

export const modelFlags = {
  'cache-dir': cacheDirFlag,
  'input-shape': inputShapeFlag,
  epoch: Flags.integer({description: "Use this epoch's params file instead of the highest.", min: 0}),
}
