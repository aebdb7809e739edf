/**
 * `icc check-job`: is the SageMaker training job one the Image Classification connector can serve?
 *
 * DescribeTrainingJob in the ARN's region, then check: the job exists there and in the ARN's account, it
 * completed, it was trained by the built-in image-classification algorithm, it has the hyperparameters the
 * connector relies on (num_classes, num_layers, image_shape), and its model artifact exists in S3 (HeadObject,
 * with its size). Every problem comes with a fix.
 */
import type {DescribeTrainingJobCommandOutput} from '@aws-sdk/client-sagemaker'

import {HeadObjectCommand} from '@aws-sdk/client-s3'

import {parseTrainingJobArn, type TrainingJobArn} from '../aws/arn.js'
import {awsErrorInfo, type AwsOptions, s3Client} from '../aws/clients.js'
import {describeTrainingJob, parseS3Uri} from '../aws/sagemaker.js'

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
  /** Size of the model artifact's S3 object (HeadObject). */
  modelArtifactBytes?: number
  ok: boolean
  problems: JobProblem[]
  status?: string
}

export interface CheckJobOptions extends AwsOptions {
  sagemakerJobArn: string
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
  const {clientRegion, job, notFound} = await describeTrainingJob(options, arn)
  const problems: JobProblem[] = []
  const base = {arn: arn.arn, clientRegion, jobName: arn.jobName}

  if (clientRegion && clientRegion !== arn.region) {
    problems.push({
      code: 'REGION_MISMATCH',
      fix: `Pass --region ${arn.region} (the Greengrass group and the job must be in the same region).`,
      message: `The ARN is in region ${arn.region} (the job was looked up there), but the client uses ${clientRegion}.`,
    })
  }

  if (!job) {
    problems.push({
      code: 'JOB_NOT_FOUND',
      fix: `List jobs with "aws sagemaker list-training-jobs --region ${arn.region}" and use the ARN of an existing one.`,
      message: `Training job ${arn.jobName} does not exist in region ${arn.region} of the account of the credentials in use (${notFound}).`,
    })
    return {...base, exists: false, hyperparameters: {}, ok: false, problems}
  }

  problems.push(...jobProblems(job, arn))
  const algorithm = job.AlgorithmSpecification?.TrainingImage ?? job.AlgorithmSpecification?.AlgorithmName
  const hp = job.HyperParameters ?? {}
  const hyperparameters = {
    ...(hp.image_shape === undefined ? {} : {image_shape: hp.image_shape}),
    ...(hp.num_classes === undefined ? {} : {num_classes: hp.num_classes}),
    ...(hp.num_layers === undefined ? {} : {num_layers: hp.num_layers}),
  }
  const modelArtifact = job.ModelArtifacts?.S3ModelArtifacts
  const head = await checkModelArtifact({...options, region: arn.region}, modelArtifact)
  const modelArtifactBytes = 'bytes' in head ? head.bytes : undefined
  if ('problem' in head) problems.push(head.problem)

  return {
    ...base,
    algorithm,
    exists: true,
    hyperparameters,
    modelArtifact,
    ...(modelArtifactBytes === undefined ? {} : {modelArtifactBytes}),
    ok: problems.length === 0,
    problems,
    status: job.TrainingJobStatus,
  }
}

/** What is wrong with a job that exists: its account, its status, its algorithm, its hyperparameters. */
function jobProblems(job: DescribeTrainingJobCommandOutput, arn: TrainingJobArn): JobProblem[] {
  const problems: JobProblem[] = []
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

  if (job.HyperParameters?.num_classes === undefined) {
    problems.push({
      code: 'NO_NUM_CLASSES',
      fix: 'Set the num_classes hyperparameter (the image-classification algorithm requires it) and retrain.',
      message: 'The job has no num_classes hyperparameter.',
    })
  }

  return problems
}

/** HeadObject on the model artifact: its size, or the problem that stops Greengrass from downloading it. */
async function checkModelArtifact(
  aws: AwsOptions,
  uri: string | undefined,
): Promise<{bytes: number} | {problem: JobProblem}> {
  if (!uri) {
    return {
      problem: {
        code: 'NO_MODEL_ARTIFACT',
        fix: 'Only a completed job has a model artifact: wait for completion or retrain.',
        message: 'The job has no ModelArtifacts.S3ModelArtifacts (no model.tar.gz in S3).',
      },
    }
  }

  const location = parseS3Uri(uri)
  if (!location) {
    return {
      problem: {
        code: 'BAD_MODEL_URI',
        fix: 'Retrain: an image-classification job writes its model to an s3:// location.',
        message: `The job's model artifact is not an s3:// URI: ${uri}`,
      },
    }
  }

  const s3 = s3Client(aws)
  try {
    const out = await s3.send(new HeadObjectCommand({Bucket: location.bucket, Key: location.key}))
    return {bytes: out.ContentLength ?? 0}
  } catch (error) {
    const {message, name, status, tag} = awsErrorInfo(error)
    const what = `s3:HeadObject ${uri} ${tag}: ${message}`
    if (status === 404 || /^(NotFound|NoSuchKey|NoSuchBucket)$/.test(name)) {
      return {
        problem: {
          code: 'MODEL_ARTIFACT_MISSING',
          fix: 'The model.tar.gz was deleted or moved: restore it, or retrain and use the new job ARN.',
          message: `The job's model artifact does not exist: ${what}`,
        },
      }
    }

    return {
      problem: {
        code: 'MODEL_ARTIFACT_UNCHECKED',
        fix: `Check it with credentials that may read it: aws s3api head-object --bucket ${location.bucket} --key ${location.key}`,
        message: `The job's model artifact could not be checked: ${what}`,
      },
    }
  } finally {
    s3.destroy()
  }
}
