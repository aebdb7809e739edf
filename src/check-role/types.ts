/** The options and result of `icc check-role`, and what it checks (an action on resources). */
import type {AwsOptions} from '../aws/clients.js'
import type {PolicyDecision} from './policy.js'

export const DESCRIBE_TRAINING_JOB = 'sagemaker:DescribeTrainingJob'
export const GET_OBJECT = 's3:GetObject'
export const FIX_POLICY_NAME = 'icc-sagemaker-describe-training-job'

export interface CheckRoleOptions extends AwsOptions {
  /** Ask the user; called only for --fix without --yes. Absent: not interactive. */
  confirm?: (question: string) => Promise<boolean>
  fix?: boolean
  groupId?: string
  /** Progress lines for humans (the --fix plan is shown here before it is applied). */
  log?: (line: string) => void
  policyFile?: string
  /** Greengrass V2 token exchange role alias (resolved with AWS IoT DescribeRoleAlias). */
  roleAlias?: string
  roleArn?: string
  /** Greengrass V2: the artifact objects (`s3://bucket/key`) or prefixes (`s3://bucket/prefix/`). */
  s3Uris?: string[]
  /** V1: the training job; exactly one of this and `s3Uris`. */
  sagemakerJobArn?: string
  yes?: boolean
}

export interface DecidingStatement {
  /** Allow or Deny (local evaluation only; the simulator does not say). */
  effect?: 'Allow' | 'Deny'
  /** Policy name / ARN / file name. */
  policy: string
  /** Sid, or `statement[i]` when it has none (local evaluation), or the simulator's start position. */
  statement?: string
  type?: string
}

/** The verdict for one resource (V2 with several artifact objects: one per object). */
export interface ResourceCheck {
  decision: PolicyDecision
  reason: string
  resource: string
  statements: DecidingStatement[]
}

export interface CheckRoleResult {
  action: typeof DESCRIBE_TRAINING_JOB | typeof GET_OBJECT
  /** Every resource's verdict when more than one was checked; the top-level fields are the worst of them. */
  checks?: ResourceCheck[]
  decision: PolicyDecision
  /** 0 allowed, 6 denied, 7 undecided. */
  exitCode: number
  fix?: {applied: boolean; note: string; policy: unknown; policyName: string; roleName?: string}
  /** How the decision was made. */
  method: 'local-evaluation' | 'policy-file' | 'simulation'
  /** Policies read for local evaluation. */
  policiesEvaluated?: string[]
  reason: string
  resource: string
  roleArn?: string
  /** Why the simulator was not used (local evaluation only). */
  simulationError?: string
  statements: DecidingStatement[]
}

/** What is checked: one action on one or more resources. */
export interface Target {
  action: CheckRoleResult['action']
  resources: string[]
}
