/**
 * The model flags shared by the commands that read a SageMaker model (inspect-model, convert-model, predict,
 * pull-model, serve), with one wording each.
 */
import {Args, Flags} from '@oclif/core'

export const modelPathArg = Args.string({description: 'Model folder, model.tar.gz or .onnx file.', required: true})

export const cacheDirFlag = Flags.string({
  description: 'Conversion cache directory (default $ICC_CACHE_DIR or ~/.cache/icc).',
})

export const modelFlags = {
  'cache-dir': cacheDirFlag,
  epoch: Flags.integer({description: "Use this epoch's params file instead of the highest.", min: 0}),
}
