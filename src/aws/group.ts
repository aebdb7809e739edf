/**
 * Greengrass group wiring for `icc create-connector`: the SageMaker ML resource the connector needs
 * (`--with-ml-resource`) and a deployment of the group with the new connector and resource definitions
 * (`--group-id G --deploy [--wait]`).
 *
 * Every step is also available as a plan (`{operation, input}` in order, API operation names) for `--dry-run`.
 * Create calls carry an `AmznClientToken` derived from their input, so running the same command twice does not
 * create duplicates.
 */
import {
  CreateDeploymentCommand,
  CreateGroupVersionCommand,
  CreateResourceDefinitionCommand,
  GetDeploymentStatusCommand,
  GetGroupCommand,
  GetGroupVersionCommand,
  GetResourceDefinitionVersionCommand,
  GreengrassClient,
  type Resource,
} from '@aws-sdk/client-greengrass'
import {setTimeout as sleep} from 'node:timers/promises'

import {AwsError, IccError} from '../errors.js'
import {type AwsOptions, clientConfig, clientToken, mapAwsError} from './clients.js'
import {createSpinner} from './progress.js'

export interface PlannedRequest {
  input: Record<string, unknown>
  operation: string
}

export interface MlResourceOptions {
  /** Resource definition name (default `icc-<resourceId>`). */
  definitionName?: string
  /** MLModelDestinationPath. */
  destinationPath: string
  ownerSetting?: {GroupOwner: string; GroupPermission: 'ro' | 'rw'}
  /** MLModelResourceId: the resource's Id inside the group. */
  resourceId: string
  sagemakerJobArn: string
}

/**
 * The CreateResourceDefinition request for the connector's SageMaker ML resource, with `others` (the group's
 * other resources, kept in the same version; one with the same Id is replaced).
 */
export function planMlResource(options: MlResourceOptions, others: Resource[] = []): PlannedRequest {
  const data: Record<string, unknown> = {
    DestinationPath: options.destinationPath,
    SageMakerJobArn: options.sagemakerJobArn,
  }
  if (options.ownerSetting) data.OwnerSetting = {...options.ownerSetting}
  const input = {
    InitialVersion: {
      Resources: [
        ...others.filter((r) => r.Id !== options.resourceId),
        {
          Id: options.resourceId,
          Name: options.resourceId,
          ResourceDataContainer: {SageMakerMachineLearningModelResourceData: data},
        },
      ],
    },
    Name: options.definitionName ?? `icc-${options.resourceId}`,
  }
  return {
    input: {...input, AmznClientToken: clientToken('CreateResourceDefinition', input)},
    operation: 'CreateResourceDefinition',
  }
}

export interface CreatedDefinition {
  arn?: string
  id?: string
  latestVersion?: string
  latestVersionArn?: string
}

/** Send a CreateResourceDefinition request built by {@link planMlResource}. */
export async function createMlResource(
  aws: AwsOptions,
  options: MlResourceOptions,
  others: Resource[] = [],
): Promise<CreatedDefinition> {
  const gg = new GreengrassClient(clientConfig(aws))
  try {
    const out = await gg.send(new CreateResourceDefinitionCommand(planMlResource(options, others).input))
    return {arn: out.Arn, id: out.Id, latestVersion: out.LatestVersion, latestVersionArn: out.LatestVersionArn}
  } catch (error) {
    throw mapAwsError(error, 'greengrass:CreateResourceDefinition')
  } finally {
    gg.destroy()
  }
}

/** The definition of the group's latest version (empty when the group has no version yet). */
async function latestGroupDefinition(
  gg: GreengrassClient,
  groupId: string,
): Promise<{current: Partial<Record<(typeof DEFINITION_KEYS)[number], string>>; latestVersion?: string}> {
  const group = await gg.send(new GetGroupCommand({GroupId: groupId}))
  if (!group.LatestVersion) return {current: {}}
  const version = await gg.send(new GetGroupVersionCommand({GroupId: groupId, GroupVersionId: group.LatestVersion}))
  return {current: (version.Definition ?? {}) as Record<string, string>, latestVersion: group.LatestVersion}
}

/**
 * The resources of the group's latest version (GetGroup, GetGroupVersion, GetResourceDefinitionVersion), so a
 * new resource definition version can keep them; empty when the group has none.
 */
