/**
 * `icc check-role`: does the Greengrass group role allow `sagemaker:DescribeTrainingJob` on the training job?
 *
 * The role comes from `--role-arn`, or from the group (Greengrass `GetAssociatedRole`). IAM's policy simulator
 * (`SimulatePrincipalPolicy`) answers first, with the statements that decided. When the caller may not run the
 * simulator, icc reads the role's attached and inline policies itself (ListAttachedRolePolicies, GetPolicy,
 * GetPolicyVersion, ListRolePolicies, GetRolePolicy) and evaluates them offline with `./policy.ts`.
 * `--policy-file` evaluates given documents without any AWS call. `--fix` adds the job to the role's inline
 * policy `icc-sagemaker-describe-training-job` (created from the connector documentation's example policy):
 * exactly that action on exactly the jobs fixed so far, so a fix for one job never revokes another's grant.
 */
import {GetAssociatedRoleCommand, GreengrassClient} from '@aws-sdk/client-greengrass'
import {
  GetPolicyCommand,
  GetPolicyVersionCommand,
  GetRolePolicyCommand,
  IAMClient,
  ListAttachedRolePoliciesCommand,
  type ListAttachedRolePoliciesCommandOutput,
  ListRolePoliciesCommand,
  type ListRolePoliciesCommandOutput,
  PutRolePolicyCommand,
  SimulatePrincipalPolicyCommand,
} from '@aws-sdk/client-iam'
import {readFile} from 'node:fs/promises'
import {basename} from 'node:path'

import {AwsError, ExitCode, UsageError} from '../errors.js'
import {parseTrainingJobArn} from './arn.js'
import {awsErrorInfo, type AwsOptions, clientConfig, mapAwsError} from './clients.js'
import {
  addJobToFixPolicy,
  describeStatement,
  describeTrainingJobPolicy,
  evaluatePolicies,
  type PolicyDecision,
  type PolicySource,
} from './policy.js'

export const DESCRIBE_TRAINING_JOB = 'sagemaker:DescribeTrainingJob'
export const FIX_POLICY_NAME = 'icc-sagemaker-describe-training-job'

