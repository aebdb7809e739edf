/**
 * `icc check-role`: does the Greengrass group role allow `sagemaker:DescribeTrainingJob` on the training job? Or
 * (Greengrass V2, chosen by `--s3-uri`) does the token exchange role allow `s3:GetObject` on the component's
 * artifact objects?
 *
 * The role comes from `--role-arn`, from the group (Greengrass `GetAssociatedRole`), or from the V2 token
 * exchange role alias (AWS IoT `DescribeRoleAlias`). IAM's policy simulator
 * (`SimulatePrincipalPolicy`) answers first, with the statements that decided. When the caller may not run the
 * simulator, icc reads the role's attached and inline policies itself (ListAttachedRolePolicies, GetPolicy,
 * GetPolicyVersion, ListRolePolicies, GetRolePolicy) and evaluates them offline with `./policy.ts`.
 * `--policy-file` evaluates given documents without any AWS call. `--fix` adds the job (or the artifact objects) to
 * the role's inline policy `icc-sagemaker-describe-training-job` (created from the connector documentation's
 * example policy): exactly that action on exactly the resources fixed so far, so a fix for one job never revokes
 * another's grant, and an artifact grant never revokes a job's.
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
import {DescribeRoleAliasCommand, IoTClient} from '@aws-sdk/client-iot'
import {readFile} from 'node:fs/promises'
import {basename} from 'node:path'

import {AwsError, ExitCode, UsageError} from '../errors.js'
import {parseTrainingJobArn} from './arn.js'
import {awsErrorInfo, type AwsOptions, clientConfig, mapAwsError} from './clients.js'
import {
  addGrantToFixPolicy,
  describeStatement,
  evaluatePolicies,
  grantPolicy,
  type PolicyDecision,
  type PolicySource,
} from './policy.js'

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

/** AWS IoT DescribeRoleAlias → the token exchange role's ARN (Greengrass V2). */
export async function roleAliasArn(aws: AwsOptions, roleAlias: string): Promise<string> {
  const iot = new IoTClient(clientConfig(aws))
  try {
    const out = await iot.send(new DescribeRoleAliasCommand({roleAlias}))
    const arn = out.roleAliasDescription?.roleArn
    if (!arn) throw new AwsError('NO_ROLE_ALIAS', `AWS IoT role alias ${roleAlias} names no role.`)
    return arn
  } catch (error) {
    if (awsErrorInfo(error).name === 'ResourceNotFoundException') {
      throw new AwsError('NO_ROLE_ALIAS', `AWS IoT role alias ${JSON.stringify(roleAlias)} does not exist.`, {
        suggestions: [
          'List them: aws iot list-role-aliases (the nucleus uses the iotRoleAlias of its configuration; default GreengrassV2TokenExchangeRoleAlias).',
          'Check --region.',
        ],
      })
    }

    if (error instanceof AwsError) throw error
    throw mapAwsError(error, 'iot:DescribeRoleAlias')
  } finally {
    iot.destroy()
  }
}

/** `s3://bucket/key` → the object's ARN; `s3://bucket/prefix/` (or `s3://bucket`) → every object under it. */
export function s3ObjectArn(uri: string, partition = 'aws'): string {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(uri.trim())
  if (!m) {
    throw new UsageError('INVALID_S3_URI', `--s3-uri ${JSON.stringify(uri)} is not an S3 object URI.`, {
      suggestions: ['Pass s3://BUCKET/KEY for one artifact, or s3://BUCKET/PREFIX/ for every object under a prefix.'],
    })
  }

  const key = m[2] ?? ''
  return `arn:${partition}:s3:::${m[1]}/${key === '' || key.endsWith('/') ? `${key}*` : key}`
}

