/**
 * `icc check-role --fix`: add the missing resources to the role's inline policy `icc-sagemaker-describe-training-job`
 * (created from the connector documentation's example policy), keeping what it already grants, after the user
 * confirmed (or `--yes`). Never when a Deny decides: an Allow cannot settle that.
 */
import {type IAMClient, PutRolePolicyCommand} from '@aws-sdk/client-iam'

import {mapAwsError} from '../aws/clients.js'
import {readInlinePolicy} from '../aws/iam.js'
import {ExitCode, UsageError} from '../errors.js'
import {addGrantToFixPolicy, grantPolicy} from './policy.js'
import {type CheckRoleOptions, type CheckRoleResult, FIX_POLICY_NAME, GET_OBJECT, type Target} from './types.js'

/** Apply (or explain why not) the fix of a check result; marks the result allowed once applied. */
export async function applyFix(
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
  const existing = await readInlinePolicy(iam, roleName, FIX_POLICY_NAME)
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