export interface CheckRoleOptions extends AwsOptions {
  /** Ask the user; called only for --fix without --yes. Absent: not interactive. */
  confirm?: (question: string) => Promise<boolean>
  fix?: boolean
  groupId?: string
  /** Progress lines for humans (the --fix plan is shown here before it is applied). */
  log?: (line: string) => void
  policyFile?: string
  roleArn?: string
  sagemakerJobArn: string
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

export interface CheckRoleResult {
  action: typeof DESCRIBE_TRAINING_JOB
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

export function exitCodeFor(decision: PolicyDecision): number {
  if (decision === 'allowed') return ExitCode.Ok
  if (decision === 'undecided') return ExitCode.Undecided
  return ExitCode.Denied
}

/** `arn:aws:iam::123:role/service-role/Name` → `Name`. */
export function roleNameFromArn(roleArn: string): string {
  const m = /^arn:aws[a-z-]*:iam::\d{12}:role\/(?:.*\/)?([\w+=,.@-]+)$/.exec(roleArn)
  if (!m) {
    throw new UsageError('INVALID_ROLE_ARN', `${JSON.stringify(roleArn)} is not an IAM role ARN.`, {
      suggestions: ['The format is arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME.'],
    })
  }

  return m[1]
}

function isAccessDenied(error: unknown): boolean {
  const e = error as {$metadata?: {httpStatusCode?: number}; name?: string}
  return /AccessDenied|UnauthorizedOperation/i.test(e.name ?? '') || e.$metadata?.httpStatusCode === 403
}

/** Greengrass GetAssociatedRole → the group role's ARN. */
export async function groupRoleArn(aws: AwsOptions, groupId: string): Promise<string> {
  const gg = new GreengrassClient(clientConfig(aws))
  try {
    const out = await gg.send(new GetAssociatedRoleCommand({GroupId: groupId}))
    if (!out.RoleArn) {
      throw new AwsError('NO_GROUP_ROLE', `Greengrass group ${groupId} has no role associated.`, {
        suggestions: [
          `Associate one: aws greengrass associate-role-to-group --group-id ${groupId} --role-arn ROLE_ARN`,
        ],
      })
    }

    return out.RoleArn
  } catch (error) {
    // AWS documents BadRequestException (HTTP 400) for a group without a role; some endpoints answer 404.
    const {message, name, tag} = awsErrorInfo(error)
    if (/^(BadRequestException|NotFoundException)$/.test(name)) {
      throw new AwsError(
        'NO_GROUP_ROLE',
        `Greengrass group ${groupId} has no role, or does not exist: ${message} ${tag}`,
        {
          suggestions: [
            'Check the group id (aws greengrass list-groups) and --region.',
            `Associate a role: aws greengrass associate-role-to-group --group-id ${groupId} --role-arn ROLE_ARN`,
          ],
        },
      )
    }

    throw mapAwsError(error, 'greengrass:GetAssociatedRole')
  } finally {
    gg.destroy()
  }
}

async function simulate(iam: IAMClient, roleArn: string, jobArn: string) {
  const out = await iam.send(
    new SimulatePrincipalPolicyCommand({
      ActionNames: [DESCRIBE_TRAINING_JOB],
      PolicySourceArn: roleArn,
      ResourceArns: [jobArn],
    }),
  )
  const r = out.EvaluationResults?.[0]
  if (!r?.EvalDecision) {
    throw new AwsError('SIMULATION_EMPTY', 'IAM SimulatePrincipalPolicy returned no evaluation result.')
  }

  const decision = r.EvalDecision as PolicyDecision
  const statements: DecidingStatement[] = (r.MatchedStatements ?? []).map((s) => ({
    policy: s.SourcePolicyId ?? '(unknown policy)',
    ...(s.StartPosition ? {statement: `line ${s.StartPosition.Line}, column ${s.StartPosition.Column}`} : {}),
    ...(s.SourcePolicyType ? {type: s.SourcePolicyType} : {}),
  }))
  const missing = r.MissingContextValues ?? []
  if (decision !== 'allowed' && missing.length > 0) {
    return {
      decision: 'undecided' as PolicyDecision,
      reason: `the simulator needs context values it was not given (${missing.join(', ')}); cannot decide`,
      statements,
    }
  }

  const words: Record<string, string> = {
    allowed: 'allowed',
    explicitDeny: 'explicitly denied',
    implicitDeny: 'implicitly denied (no statement allows it)',
  }
  const by = statements.length > 0 ? ` by ${statements.map((s) => s.policy).join(', ')}` : ''
  return {decision, reason: `IAM policy simulator: ${words[decision] ?? decision}${by}`, statements}
}

/** Read every attached managed policy and inline policy of the role as policy sources. */
export async function readRolePolicies(
  iam: IAMClient,
  roleName: string,
  simulation = 'was denied too',
): Promise<PolicySource[]> {
  const sources: PolicySource[] = []
  let op = 'iam:ListAttachedRolePolicies'
  try {
    let marker: string | undefined
    for (let page = 0; page < 100; page++) {
      const out: ListAttachedRolePoliciesCommandOutput = await iam.send(
        new ListAttachedRolePoliciesCommand({Marker: marker, RoleName: roleName}),
      )
      for (const p of out.AttachedPolicies ?? []) {
        if (!p.PolicyArn) continue
        op = 'iam:GetPolicy'

        const policy = await iam.send(new GetPolicyCommand({PolicyArn: p.PolicyArn}))
        op = 'iam:GetPolicyVersion'

        const version = await iam.send(
          new GetPolicyVersionCommand({PolicyArn: p.PolicyArn, VersionId: policy.Policy?.DefaultVersionId}),
        )
        sources.push({document: decodeURIComponent(version.PolicyVersion?.Document ?? ''), name: p.PolicyArn})
      }

      op = 'iam:ListAttachedRolePolicies'
      if (!out.IsTruncated || !out.Marker) break
      marker = out.Marker
    }

    marker = undefined
    op = 'iam:ListRolePolicies'
    for (let page = 0; page < 100; page++) {
      const out: ListRolePoliciesCommandOutput = await iam.send(
        new ListRolePoliciesCommand({Marker: marker, RoleName: roleName}),
      )
      for (const name of out.PolicyNames ?? []) {
        op = 'iam:GetRolePolicy'

        const inline = await iam.send(new GetRolePolicyCommand({PolicyName: name, RoleName: roleName}))
        sources.push({document: decodeURIComponent(inline.PolicyDocument ?? ''), name: `${roleName}/${name} (inline)`})
      }

      op = 'iam:ListRolePolicies'
      if (!out.IsTruncated || !out.Marker) break
      marker = out.Marker
    }
  } catch (error) {
    if (isAccessDenied(error)) {
      throw new AwsError(
        'CANNOT_READ_ROLE',
        `Cannot check role ${roleName}: ${op} was denied, and iam:SimulatePrincipalPolicy ${simulation}.`,
        {
          suggestions: [
            'Run check-role with credentials that may call iam:SimulatePrincipalPolicy, or read the role policies.',
            'Or export the policies and pass them with --policy-file.',
          ],
        },
      )
    }

    throw mapAwsError(error, op)
  }

  return sources
}

async function readPolicyFile(file: string): Promise<PolicySource[]> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    throw new UsageError('POLICY_FILE_UNREADABLE', `Cannot read --policy-file ${file}: ${(error as Error).message}`)
  }

  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    throw new UsageError(
      'POLICY_FILE_INVALID',
      `--policy-file ${file} is not valid JSON: ${(error as Error).message}`,
      {
        suggestions: ['Pass one IAM policy document, or a JSON array of them.'],
      },
    )
  }

  const docs = Array.isArray(parsed) ? parsed : [parsed]
  const name = basename(file)
  return docs.map((document, i) => ({document, name: docs.length > 1 ? `${name}[${i}]` : name}))
}

