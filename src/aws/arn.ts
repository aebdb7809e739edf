/**
 * SageMaker training job ARNs: validation against the connector's `MLModelSageMakerJobArn` pattern, parsing
 * into region / account / job name, and a precise hint for the common mistake (the connector documentation's
 * own example writes `training-job:Name`; real ARNs use `training-job/Name`).
 */
import {UsageError} from '../errors.js'

/** The valid pattern of the connector's `MLModelSageMakerJobArn` parameter. */
export const SAGEMAKER_JOB_ARN_PATTERN =
  /^arn:aws:sagemaker:[a-zA-Z0-9-]+:[0-9]+:training-job\/[a-zA-Z0-9][a-zA-Z0-9-]+$/

export interface TrainingJobArn {
  account: string
  arn: string
  jobName: string
  region: string
}

/** Parse a training job ARN, or throw a UsageError that says what is wrong and what the ARN should be. */
export function parseTrainingJobArn(arn: string, flag = '--sagemaker-job-arn'): TrainingJobArn {
  const value = arn.trim()
  if (!SAGEMAKER_JOB_ARN_PATTERN.test(value)) {
    const suggestions: string[] = []
    const typo = /^(arn:aws:sagemaker:[a-zA-Z0-9-]+:[0-9]+:training-job):([a-zA-Z0-9][a-zA-Z0-9-]+)$/.exec(value)
    const badName = /^arn:aws:sagemaker:[a-zA-Z0-9-]+:[0-9]+:training-job\/(.*)$/.exec(value)
    if (badName) {
      suggestions.push(
        `The job name ${JSON.stringify(badName[1])} must be 2 or more letters, digits or hyphens, starting with a letter or digit.`,
      )
    } else if (typo) suggestions.push(`Use "${typo[1]}/${typo[2]}" ("training-job/" with a slash, not a colon).`)
    else if (/^[a-zA-Z0-9][a-zA-Z0-9-]+$/.test(value)) {
      suggestions.push(`Pass the full ARN: arn:aws:sagemaker:REGION:ACCOUNT:training-job/${value}`)
    } else {
      suggestions.push('The format is arn:aws:sagemaker:REGION:ACCOUNT_ID:training-job/JOB_NAME.')
    }

    throw new UsageError('INVALID_JOB_ARN', `${flag} ${JSON.stringify(arn)} is not a SageMaker training job ARN.`, {
      details: {pattern: SAGEMAKER_JOB_ARN_PATTERN.source},
      suggestions,
    })
  }

  const parts = value.split(':')
  const [region, account, rest] = [parts[3], parts[4], parts[5]]
  return {account, arn: value, jobName: rest.slice('training-job/'.length), region}
}
