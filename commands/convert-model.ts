import {Flags} from '@oclif/core'

import {convertModel, type ConvertResult, type Runtime} from '../src/model/index.js'
import {BaseCommand} from './_base.js'
import {modelFlags, modelPathArg, runtimeFlag} from './_model.js'

export default class ConvertModel extends BaseCommand {
  static override args = {
    path: modelPathArg,
  }
  static override description = 'Convert a SageMaker image-classification model (MXNet) to an ONNX file.'
  static override examples = [
    {
      command: '<%= config.bin %> <%= command.id %> ./model --output model.onnx',
      description: 'Convert a model folder.',
    },
    {
      command: '<%= config.bin %> <%= command.id %> model.tar.gz --output /srv/triton/resnet/1/model.onnx --epoch 5',
      description: 'Convert epoch 5 of an archive for another runtime.',
    },
    {
      command:
        '<%= config.bin %> <%= command.id %> ./model --output model.int8.onnx --quantize int8 --calibration ./photos',
      description:
        'Write an int8 model calibrated on your own images (serve it with icc serve --model model.int8.onnx).',
    },
  ]
  static override flags = {
    ...modelFlags,
    calibration: Flags.string({
      description: 'Directory of JPEG/PNG images (searched recursively) to calibrate --quantize on.',
      dependsOn: ['quantize'],
    }),
    'calibration-count': Flags.integer({
      dependsOn: ['quantize'],
      description: 'Most calibration images used, spread evenly over the directory (default 64).',
      min: 1,
    }),
    output: Flags.string({char: 'o', description: 'The ONNX file to write.', required: true}),
    quantize: Flags.string({
      description:
        'Write a quantized model: int8 (static, calibrated; QDQ form that ONNX Runtime runs with integer kernels).',
      options: ['int8'],
    }),
    runtime: runtimeFlag,
  }

  async run(): Promise<ConvertResult> {
    const {args, flags} = await this.parse(ConvertModel)
    const result = await convertModel(args.path, flags.output, {
      cacheDir: flags['cache-dir'],
      progress: Boolean(process.stderr.isTTY) && !this.jsonEnabled(),
      calibration: flags.calibration,
      calibrationCount: flags['calibration-count'],
      epoch: flags.epoch,
      shape: flags['input-shape'],
      quantize: flags.quantize as 'int8' | undefined,
      runtime: flags.runtime as Runtime | undefined,
    })
    if (!this.jsonEnabled()) {
      for (const w of result.warnings) this.warn(w)
      this.log(
        `Wrote ${result.output} (${result.bytes} bytes; input ${result.inputShape.join('x')}, ${result.classes} classes)`,
      )
      const q = result.quantization
      if (q) {
        this.log(
          `int8: ${q.convolutions} convolutions, ${q.tensors} activations quantized, ${q.foldedBatchNorms} BatchNorms folded; calibrated on ${q.calibrationImages} image${q.calibrationImages === 1 ? '' : 's'}`,
        )
      }
    }

    return result
  }
}