/** Check the role (or given policies) for `sagemaker:DescribeTrainingJob` on the job; optionally fix it. */
export async function checkRole(options: CheckRoleOptions): Promise<CheckRoleResult> {
  const sources = [options.groupId, options.roleArn, options.policyFile].filter(Boolean)
  if (sources.length !== 1) {
    throw new UsageError('ROLE_SOURCE', 'Pass exactly one of --group-id, --role-arn or --policy-file.')
  }

  const job = parseTrainingJobArn(options.sagemakerJobArn)
  const base = {action: DESCRIBE_TRAINING_JOB, resource: job.arn} as const

  if (options.policyFile) {
    if (options.fix) {
      throw new UsageError('FIX_NEEDS_ROLE', '--fix changes a role; it cannot be used with --policy-file.', {
        suggestions: ['Pass --group-id or --role-arn together with --fix.'],
      })
    }

    const evaluation = evaluatePolicies(await readPolicyFile(options.policyFile), DESCRIBE_TRAINING_JOB, job.arn)
    return {
      ...base,
      decision: evaluation.decision,
      exitCode: exitCodeFor(evaluation.decision),
      method: 'policy-file',
      reason: evaluation.reason,
      statements: evaluation.deciding.map((s) => ({
        effect: s.effect,
        policy: s.policyName,
        statement: s.sid ?? `statement[${s.index}]`,
      })),
    }
  }

  const roleArn = options.roleArn ?? (await groupRoleArn(options, options.groupId!))
  const roleName = roleNameFromArn(roleArn)
  const iam = new IAMClient(clientConfig(options))
  try {
    let result: CheckRoleResult
    try {
      const sim = await simulate(iam, roleArn, job.arn)
      result = {...base, ...sim, exitCode: exitCodeFor(sim.decision), method: 'simulation', roleArn}
    } catch (error) {
      result = await evaluateLocally(iam, options, {jobArn: job.arn, roleArn, roleName}, error)
    }

    if (options.fix) result.fix = await applyFix(iam, options, result, roleName, job.arn)
    return result
  } finally {
    iam.destroy()
  }
}

/** Errors after which reading the role's policies cannot work either. */
const NO_FALLBACK = new Set(['ENDPOINT_UNREACHABLE', 'INVALID_ENDPOINT_URL', 'NO_CREDENTIALS', 'NO_REGION'])

/**
 * The simulator failed: read the role's policies and evaluate them here. Access denied is the usual reason; any
 * other failure (an endpoint without the simulator answers HTTP 500) falls back too, and the result says why.
 */
