/**
 * What `icc check-role` checks: the role (given, the Greengrass group's through GetAssociatedRole, or a V2 token
 * exchange role alias's through AWS IoT DescribeRoleAlias), the resources (the training job, or the S3 artifact
 * objects), and the policy documents of `--policy-file`.
 */
import {GetAssociatedRoleCommand, GreengrassClient} from '@aws-sdk/client-greengrass'
import {DescribeRoleAliasCommand, IoTClient} from '@aws-sdk/client-iot'
import {readFile} from 'node:fs/promises'
import {basename} from 'node:path'

import type {PolicySource} from './policy.js'

import {parseTrainingJobArn} from '../aws/arn.js'
import {awsErrorInfo, type AwsOptions, clientConfig, mapAwsError} from '../aws/clients.js'
import {AwsError, UsageError} from '../errors.js'
import {type CheckRoleOptions, DESCRIBE_TRAINING_JOB, GET_OBJECT, type Target} from './types.js'

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

/** The documents of `--policy-file`: one policy, or a JSON array of them. */
export async function readPolicyFile(file: string): Promise<PolicySource[]> {
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

/** The action and resources checked: the job (V1 group role) or the artifact objects (V2). */
export function targetOf(options: CheckRoleOptions, roleArn?: string): Target {
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

/** The role whose policies are checked: given, the group's, or the role alias's. */
export async function resolveRole(options: CheckRoleOptions): Promise<string> {
  if (options.roleArn) return options.roleArn
  if (options.roleAlias) return roleAliasArn(options, options.roleAlias)
  return groupRoleArn(options, options.groupId!)
}
