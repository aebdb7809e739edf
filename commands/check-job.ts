import {Flags} from '@oclif/core'

import {formatBytes} from '../src/aws/progress.js'
import {checkJob, type CheckJobResult} from '../src/check-job/check-job.js'
import {awsFlags, awsOptions} from './_aws.js'
import {BaseCommand} from './_base.js'

export default class CheckJob extends BaseCommand {
  static override description = `Check that a SageMaker training job can be served by the Image Classification connector.
Exists (in the ARN's region), Completed, built-in image-classification algorithm, hyperparameters, model artifact
(HeadObject on the S3 object), region/account.
Exit codes: 0 no problems, 1 problems found (each with a fix), 2 invalid ARN, 3 AWS error.`
  static override examples = [
    {
      command:
        '<%= config.bin %> <%= command.id %> --sagemaker-job-arn arn:aws:sagemaker:us-west-2:123456789012:training-job/MyImageClassifier',
      description: 'Check a job.',
    },
    {
      command:
        '<%= config.bin %> <%= command.id %> --sagemaker-job-arn arn:aws:sagemaker:us-west-2:123456789012:training-job/MyImageClassifier --region us-west-2 --json',
      description: 'The same, as JSON.',
    },
  ]
  static override flags = {
    ...awsFlags,
    'sagemaker-job-arn': Flags.string({description: 'The training job ARN (MLModelSageMakerJobArn).', required: true}),
  }

  async run(): Promise<CheckJobResult> {
    const {flags} = await this.parse(CheckJob)
    const result = await checkJob({
      ...awsOptions(flags),
      sagemakerJobArn: flags['sagemaker-job-arn'],
    })
    if (!this.jsonEnabled()) {
      this.log(`Job:            ${result.jobName}${result.exists ? '' : ' (not found)'}`)
      if (result.status) this.log(`Status:         ${result.status}`)
      if (result.algorithm) this.log(`Algorithm:      ${result.algorithm}`)
      for (const [k, v] of Object.entries(result.hyperparameters)) this.log(`${`${k}:`.padEnd(16)}${v}`)
      if (result.modelArtifact) {
        const size = result.modelArtifactBytes === undefined ? '' : ` (${formatBytes(result.modelArtifactBytes)})`
        this.log(`Model artifact: ${result.modelArtifact}${size}`)
      }

      if (result.ok) this.log('OK: the connector can serve this job.')
      for (const p of result.problems) this.log(`PROBLEM ${p.code}: ${p.message}\n  fix: ${p.fix}`)
    }

    if (!result.ok) process.exitCode = 1
    return result
  }
}