export async function groupResources(
  aws: AwsOptions,
  groupId: string,
): Promise<{resources: Resource[]; versionArn?: string}> {
  const gg = new GreengrassClient(clientConfig(aws))
  let op = 'greengrass:GetGroup'
  try {
    const {current} = await latestGroupDefinition(gg, groupId)
    const versionArn = current.ResourceDefinitionVersionArn
    if (!versionArn) return {resources: []}
    const m = /\/greengrass\/definition\/resources\/([^/]+)\/versions\/([^/]+)$/.exec(versionArn)
    if (!m) {
      throw new AwsError(
        'BAD_RESOURCE_VERSION_ARN',
        `Group ${groupId}'s ResourceDefinitionVersionArn ${versionArn} is not a resource definition version ARN; its resources cannot be kept.`,
        {
          suggestions: [
            'Check the group with "aws greengrass get-group-version", or deploy without --with-ml-resource.',
          ],
        },
      )
    }

    op = 'greengrass:GetResourceDefinitionVersion'
    const version = await gg.send(
      new GetResourceDefinitionVersionCommand({ResourceDefinitionId: m[1], ResourceDefinitionVersionId: m[2]}),
    )
    return {resources: version.Definition?.Resources ?? [], versionArn}
  } catch (error) {
    throw mapAwsError(error, op)
  } finally {
    gg.destroy()
  }
}

export interface DeployGroupOptions {
  /** Swap in this connector definition version (keep the group's when absent). */
  connectorDefinitionVersionArn?: string
  groupId: string
  /** Seconds between GetDeploymentStatus polls (default 5). */
  pollIntervalSeconds?: number
  /** Swap in this resource definition version (keep the group's when absent). */
  resourceDefinitionVersionArn?: string
  /** Show a spinner on stderr while waiting. */
  spinner?: boolean
  /** Give up waiting after this many seconds (default 600). */
  timeoutSeconds?: number
  wait?: boolean
}

export interface DeployGroupResult {
  deploymentArn?: string
  deploymentId: string
  errorMessage?: string
  groupId: string
  groupVersionId: string
  previousGroupVersionId?: string
  /** Final status when waited for (Success / Failure), else the status at creation ("Created"). */
  status: string
}

const DEFINITION_KEYS = [
  'ConnectorDefinitionVersionArn',
  'CoreDefinitionVersionArn',
  'DeviceDefinitionVersionArn',
  'FunctionDefinitionVersionArn',
  'LoggerDefinitionVersionArn',
  'ResourceDefinitionVersionArn',
  'SubscriptionDefinitionVersionArn',
] as const

/** The new group version's definition: the current one with the connector/resource versions swapped in. */
export function swapGroupDefinition(
  current: Partial<Record<(typeof DEFINITION_KEYS)[number], string>>,
  options: Pick<DeployGroupOptions, 'connectorDefinitionVersionArn' | 'resourceDefinitionVersionArn'>,
): Record<string, string> {
  const next: Record<string, string> = {}
  for (const key of DEFINITION_KEYS) if (current[key]) next[key] = current[key]!
  if (options.connectorDefinitionVersionArn) next.ConnectorDefinitionVersionArn = options.connectorDefinitionVersionArn
  if (options.resourceDefinitionVersionArn) next.ResourceDefinitionVersionArn = options.resourceDefinitionVersionArn
  return next
}

/**
 * Every request `deployGroup` sends, in order, for `--dry-run`. Values only known at run time are shown as
 * `<from Operation>` placeholders.
 */
export function planDeployGroup(options: DeployGroupOptions): PlannedRequest[] {
  const latest = '<from GetGroup: LatestVersion>'
  const plan: PlannedRequest[] = [
    {input: {GroupId: options.groupId}, operation: 'GetGroup'},
    {input: {GroupId: options.groupId, GroupVersionId: latest}, operation: 'GetGroupVersion'},
    {
      input: {
        ...(options.connectorDefinitionVersionArn
          ? {ConnectorDefinitionVersionArn: options.connectorDefinitionVersionArn}
          : {}),
        ...(options.resourceDefinitionVersionArn
          ? {ResourceDefinitionVersionArn: options.resourceDefinitionVersionArn}
          : {}),
        AmznClientToken: '<derived from the new definition>',
        GroupId: options.groupId,
        '...': '<every other definition version ARN of the latest group version, unchanged>',
      },
      operation: 'CreateGroupVersion',
    },
    {
      input: {
        AmznClientToken: '<derived from the group version>',
        DeploymentType: 'NewDeployment',
        GroupId: options.groupId,
        GroupVersionId: '<from CreateGroupVersion: Version>',
      },
      operation: 'CreateDeployment',
    },
  ]
  if (options.wait) {
    plan.push({
      input: {DeploymentId: '<from CreateDeployment: DeploymentId>', GroupId: options.groupId},
      operation: 'GetDeploymentStatus (repeated until Success or Failure)',
    })
  }

  return plan
}

