/**
 * SageMaker over the AWS SDK v3: DescribeTrainingJob in the job ARN's region, and where a job's model artifact
 * is (with the errors a caller needs when there is none). Used by check-job, pull-model and export-component.
 */
import {
  DescribeTrainingJobCommand,
  type DescribeTrainingJobCommandOutput,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker'

import {AwsError, UsageError} from '../errors.js'
import {parseTrainingJobArn, type TrainingJobArn} from './arn.js'
import {awsErrorInfo, type AwsOptions, clientConfig, configuredRegion, mapAwsError} from './clients.js'

/**
 * DescribeTrainingJob by the ARN's job name, in the ARN's region (a job name is only unique within one region and
 * account); `undefined` when the job does not exist. `clientRegion` is the region the options name (flag,
 * environment, profile), for callers that report a mismatch.
 */
export async function describeTrainingJob(
  aws: AwsOptions,
  job: TrainingJobArn,
): Promise<{clientRegion?: string; job?: DescribeTrainingJobCommandOutput; notFound?: string}> {
  // Without a configured region, the ARN's is the client's (nothing to mismatch).
  const clientRegion = (await configuredRegion(aws)) ?? job.region
  const client = new SageMakerClient(clientConfig({...aws, region: job.region}))
  try {
    return {clientRegion, job: await client.send(new DescribeTrainingJobCommand({TrainingJobName: job.jobName}))}
  } catch (error) {
    // By error name and status, not message text: SageMaker answers ValidationException ("Requested resource not
    // found"), moto "Could not find training job"; the name is already checked by the ARN pattern.
    const {message, name} = awsErrorInfo(error)
    if (/^(ResourceNotFound(Exception)?|ValidationException)$/.test(name)) {
      return {clientRegion, notFound: `${name}: ${message}`}
    }

    throw mapAwsError(error, 'sagemaker:DescribeTrainingJob')
  } finally {
    client.destroy()
  }
}

/** `s3://bucket/key` → bucket and key, or undefined. */
export function parseS3Uri(uri: string): undefined | {bucket: string; key: string} {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri)
  return m ? {bucket: m[1], key: m[2]} : undefined
}

/** The job's model artifact location, or a clear error when there is none. */
export async function modelArtifactOf(
  aws: AwsOptions,
  sagemakerJobArn: string,
): Promise<{bucket: string; hyperparameters: Record<string, string>; key: string; region: string; uri: string}> {
  const arn = parseTrainingJobArn(sagemakerJobArn)
  const {job, notFound} = await describeTrainingJob(aws, arn)
  if (!job) {
    throw new AwsError(
      'JOB_NOT_FOUND',
      `Training job ${arn.jobName} does not exist in region ${arn.region} (the ARN's) of the account of the credentials in use (${notFound}).`,
      {suggestions: ['Check the ARN; "icc check-job" explains what is wrong.']},
    )
  }

  const realAccount = job.TrainingJobArn?.split(':')[4]
  if (realAccount && realAccount !== arn.account) {
    throw new UsageError(
      'ACCOUNT_MISMATCH',
      `The ARN names account ${arn.account}, but the credentials in use found ${arn.jobName} in account ${realAccount}.`,
      {
        suggestions: [
          `Use credentials of account ${arn.account} (--profile), or the job's real ARN: ${job.TrainingJobArn}`,
        ],
      },
    )
  }

  const uri = job.ModelArtifacts?.S3ModelArtifacts
  if (!uri) {
    throw new AwsError(
      'NO_MODEL_ARTIFACT',
      `Training job ${arn.jobName} has no model artifact (status ${job.TrainingJobStatus}).`,
      {
        suggestions: ['Wait for the job to complete; run "icc check-job" for details.'],
      },
    )
  }

  const location = parseS3Uri(uri)
  if (!location) throw new AwsError('BAD_MODEL_URI', `The job's model artifact is not an s3:// URI: ${uri}`)
  return {...location, hyperparameters: job.HyperParameters ?? {}, region: arn.region, uri}
}
