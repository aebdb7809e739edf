/**
 * `icc check-job`: is the SageMaker training job one the Image Classification connector can serve?
 *
 * DescribeTrainingJob, then check: the job exists in the client's region and account, it completed, it was
 * trained by the built-in image-classification algorithm, it has the hyperparameters the connector relies on
 * (num_classes, num_layers, image_shape), and it produced a model artifact in S3. Every problem comes with a fix.
 */
import {
  DescribeTrainingJobCommand,
  type DescribeTrainingJobCommandOutput,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker'

import {AwsError} from '../errors.js'
import {parseTrainingJobArn, type TrainingJobArn} from './arn.js'
import {type AwsOptions, clientConfig, mapAwsError} from './clients.js'

export interface JobProblem {
  code: string
  fix: string
  message: string
}

export interface CheckJobResult {
  algorithm?: string
  arn: string
  clientRegion?: string
  exists: boolean
  hyperparameters: {image_shape?: string; num_classes?: string; num_layers?: string}
  jobName: string
  modelArtifact?: string
  ok: boolean
  problems: JobProblem[]
  status?: string
}

export interface CheckJobOptions extends AwsOptions {
  sagemakerJobArn: string
}

/** DescribeTrainingJob by the ARN's job name; `undefined` when the job does not exist. */
export async function describeTrainingJob(
  aws: AwsOptions,
  job: TrainingJobArn,
): Promise<{clientRegion?: string; job?: DescribeTrainingJobCommandOutput}> {
  let client = new SageMakerClient(clientConfig(aws))
  try {
    let clientRegion = await client.config.region().catch(() => undefined)
    if (!clientRegion) {
      // No --region, AWS_REGION or profile region: the job lives in its ARN's region.
      client.destroy()
      client = new SageMakerClient(clientConfig({...aws, region: job.region}))
      clientRegion = job.region
    }

    try {
      return {clientRegion, job: await client.send(new DescribeTrainingJobCommand({TrainingJobName: job.jobName}))}
    } catch (error) {
      const e = error as {message?: string; name?: string}
      if (e.name === 'ResourceNotFound' || (e.name === 'ValidationException' && /not found/i.test(e.message ?? ''))) {
        return {clientRegion}
      }

      throw mapAwsError(error, 'sagemaker:DescribeTrainingJob')
    }
  } finally {
    client.destroy()
  }
}

/** True when the training image or algorithm name is SageMaker's built-in image-classification algorithm. */
export function isImageClassificationAlgorithm(spec: {AlgorithmName?: string; TrainingImage?: string} = {}): boolean {
  const image = spec.TrainingImage ?? ''
  // <account>.dkr.ecr.<region>.amazonaws.com/image-classification:1 (or :latest, @sha256:...)
  if (/\/image-classification(?:[:@]|$)/.test(image)) return true
  return /^image-classification$/i.test(spec.AlgorithmName ?? '')
}

/** Describe the job and list every problem that would stop the connector from serving it. */
export async function checkJob(options: CheckJobOptions): Promise<CheckJobResult> {
  const arn = parseTrainingJobArn(options.sagemakerJobArn)
  const {clientRegion, job} = await describeTrainingJob(options, arn)
  const problems: JobProblem[] = []
  const base = {arn: arn.arn, clientRegion, jobName: arn.jobName}

  if (clientRegion && clientRegion !== arn.region) {
    problems.push({
      code: 'REGION_MISMATCH',
      fix: `Pass --region ${arn.region} (the Greengrass group and the job must be in the same region).`,
      message: `The ARN is in region ${arn.region}, but the client uses ${clientRegion}.`,
    })
  }

  if (!job) {
    problems.push({
      code: 'JOB_NOT_FOUND',
      fix: `List jobs with "aws sagemaker list-training-jobs --region ${clientRegion ?? arn.region}" and use the ARN of an existing one.`,
      message: `Training job ${arn.jobName} does not exist in region ${clientRegion ?? '?'} of the account of the credentials in use.`,
    })
    return {...base, exists: false, hyperparameters: {}, ok: false, problems}
  }

  const realAccount = job.TrainingJobArn?.split(':')[4]
  if (realAccount && realAccount !== arn.account) {
    problems.push({
      code: 'ACCOUNT_MISMATCH',
      fix: `Use the job's real ARN: ${job.TrainingJobArn}`,
      message: `The ARN names account ${arn.account}, but the job was found in account ${realAccount}.`,
    })
  }

  const status = job.TrainingJobStatus
  if (status !== 'Completed') {
    problems.push({
      code: 'JOB_NOT_COMPLETED',
      fix:
        status === 'InProgress' || status === 'Stopping'
          ? `Wait for it: aws sagemaker wait training-job-completed-or-stopped --training-job-name ${arn.jobName}`
          : 'Train again until the job completes, and use that job ARN.',
      message: `The job status is ${status ?? 'unknown'}${job.FailureReason ? ` (${job.FailureReason})` : ''}, not Completed.`,
    })
  }

  const algorithm = job.AlgorithmSpecification?.TrainingImage ?? job.AlgorithmSpecification?.AlgorithmName
  if (!isImageClassificationAlgorithm(job.AlgorithmSpecification)) {
    problems.push({
      code: 'WRONG_ALGORITHM',
      fix: 'Train the model with the built-in SageMaker image-classification algorithm (training image "image-classification").',
      message: `The job was trained with ${algorithm ?? 'an unknown algorithm'}, not the built-in image-classification algorithm.`,
    })
  }

  const hp = job.HyperParameters ?? {}
  const hyperparameters = {
    ...(hp.image_shape === undefined ? {} : {image_shape: hp.image_shape}),
    ...(hp.num_classes === undefined ? {} : {num_classes: hp.num_classes}),
    ...(hp.num_layers === undefined ? {} : {num_layers: hp.num_layers}),
  }
  if (hp.num_classes === undefined) {
    problems.push({
      code: 'NO_NUM_CLASSES',
      fix: 'Set the num_classes hyperparameter (the image-classification algorithm requires it) and retrain.',
      message: 'The job has no num_classes hyperparameter.',
    })
  }

  const modelArtifact = job.ModelArtifacts?.S3ModelArtifacts
  if (!modelArtifact) {
    problems.push({
      code: 'NO_MODEL_ARTIFACT',
      fix: 'Only a completed job has a model artifact: wait for completion or retrain.',
      message: 'The job has no ModelArtifacts.S3ModelArtifacts (no model.tar.gz in S3).',
    })
  }

  return {
    ...base,
    algorithm,
    exists: true,
    hyperparameters,
    modelArtifact,
    ok: problems.length === 0,
    problems,
    status,
  }
}

/** The job's model artifact location, or a clear error when there is none. */
export async function modelArtifactOf(
  aws: AwsOptions,
  sagemakerJobArn: string,
): Promise<{bucket: string; key: string; region: string; uri: string}> {
  const arn = parseTrainingJobArn(sagemakerJobArn)
  const {clientRegion, job} = await describeTrainingJob(aws, arn)
  if (!job) {
    throw new AwsError(
      'JOB_NOT_FOUND',
      `Training job ${arn.jobName} does not exist in region ${clientRegion ?? arn.region}.`,
      {
        suggestions: [`Check the ARN and pass --region ${arn.region}; "icc check-job" explains what is wrong.`],
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

  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri)
  if (!m) throw new AwsError('BAD_MODEL_URI', `The job's model artifact is not an s3:// URI: ${uri}`)
  return {bucket: m[1], key: m[2], region: clientRegion ?? arn.region, uri}
}