/** Create a group version with the new definitions and deploy it; optionally wait for the result. */
export async function deployGroup(aws: AwsOptions, options: DeployGroupOptions): Promise<DeployGroupResult> {
  const gg = new GreengrassClient(clientConfig(aws))
  let op = 'greengrass:GetGroup'
  try {
    const group = await latestGroupDefinition(gg, options.groupId)
    const definition = swapGroupDefinition(group.current, options)
    op = 'greengrass:CreateGroupVersion'
    const created = await gg.send(
      new CreateGroupVersionCommand({
        ...definition,
        AmznClientToken: clientToken('CreateGroupVersion', options.groupId, group.latestVersion, definition),
        GroupId: options.groupId,
      }),
    )
    if (!created.Version) throw new AwsError('NO_GROUP_VERSION', 'CreateGroupVersion returned no version id.')

    op = 'greengrass:CreateDeployment'
    const deployment = await gg.send(
      new CreateDeploymentCommand({
        AmznClientToken: clientToken('CreateDeployment', options.groupId, created.Version),
        DeploymentType: 'NewDeployment',
        GroupId: options.groupId,
        GroupVersionId: created.Version,
      }),
    )
    const result: DeployGroupResult = {
      deploymentArn: deployment.DeploymentArn,
      deploymentId: deployment.DeploymentId ?? '',
      groupId: options.groupId,
      groupVersionId: created.Version,
      previousGroupVersionId: group.latestVersion,
      status: 'Created',
    }
    if (!options.wait) return result

    op = 'greengrass:GetDeploymentStatus'
    return await waitForDeployment(gg, result, options)
  } catch (error) {
    throw mapAwsError(error, op)
  } finally {
    gg.destroy()
  }
}

async function waitForDeployment(
  gg: GreengrassClient,
  result: DeployGroupResult,
  options: DeployGroupOptions,
): Promise<DeployGroupResult> {
  const interval = (options.pollIntervalSeconds ?? 5) * 1000
  const deadline = Date.now() + (options.timeoutSeconds ?? 600) * 1000
  const spinner = createSpinner({
    enabled: options.spinner ?? false,
    text: `Deployment ${result.deploymentId}: starting`,
  })
  try {
    for (;;) {
      const status = await gg.send(
        new GetDeploymentStatusCommand({DeploymentId: result.deploymentId, GroupId: result.groupId}),
      )
      const state = status.DeploymentStatus ?? 'Unknown'
      spinner.text(`Deployment ${result.deploymentId}: ${state}`)
      if (state === 'Success') {
        spinner.stop(`Deployment ${result.deploymentId}: Success`)
        return {...result, status: state}
      }

      if (state === 'Failure') {
        spinner.stop(`Deployment ${result.deploymentId}: Failure`)
        const details = (status.ErrorDetails ?? []).map((d) => `${d.DetailedErrorCode}: ${d.DetailedErrorMessage}`)
        throw new AwsError(
          'DEPLOYMENT_FAILED',
          `Deployment ${result.deploymentId} of group ${result.groupId} failed: ${[status.ErrorMessage, ...details].filter(Boolean).join('; ')}`,
          {
            details: {...result, status: state},
            suggestions: ['Check the core device logs (greengrass-root/ggc/var/log/system/runtime.log).'],
          },
        )
      }

      if (Date.now() > deadline) {
        spinner.stop()
        throw new IccError(
          'DEPLOYMENT_TIMEOUT',
          `Deployment ${result.deploymentId} is still ${state}; stopped waiting.`,
          {
            details: {...result, status: state},
            suggestions: [
              `Check later: aws greengrass get-deployment-status --group-id ${result.groupId} --deployment-id ${result.deploymentId}`,
            ],
          },
        )
      }

      await sleep(interval)
    }
  } catch (error) {
    spinner.stop()
    throw error
  }
}
