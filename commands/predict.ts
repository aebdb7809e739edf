import {Args, Flags} from '@oclif/core'

import {predict, type Prediction, type ResizeMode, type Runtime} from '../src/model/index.js'
import {BaseCommand} from './_base.js'
import {labelsFlag, modelFlags, resizeFlag, runtimeFlag} from './_model.js'

export default class Predict extends BaseCommand {
  static override args = {
    images: Args.string({description: 'JPEG or PNG image files, or directories of them.', required: true}),
  }
  static override description =
    "Classify images locally. Prints one line per image in the connector's exact output format: [p0,p1,...] (after `<image>: ` when there are several). An image that cannot be read or decoded is reported by name, the others are still classified, and the exit code is 2."
  static override examples = [
    {command: '<%= config.bin %> <%= command.id %> --model ./model cat.jpg', description: 'Print the probabilities.'},
    {
      command: '<%= config.bin %> <%= command.id %> --model model.tar.gz a.jpg b.png --json --top-k 3',
      description: 'JSON with the three most likely classes per image.',
    },
    {command: '<%= config.bin %> <%= command.id %> --model ./model ./photos', description: 'Every image in a folder.'},
  ]
  static override flags = {
    ...modelFlags,
    gpu: Flags.boolean({description: 'Use the CUDA execution provider.'}),
    labels: labelsFlag,
    model: Flags.string({char: 'm', description: 'Model folder, model.tar.gz or .onnx file.', required: true}),
    resize: resizeFlag,
    runtime: runtimeFlag,
    'top-k': Flags.integer({default: 5, description: 'Classes listed per image in --json output.', min: 1}),
  }
  static override strict = false

  async run(): Promise<{results: Prediction[]; runtime: Runtime}> {
    const {argv, flags} = await this.parse(Predict)
    const result = await predict({
      cacheDir: flags['cache-dir'],
      epoch: flags.epoch,
      shape: flags['input-shape'],
      gpu: flags.gpu,
      images: argv as string[],
      labelsFile: flags.labels,
      progress: Boolean(process.stderr.isTTY) && !this.jsonEnabled(),
      model: flags.model,
      resize: flags.resize as ResizeMode,
      runtime: flags.runtime as Runtime | undefined,
      topK: flags['top-k'],
    })
    for (const w of result.warnings) this.logToStderr(`Warning: ${w}`)
    if (!this.jsonEnabled()) for (const line of result.lines) this.log(line)
    // the good images' answers are out (with --json, in the error's details.results); then the input error
    if (result.error) throw result.error
    return {results: result.results, runtime: result.runtime}
  }
}
