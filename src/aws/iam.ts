/**
 * IAM over the AWS SDK v3, for src/check-role/: the role name of a role ARN, whether an error is an access
 * denial, and reading a role's policies (the default version of each attached managed policy and each inline
 * policy, every page) or one inline policy, URL-decoded as documents.
 */
import {
  GetPolicyCommand,
  GetPolicyVersionCommand,
  GetRolePolicyCommand,
  IAMClient,
  ListAttachedRolePoliciesCommand,
  type ListAttachedRolePoliciesCommandOutput,
  ListRolePoliciesCommand,
  type ListRolePoliciesCommandOutput,
} from '@aws-sdk/client-iam'

import {AwsError, UsageError} from '../errors.js'
import {awsErrorInfo, mapAwsError} from './clients.js'

/** A policy document of a role (JSON text) and where it came from (a managed policy ARN or an inline name). */
export interface RolePolicy {
  document: string
  name: string
}

export function roleNameFromArn(roleArn: string): string {
  const m = /^arn:aws[a-z-]*:iam::\d{12}:role\/(?:.*\/)?([\w+=,.@-]+)$/.exec(roleArn)
  if (!m) {
    throw new UsageError('INVALID_ROLE_ARN', `${JSON.stringify(roleArn)} is not an IAM role ARN.`, {
      suggestions: ['The format is arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME.'],
    })
  }

  return m[1]
}

/** Did AWS refuse the call to these credentials? */
export function isAccessDenied(error: unknown): boolean {
  const e = error as {$metadata?: {httpStatusCode?: number}; name?: string}
  return /AccessDenied|UnauthorizedOperation/i.test(e.name ?? '') || e.$metadata?.httpStatusCode === 403
}

/** Read every attached managed policy and inline policy of the role as policy sources. */
export async function readRolePolicies(
  iam: IAMClient,
  roleName: string,
  simulation = 'was denied too',
): Promise<RolePolicy[]> {
  const sources: RolePolicy[] = []
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

/** An inline policy of the role as IAM returns it (URL-decoded), or undefined when the role has none of that name. */
export async function readInlinePolicy(
  iam: IAMClient,
  roleName: string,
  policyName: string,
): Promise<string | undefined> {
  try {
    const out = await iam.send(new GetRolePolicyCommand({PolicyName: policyName, RoleName: roleName}))
    return decodeURIComponent(out.PolicyDocument ?? '')
  } catch (error) {
    const {name, status} = awsErrorInfo(error)
    if (name === 'NoSuchEntity' || name === 'NoSuchEntityException' || status === 404) return undefined
    // Not "none": a caller must never overwrite a policy it could not read.
    throw mapAwsError(error, 'iam:GetRolePolicy')
  }
}
