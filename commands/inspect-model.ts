import {ExitCode} from '../src/errors.js'
import {inspectModel, type InspectResult} from '../src/model/index.js'
import {BaseCommand} from './_base.js'
import {modelFlags, modelPathArg} from './_model.js'

export default class InspectModel extends BaseCommand {
  static override args = {
    path: modelPathArg,
  }
  static override description =
    'Describe a SageMaker image-classification model: architecture, classes, input shape, MXNet version, params format, parameter count, ops and problems. Exits 4 when the model does not convert.'
  static override examples = [
    {
      command: '<%= config.bin %> <%= command.id %> ./model',
      description: 'Inspect an unpacked SageMaker model folder.',
    },
    {
      command: '<%= config.bin %> <%= command.id %> model.tar.gz --json',
      description: 'The same as JSON, from the archive.',
    },
  ]
  static override flags = {
    ...modelFlags,
  }

  async run(): Promise<InspectResult> {
    const {args, flags} = await this.parse(InspectModel)
    const result = await inspectModel(args.path, {
      cacheDir: flags['cache-dir'],
      epoch: flags.epoch,
      shape: flags['input-shape'],
    })
    if (!this.jsonEnabled()) {
      const ops = Object.entries((result.opHistogram as Record<string, number>) ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(', ')
      const lines = [
        `architecture:   ${result.architecture ?? result.format}`,
        `classes:        ${result.classes ?? '?'}`,
        `input shape:    ${(result.inputShape ?? []).join('x')}`,
        `MXNet version:  ${result.mxnetVersion ?? '-'}`,
        `params format:  ${result.paramsFormat ?? '-'}${result.epoch === undefined ? '' : ` (epoch ${result.epoch})`}`,
        `parameters:     ${result.paramCount ?? '-'}`,
        `ops:            ${ops || '-'}`,
        `converts:       ${result.converts ? 'yes' : 'no'}`,
        `problems:       ${result.problems.length === 0 ? 'none' : ''}`,
        ...result.problems.map((p) => `  - ${p}`),
        ...result.warnings.map((w) => `warning: ${w}`),
      ]
      this.log(lines.join('\n'))
    }

    // A model that does not convert cannot be served: exit 4 (model), with the report above.
    if (!result.converts) process.exitCode = ExitCode.Model
    return result
  }
}
