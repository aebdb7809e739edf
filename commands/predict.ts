import {Args, Flags} from '@oclif/core'

import {predict, type Prediction, type ResizeMode} from '../src/model/index.js'
import {BaseCommand} from './_base.js'
import {modelFlags, resizeFlag} from './_model.js'

export default class Predict extends BaseCommand {
  static override args = {
    images: Args.string({description: 'JPEG or PNG image files.', required: true}),
  }
  static override description =
    "Classify images locally. Prints one line per image in the connector's exact output format: [p0,p1,...]."
  static override examples = [
    {command: '<%= config.bin %> <%= command.id %> --model ./model cat.jpg', description: 'Print the probabilities.'},
    {
      command: '<%= config.bin %> <%= command.id %> --model model.tar.gz a.jpg b.png --json --top-k 3',
      description: 'JSON with the three most likely classes per image.',
    },
  ]
  static override flags = {
    ...modelFlags,
    gpu: Flags.boolean({description: 'Use the CUDA execution provider.'}),
    model: Flags.string({char: 'm', description: 'Model folder, model.tar.gz or .onnx file.', required: true}),
    resize: resizeFlag,
    'top-k': Flags.integer({default: 5, description: 'Classes listed per image in --json output.', min: 1}),
  }
  static override strict = false

  async run(): Promise<{results: Prediction[]}> {
    const {argv, flags} = await this.parse(Predict)
    const result = await predict({
      cacheDir: flags['cache-dir'],
      epoch: flags.epoch,
      gpu: flags.gpu,
      images: argv as string[],
      model: flags.model,
      resize: flags.resize as ResizeMode,
      topK: flags['top-k'],
    })
    for (const w of result.warnings) this.logToStderr(`Warning: ${w}`)
    if (!this.jsonEnabled()) for (const line of result.lines) this.log(line)
    return {results: result.results}
  }
}
