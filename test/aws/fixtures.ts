/**
 * Shared AWS test fixtures: fake credentials (with a planted secret that must never be printed), ARNs, and
 * realistic wire payloads for the loopback endpoint.
 */
import {iamResult} from '../helpers/aws-wire.js'

export const REGION = 'us-west-2'
export const ACCOUNT = '123456789012'
export const JOB_NAME = 'MyImageClassifier'
export const JOB_ARN = `arn:aws:sagemaker:${REGION}:${ACCOUNT}:training-job/${JOB_NAME}`
export const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/service-role/GreengrassGroupRole`
export const GROUP_ID = '1402daf9-71cf-4cfe-8be0-d5e80526d0d8'
export const ACCESS_KEY_ID = 'AKIAICCTESTFAKE00001'
export const SECRET_KEY = 'icc+PLANTED+secret/DoNotPrint0123456789abc'

export const AWS_ENV = {
  AWS_ACCESS_KEY_ID: ACCESS_KEY_ID,
  AWS_CONFIG_FILE: '/nonexistent/icc-test-config',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_REGION: REGION,
  AWS_SECRET_ACCESS_KEY: SECRET_KEY,
  AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/icc-test-credentials',
}

/** Put the fake credentials into this process's environment (for in-process SDK clients). */
export function useFakeCredentials(): void {
  Object.assign(process.env, AWS_ENV)
}

export function simulateReply(
  decision: string,
  matched: {id: string; line?: number}[] = [],
  missing: string[] = [],
): string {
  const statements = matched
    .map(
      (m) =>
        `<member><SourcePolicyId>${m.id}</SourcePolicyId><SourcePolicyType>IAM Policy</SourcePolicyType>` +
        `<StartPosition><Line>${m.line ?? 1}</Line><Column>38</Column></StartPosition>` +
        `<EndPosition><Line>${m.line ?? 1}</Line><Column>190</Column></EndPosition></member>`,
    )
    .join('')
  return iamResult(
    'SimulatePrincipalPolicy',
    `<IsTruncated>false</IsTruncated><EvaluationResults><member>` +
      `<EvalActionName>sagemaker:DescribeTrainingJob</EvalActionName><EvalResourceName>${JOB_ARN}</EvalResourceName>` +
      `<EvalDecision>${decision}</EvalDecision><MatchedStatements>${statements}</MatchedStatements>` +
      `<MissingContextValues>${missing.map((m) => `<member>${m}</member>`).join('')}</MissingContextValues>` +
      `<EvalDecisionDetails/></member></EvaluationResults>`,
  )
}

/** A DescribeTrainingJob reply like SageMaker's for a completed image-classification job. */
export function trainingJob(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    AlgorithmSpecification: {
      EnableSageMakerMetricsTimeSeries: false,
      TrainingImage: '433757028032.dkr.ecr.us-west-2.amazonaws.com/image-classification:1',
      TrainingInputMode: 'File',
    },
    CreationTime: 1_700_000_000.123,
    HyperParameters: {
      epochs: '30',
      image_shape: '3,224,224',
      learning_rate: '0.01',
      mini_batch_size: '32',
      num_classes: '257',
      num_layers: '18',
      num_training_samples: '15420',
    },
    ModelArtifacts: {S3ModelArtifacts: `s3://icc-models/output/${JOB_NAME}/output/model.tar.gz`},
    ResourceConfig: {InstanceCount: 1, InstanceType: 'ml.p2.xlarge', VolumeSizeInGB: 50},
    RoleArn: `arn:aws:iam::${ACCOUNT}:role/service-role/AmazonSageMaker-ExecutionRole`,
    SecondaryStatus: 'Completed',
    StoppingCondition: {MaxRuntimeInSeconds: 360_000},
    TrainingEndTime: 1_700_003_600.5,
    TrainingJobArn: JOB_ARN,
    TrainingJobName: JOB_NAME,
    TrainingJobStatus: 'Completed',
    TrainingStartTime: 1_700_000_100.5,
    ...overrides,
  }
}

export function policyVersionReply(document: unknown): string {
  return iamResult(
    'GetPolicyVersion',
    `<PolicyVersion><Document>${encodeURIComponent(JSON.stringify(document))}</Document>` +
      `<IsDefaultVersion>true</IsDefaultVersion><VersionId>v3</VersionId>` +
      `<CreateDate>2024-05-01T10:00:00Z</CreateDate></PolicyVersion>`,
  )
}
