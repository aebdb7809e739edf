import {Flags} from '@oclif/core'

import {formatBytes} from '../src/aws/progress.js'
import {pullModel, type PullModelResult} from '../src/pull-model/pull-model.js'
import {awsFlags, awsOptions} from './_aws.js'
import {BaseCommand} from './_base.js'
import {cacheDirFlag} from './_model.js'

export default class PullModel extends BaseCommand {
  static override description = `Download a training job's model (ModelArtifacts.S3ModelArtifacts) and extract it into a directory.
Like Greengrass does for a SageMaker ML resource, from the job ARN's region. The destination's old content is replaced
only once the new model is completely downloaded, extracted and loads (a model that does not load: exit 4).
Exit codes: 0 pulled, 2 bad input (ARN, account mismatch), 3 AWS error, 4 the model cannot be used.`
  static override examples = [
    {
      command:
        '<%= config.bin %> <%= command.id %> --sagemaker-job-arn arn:aws:sagemaker:us-west-2:123456789012:training-job/MyImageClassifier --destination /greengrass/model',
      description: 'Pull the model into /greengrass/model.',
    },
    {
      command:
        '<%= config.bin %> <%= command.id %> --sagemaker-job-arn arn:aws:sagemaker:us-west-2:123456789012:training-job/MyImageClassifier --destination ./model --json',
      description: 'The same, quiet, with a JSON summary.',
    },
  ]
  static override flags = {
    ...awsFlags,
    'cache-dir': cacheDirFlag,
    destination: Flags.string({
      description: 'Directory to extract the model into (MLModelDestinationPath).',
      required: true,
    }),
    'no-inspect': Flags.boolean({
      description: 'Do not check (inspect and pre-convert) the model before it replaces the old one.',
    }),
    'sagemaker-job-arn': Flags.string({description: 'The training job ARN (MLModelSageMakerJobArn).', required: true}),
  }

  async run(): Promise<PullModelResult> {
    const {flags} = await this.parse(PullModel)
    const json = this.jsonEnabled()
    const result = await pullModel({
      ...awsOptions(flags),
      cacheDir: flags['cache-dir'],
      destination: flags.destination,
      noInspect: flags['no-inspect'],
      progress: !json && Boolean(process.stderr.isTTY),
      sagemakerJobArn: flags['sagemaker-job-arn'],
    })
    if (!json) {
      this.log(`Pulled ${result.source} (${formatBytes(result.bytes)}) into ${result.destination}`)
      for (const f of result.files) this.log(`  ${f}`)
      this.log(`Symbol: ${result.symbol ?? 'none found'}`)
      this.log(`Params: ${result.params.join(', ') || 'none found'}`)
      const m = result.model
      if (m) {
        this.log(
          `Model: ${m.architecture ?? m.format}, ${m.classes ?? '?'} classes, input ${(m.inputShape ?? []).join('x')}, ` +
            `${m.converts ? 'converts to ONNX' : 'does NOT convert'}`,
        )
        for (const p of m.problems) this.log(`  problem: ${p}`)
      }
    }

    if (!json)
      for (const mismatch of result.mismatches ?? []) this.warn(`The model does not match its job: ${mismatch}.`)

    return result
  }
}