async function evaluateLocally(
  iam: IAMClient,
  options: CheckRoleOptions,
  target: {jobArn: string; roleArn: string; roleName: string},
  error: unknown,
): Promise<CheckRoleResult> {
  const denied = isAccessDenied(error)
  const mapped = mapAwsError(error, 'iam:SimulatePrincipalPolicy')
  if (!denied && NO_FALLBACK.has(mapped.code)) throw mapped
  const failure = denied ? 'was denied' : `failed (${mapped.message})`
  options.log?.(`IAM SimulatePrincipalPolicy ${failure}; reading the role policies and evaluating them locally.`)
  const policies = await readRolePolicies(iam, target.roleName, denied ? 'was denied too' : failure)
  const evaluation = evaluatePolicies(policies, DESCRIBE_TRAINING_JOB, target.jobArn)
  const why = denied ? '' : `the policy simulator failed, so `
  return {
    action: DESCRIBE_TRAINING_JOB,
    decision: evaluation.decision,
    exitCode: exitCodeFor(evaluation.decision),
    method: 'local-evaluation',
    policiesEvaluated: policies.map((p) => p.name),
    reason: `${evaluation.reason} (${why}local evaluation of identity policies; permissions boundaries and SCPs not considered)`,
    resource: target.jobArn,
    roleArn: target.roleArn,
    simulationError: denied ? awsErrorInfo(error).message : mapped.message,
    statements: evaluation.deciding.map((s) => ({
      effect: s.effect,
      policy: s.policyName,
      statement: describeStatement(s).slice(s.policyName.length + 1),
    })),
  }
}

/** The role's icc inline policy as IAM returns it, or undefined when the role has none yet. */
async function readFixPolicy(iam: IAMClient, roleName: string): Promise<string | undefined> {
  try {
    const out = await iam.send(new GetRolePolicyCommand({PolicyName: FIX_POLICY_NAME, RoleName: roleName}))
    return decodeURIComponent(out.PolicyDocument ?? '')
  } catch (error) {
    const {name, status} = awsErrorInfo(error)
    if (name === 'NoSuchEntity' || name === 'NoSuchEntityException' || status === 404) return undefined
    // Never overwrite a policy that could not be read: it may grant other jobs.
    throw mapAwsError(error, 'iam:GetRolePolicy')
  }
}

async function applyFix(
  iam: IAMClient,
  options: CheckRoleOptions,
  result: CheckRoleResult,
  roleName: string,
  jobArn: string,
): Promise<NonNullable<CheckRoleResult['fix']>> {
  const policy = describeTrainingJobPolicy(jobArn)
  const fix = {applied: false, policy, policyName: FIX_POLICY_NAME, roleName}
  if (result.decision === 'allowed') return {...fix, note: 'Already allowed; nothing to change.'}
  if (result.decision === 'explicitDeny') {
    return {
      ...fix,
      note: 'An explicit Deny wins over any Allow; adding a policy cannot fix this. Remove or narrow the denying statement.',
    }
  }

  if (result.statements.some((s) => s.effect === 'Deny')) {
    return {
      ...fix,
      note: 'A Deny with a Condition may apply; adding an Allow cannot settle that. Review the conditional Deny statements.',
    }
  }

  // Put the job into the role's icc policy, keeping the jobs it already grants (one policy name for all fixes).
  const existing = await readFixPolicy(iam, roleName)
  const merged = addJobToFixPolicy(existing, jobArn)
  const planned = {...fix, policy: merged.policy}
  if (!merged.changed) {
    return {
      ...planned,
      note: `The inline policy ${FIX_POLICY_NAME} already allows this job; something else denies it (a permissions boundary or an SCP).`,
    }
  }

  const change = existing
    ? `Update inline policy ${FIX_POLICY_NAME} of role ${roleName} (its other grants kept)`
    : `Add inline policy ${FIX_POLICY_NAME} to role ${roleName}`
  options.log?.(`${change}:`)
  options.log?.(JSON.stringify(merged.policy, null, 2))
  if (!options.yes) {
    if (!options.confirm) {
      throw new UsageError('CONFIRMATION_REQUIRED', '--fix changes the IAM role and needs confirmation.', {
        suggestions: ['Pass --yes to apply the fix without asking (required when not on a terminal).'],
      })
    }

    if (!(await options.confirm(`${change}?`))) {
      return {...planned, note: 'Not applied: declined.'}
    }
  }

  try {
    await iam.send(
      new PutRolePolicyCommand({
        PolicyDocument: JSON.stringify(merged.policy),
        PolicyName: FIX_POLICY_NAME,
        RoleName: roleName,
      }),
    )
  } catch (error) {
    throw mapAwsError(error, 'iam:PutRolePolicy')
  }

  result.decision = 'allowed'
  result.exitCode = ExitCode.Ok
  result.reason = `allowed by the inline policy ${FIX_POLICY_NAME} just ${existing ? 'updated' : 'added'} (was: ${result.reason})`
  return {...planned, applied: true, note: 'Applied. IAM changes can take a few seconds to take effect.'}
}