async function simulate(iam: IAMClient, roleArn: string, action: string, resource: string) {
  const out = await iam.send(
    new SimulatePrincipalPolicyCommand({
      ActionNames: [action],
      PolicySourceArn: roleArn,
      ResourceArns: [resource],
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

/** What is checked: one action on one or more resources. */
interface Target {
  action: CheckRoleResult['action']
  resources: string[]
}

function targetOf(options: CheckRoleOptions, roleArn?: string): Target {
  const s3Uris = options.s3Uris ?? []
  if (Boolean(options.sagemakerJobArn) === s3Uris.length > 0) {
    throw new UsageError(
      'CHECK_TARGET',
      'Pass either --sagemaker-job-arn (Greengrass V1 group role) or --s3-uri (Greengrass V2 artifacts).',
    )
  }

  if (options.sagemakerJobArn) {
    return {action: DESCRIBE_TRAINING_JOB, resources: [parseTrainingJobArn(options.sagemakerJobArn).arn]}
  }

  const partition = roleArn?.split(':')[1] || 'aws'
  return {action: GET_OBJECT, resources: [...new Set(s3Uris.map((u) => s3ObjectArn(u, partition)))]}
}

const SEVERITY: PolicyDecision[] = ['explicitDeny', 'implicitDeny', 'undecided', 'allowed']

/** One result from the per-resource verdicts: the worst decides, every deciding statement is kept. */
function combine(
  target: Target,
  checks: ResourceCheck[],
  rest: Omit<CheckRoleResult, 'action' | 'decision' | 'exitCode' | 'reason' | 'resource' | 'statements'>,
): CheckRoleResult {
  const worst = [...checks].sort((a, b) => SEVERITY.indexOf(a.decision) - SEVERITY.indexOf(b.decision))[0]
  const several = checks.length > 1
  const failing = checks.filter((c) => c.decision !== 'allowed').length
  return {
    action: target.action,
    ...(several ? {checks} : {}),
    decision: worst.decision,
    exitCode: exitCodeFor(worst.decision),
    ...rest,
    reason: several
      ? `${failing} of ${checks.length} resources not allowed; ${worst.resource}: ${worst.reason}`
      : worst.reason,
    resource: worst.resource,
    statements: checks.flatMap((c) => c.statements),
  }
}

const fromEvaluation = (evaluation: ReturnType<typeof evaluatePolicies>, describe: boolean): ResourceCheck => ({
  decision: evaluation.decision,
  reason: evaluation.reason,
  resource: evaluation.resource,
  statements: evaluation.deciding.map((s) => ({
    effect: s.effect,
    policy: s.policyName,
    statement: describe ? describeStatement(s).slice(s.policyName.length + 1) : (s.sid ?? `statement[${s.index}]`),
  })),
})

/** The role whose policies are checked: given, the group's, or the role alias's. */
async function resolveRole(options: CheckRoleOptions): Promise<string> {
  if (options.roleArn) return options.roleArn
  if (options.roleAlias) return roleAliasArn(options, options.roleAlias)
  return groupRoleArn(options, options.groupId!)
}

/** Check the role (or given policies) for the action on the job or artifact objects; optionally fix it. */
export async function checkRole(options: CheckRoleOptions): Promise<CheckRoleResult> {
  const sources = [options.groupId, options.roleArn, options.roleAlias, options.policyFile].filter(Boolean)
  if (sources.length !== 1) {
    throw new UsageError('ROLE_SOURCE', 'Pass exactly one of --group-id, --role-arn, --role-alias or --policy-file.')
  }

  if (options.policyFile) {
    const target = targetOf(options)
    if (options.fix) {
      throw new UsageError('FIX_NEEDS_ROLE', '--fix changes a role; it cannot be used with --policy-file.', {
        suggestions: ['Pass --group-id, --role-arn or --role-alias together with --fix.'],
      })
    }

    const policies = await readPolicyFile(options.policyFile)
    const checks = target.resources.map((r) => fromEvaluation(evaluatePolicies(policies, target.action, r), false))
    return combine(target, checks, {method: 'policy-file'})
  }

  targetOf(options) // bad input is reported before any AWS call
  const roleArn = await resolveRole(options)
  const target = targetOf(options, roleArn)
  const roleName = roleNameFromArn(roleArn)
  const iam = new IAMClient(clientConfig(options))
  try {
    let result: CheckRoleResult
    try {
      const checks: ResourceCheck[] = []
      for (const resource of target.resources) {
        checks.push({...(await simulate(iam, roleArn, target.action, resource)), resource})
      }

      result = combine(target, checks, {method: 'simulation', roleArn})
    } catch (error) {
      result = await evaluateLocally(iam, options, {...target, roleArn, roleName}, error)
    }

    if (options.fix) result.fix = await applyFix(iam, options, result, roleName, target)
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
  target: Target & {roleArn: string; roleName: string},
  error: unknown,
): Promise<CheckRoleResult> {
  const denied = isAccessDenied(error)
  const mapped = mapAwsError(error, 'iam:SimulatePrincipalPolicy')
  if (!denied && NO_FALLBACK.has(mapped.code)) throw mapped
  const failure = denied ? 'was denied' : `failed (${mapped.message})`
  options.log?.(`IAM SimulatePrincipalPolicy ${failure}; reading the role policies and evaluating them locally.`)
  const policies = await readRolePolicies(iam, target.roleName, denied ? 'was denied too' : failure)
  const why = denied ? '' : `the policy simulator failed, so `
  const checks = target.resources.map((resource) => {
    const check = fromEvaluation(evaluatePolicies(policies, target.action, resource), true)
    const reason = `${check.reason} (${why}local evaluation of identity policies; permissions boundaries and SCPs not considered)`
    return {...check, reason}
  })
  return combine(target, checks, {
    method: 'local-evaluation',
    policiesEvaluated: policies.map((p) => p.name),
    roleArn: target.roleArn,
    simulationError: denied ? awsErrorInfo(error).message : mapped.message,
  })
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
  target: Target,
): Promise<NonNullable<CheckRoleResult['fix']>> {
  // Grant what is not allowed yet (every resource when the checks were one).
  const failing = (result.checks ?? [result]).filter((c) => c.decision !== 'allowed').map((c) => c.resource)
  const missing = failing.length > 0 ? failing : target.resources
  const policy = grantPolicy(target.action, missing.length === 1 ? missing[0] : missing)
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

  // Put the resources into the role's icc policy, keeping what it already grants (one policy name for all fixes).
  const existing = await readFixPolicy(iam, roleName)
  const merged = addGrantToFixPolicy(existing, target.action, missing)
  const planned = {...fix, policy: merged.policy}
  if (!merged.changed) {
    return {
      ...planned,
      note: `The inline policy ${FIX_POLICY_NAME} already allows ${target.action === GET_OBJECT ? 'these objects' : 'this job'}; something else denies it (a permissions boundary or an SCP).`,
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
  for (const c of result.checks ?? []) c.decision = 'allowed'
  result.reason = `allowed by the inline policy ${FIX_POLICY_NAME} just ${existing ? 'updated' : 'added'} (was: ${result.reason})`
  return {...planned, applied: true, note: 'Applied. IAM changes can take a few seconds to take effect.'}
}
