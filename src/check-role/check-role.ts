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
import {IAMClient, SimulatePrincipalPolicyCommand} from '@aws-sdk/client-iam'

import {awsErrorInfo, clientConfig, mapAwsError} from '../aws/clients.js'
import {isAccessDenied, readRolePolicies, roleNameFromArn} from '../aws/iam.js'
import {AwsError, ExitCode, UsageError} from '../errors.js'
import {applyFix} from './fix.js'
import {describeStatement, evaluatePolicies, type PolicyDecision} from './policy.js'
import {readPolicyFile, resolveRole, targetOf} from './roles.js'
import {
  type CheckRoleOptions,
  type CheckRoleResult,
  type DecidingStatement,
  type ResourceCheck,
  type Target,
} from './types.js'

/** The exit code of a decision: 0 allowed, 6 denied, 7 undecided. */
export function exitCodeFor(decision: PolicyDecision): number {
  if (decision === 'allowed') return ExitCode.Ok
  if (decision === 'undecided') return ExitCode.Undecided
  return ExitCode.Denied
}

/** Ask IAM's policy simulator about one action on one resource. */
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
