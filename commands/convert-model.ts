import {Flags} from '@oclif/core'

import {convertModel, type ConvertResult} from '../src/model/index.js'
import {BaseCommand} from './_base.js'
import {modelFlags, modelPathArg} from './_model.js'

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
  ]
  static override flags = {
    ...modelFlags,
    output: Flags.string({char: 'o', description: 'The ONNX file to write.', required: true}),
  }

  async run(): Promise<ConvertResult> {
    const {args, flags} = await this.parse(ConvertModel)
    const result = await convertModel(args.path, flags.output, {cacheDir: flags['cache-dir'], epoch: flags.epoch})
    if (!this.jsonEnabled()) {
      for (const w of result.warnings) this.warn(w)
      this.log(
        `Wrote ${result.output} (${result.bytes} bytes; input ${result.inputShape.join('x')}, ${result.classes} classes)`,
      )
    }

    return result
  }
}
