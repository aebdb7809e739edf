/**
 * Greengrass group wiring for `icc create-connector`, as typed steps (src/aws/greengrass.ts): reading the group's
 * latest version (and its resources), the SageMaker ML resource the connector needs (`--with-ml-resource`), and a
 * deployment of the group with the new connector and resource definitions (`--group-id G --deploy [--wait]`).
 *
 * The same steps are printed by `--dry-run` (built from placeholder answers) and sent by the executor. Create
 * calls carry an `AmznClientToken` derived from their input, so running the same command twice does not create
 * duplicates.
 */
import type {GreengrassClient, GroupVersion, Resource} from '@aws-sdk/client-greengrass'

import {setTimeout as sleep} from 'node:timers/promises'

import {type AwsOptions, clientToken} from '../aws/clients.js'
import {
  type GreengrassIo,
  type PlannedRequest,
  planSteps,
  runWithClient,
  sendGreengrass,
  type Step,
  type StepOf,
} from '../aws/greengrass.js'
import {createSpinner} from '../aws/progress.js'
import {AwsError, IccError} from '../errors.js'

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

export interface CreatedDefinition {
  arn?: string
  id?: string
  latestVersion?: string
  latestVersionArn?: string
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

/** What the group steps learn from the answers (placeholders in a dry run). */
export interface GroupAnswers {
  /** The connector definition version to swap into the group. */
  connectorDefinitionVersionArn?: string
  deployment?: DeployGroupResult
  /** Placeholder answers: derived tokens are shown as where they come from. */
  dryRun?: boolean
  /** The definition of the group's latest version (GetGroupVersion; empty without one). */
  groupDefinition: GroupVersion
  groupLatestVersion?: string
  /** The resources of the group's resource definition version (GetResourceDefinitionVersion). */
  groupResources: Resource[]
  groupResourceVersion?: {ResourceDefinitionId: string; ResourceDefinitionVersionId: string}
  groupVersionId?: string
  mlResource?: CreatedDefinition
  /** The resource definition version to swap into the group. */
  resourceDefinitionVersionArn?: string
}

type PlannedOf<K extends PlannedRequest['operation']> = Extract<PlannedRequest, {operation: K}>

const DEFINITION_KEYS = [
  'ConnectorDefinitionVersionArn',
  'CoreDefinitionVersionArn',
  'DeviceDefinitionVersionArn',
  'FunctionDefinitionVersionArn',
  'LoggerDefinitionVersionArn',
  'ResourceDefinitionVersionArn',
  'SubscriptionDefinitionVersionArn',
] as const

/** Answers of a group not read yet (the executor's starting point). */
export function emptyGroupAnswers(): GroupAnswers {
  return {groupDefinition: {}, groupResources: []}
}

/** The dry run's stand-ins for what the group's answers will say. */
export function groupPlaceholders(): GroupAnswers {
  const arn = (part: string) => `<${part} of GetGroupVersion's ResourceDefinitionVersionArn>`
  return {
    deployment: {
      deploymentId: '<from CreateDeployment: DeploymentId>',
      groupId: '',
      groupVersionId: '<from CreateGroupVersion: Version>',
      status: 'Created',
    },
    dryRun: true,
    groupDefinition: {},
    groupLatestVersion: '<from GetGroup: LatestVersion>',
    groupResources: [],
    groupResourceVersion: {ResourceDefinitionId: arn('definition id'), ResourceDefinitionVersionId: arn('version id')},
    groupVersionId: '<from CreateGroupVersion: Version>',
  }
}

/** The resource definition and version ids of a group's ResourceDefinitionVersionArn. */
function resourceVersionOf(groupId: string, versionArn: string): GroupAnswers['groupResourceVersion'] {
  const m = /\/greengrass\/definition\/resources\/([^/]+)\/versions\/([^/]+)$/.exec(versionArn)
  if (m) return {ResourceDefinitionId: m[1], ResourceDefinitionVersionId: m[2]}
  throw new AwsError(
    'BAD_RESOURCE_VERSION_ARN',
    `Group ${groupId}'s ResourceDefinitionVersionArn ${versionArn} is not a resource definition version ARN; its resources cannot be kept.`,
    {suggestions: ['Check the group with "aws greengrass get-group-version", or deploy without --with-ml-resource.']},
  )
}

/**
 * Read the group's latest version (GetGroup, GetGroupVersion) and, with `resources`, the resources of its resource
 * definition version (GetResourceDefinitionVersion), so a new version can keep them. A group that does not exist
 * fails here, before anything is created.
 */
export function groupReadSteps<A extends GroupAnswers>(groupId: string, resources: boolean): Step<A>[] {
  const steps: Step<A>[] = [
    {
      input: () => ({GroupId: groupId}),
      keep(out, a) {
        a.groupLatestVersion = out.LatestVersion
      },
      operation: 'GetGroup',
    },
    {
      input: (a) => ({GroupId: groupId, GroupVersionId: a.groupLatestVersion}),
      keep(out, a) {
        a.groupDefinition = out.Definition ?? {}
        const arn = a.groupDefinition.ResourceDefinitionVersionArn
        if (resources && arn) a.groupResourceVersion = resourceVersionOf(groupId, arn)
      },
      operation: 'GetGroupVersion',
      skip: (a) => !a.groupLatestVersion,
    },
  ]
  if (resources) {
    steps.push({
      input: (a) => ({...a.groupResourceVersion!}),
      keep(out, a) {
        a.groupResources = out.Definition?.Resources ?? []
      },
      operation: 'GetResourceDefinitionVersion',
      skip: (a) => !a.groupResourceVersion,
    })
  }

  return steps
}

/**
 * The CreateResourceDefinition request for the connector's SageMaker ML resource, with `others` (the group's
 * other resources, kept in the same version; one with the same Id is replaced).
 */
export function planMlResource(
  options: MlResourceOptions,
  others: Resource[] = [],
): PlannedOf<'CreateResourceDefinition'> {
  const input = {
    InitialVersion: {
      Resources: [
        ...others.filter((r) => r.Id !== options.resourceId),
        {
          Id: options.resourceId,
          Name: options.resourceId,
          ResourceDataContainer: {
            SageMakerMachineLearningModelResourceData: {
              DestinationPath: options.destinationPath,
              SageMakerJobArn: options.sagemakerJobArn,
              ...(options.ownerSetting ? {OwnerSetting: {...options.ownerSetting}} : {}),
            },
          },
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

/** Create the ML resource definition, keeping the group's other resources (`groupResources` of the answers). */
export function mlResourceStep<A extends GroupAnswers>(
  options: MlResourceOptions,
  keepsGroupResources: boolean,
): StepOf<'CreateResourceDefinition', A> {
  return {
    input: (a) => planMlResource(options, a.groupResources).input,
    keep(out, a) {
      a.mlResource = {
        arn: out.Arn,
        id: out.Id,
        latestVersion: out.LatestVersion,
        latestVersionArn: out.LatestVersionArn,
      }
      a.resourceDefinitionVersionArn = out.LatestVersionArn
    },
    note: keepsGroupResources
      ? "Resources also holds the group's other resources (GetResourceDefinitionVersion), unchanged."
      : undefined,
    operation: 'CreateResourceDefinition',
  }
}

/** Send a CreateResourceDefinition request built by {@link planMlResource}. */
export async function createMlResource(
  aws: AwsOptions,
  options: MlResourceOptions,
  others: Resource[] = [],
): Promise<CreatedDefinition> {
  const answers = {...emptyGroupAnswers(), groupResources: others}
  return (await runWithClient<GroupAnswers>(aws, [mlResourceStep(options, false)], answers)).mlResource!
}

/** The new group version's definition: the current one with the connector/resource versions swapped in. */
export function swapGroupDefinition(
  current: GroupVersion,
  options: Pick<DeployGroupOptions, 'connectorDefinitionVersionArn' | 'resourceDefinitionVersionArn'>,
): GroupVersion {
  const next: GroupVersion = {}
  for (const key of DEFINITION_KEYS) if (current[key]) next[key] = current[key]
  if (options.connectorDefinitionVersionArn) next.ConnectorDefinitionVersionArn = options.connectorDefinitionVersionArn
  if (options.resourceDefinitionVersionArn) next.ResourceDefinitionVersionArn = options.resourceDefinitionVersionArn
  return next
}

/** CreateGroupVersion with the new definitions, CreateDeployment, and with `wait` GetDeploymentStatus polls. */
export function deploySteps<A extends GroupAnswers>(options: DeployGroupOptions): Step<A>[] {
  const {groupId} = options
  const steps: Step<A>[] = [
    {
      input(a) {
        const definition = swapGroupDefinition(a.groupDefinition, a)
        const token = a.dryRun
          ? '<derived from the new definition>'
          : clientToken('CreateGroupVersion', groupId, a.groupLatestVersion, definition)
        return {...definition, AmznClientToken: token, GroupId: groupId}
      },
      keep(out, a) {
        if (!out.Version) throw new AwsError('NO_GROUP_VERSION', 'CreateGroupVersion returned no version id.')
        a.groupVersionId = out.Version
      },
      note: 'Every other definition version ARN of the latest group version is kept, unchanged.',
      operation: 'CreateGroupVersion',
    },
    {
      input: (a) => ({
        AmznClientToken: a.dryRun
          ? '<derived from the group version>'
          : clientToken('CreateDeployment', groupId, a.groupVersionId),
        DeploymentType: 'NewDeployment',
        GroupId: groupId,
        GroupVersionId: a.groupVersionId,
      }),
      keep(out, a) {
        a.deployment = {
          deploymentArn: out.DeploymentArn,
          deploymentId: out.DeploymentId ?? '',
          groupId,
          groupVersionId: a.groupVersionId!,
          previousGroupVersionId: a.groupLatestVersion,
          status: 'Created',
        }
      },
      operation: 'CreateDeployment',
    },
  ]
  if (options.wait) steps.push(waitStep(options))
  return steps
}

function waitStep<A extends GroupAnswers>(options: DeployGroupOptions): StepOf<'GetDeploymentStatus', A> {
  return {
    input: (a) => ({DeploymentId: a.deployment!.deploymentId, GroupId: options.groupId}),
    keep(out, a) {
      a.deployment!.status = out.DeploymentStatus ?? 'Unknown'
    },
    note: 'Repeated until Success or Failure.',
    operation: 'GetDeploymentStatus',
    send: (client, input, a) => waitForDeployment(client, input, a.deployment!, options),
  }
}

/** Every request `deployGroup` sends, in order, for `--dry-run` (values known at run time as placeholders). */
export function planDeployGroup(options: DeployGroupOptions): PlannedRequest[] {
  const placeholders = {...groupPlaceholders(), ...definitionsOf(options)}
  return planSteps([...groupReadSteps(options.groupId, false), ...deploySteps(options)], placeholders)
}

function definitionsOf(options: DeployGroupOptions): Partial<GroupAnswers> {
  return {
    connectorDefinitionVersionArn: options.connectorDefinitionVersionArn,
    resourceDefinitionVersionArn: options.resourceDefinitionVersionArn,
  }
}

/** Create a group version with the new definitions and deploy it; optionally wait for the result. */
export async function deployGroup(aws: AwsOptions, options: DeployGroupOptions): Promise<DeployGroupResult> {
  const steps = [...groupReadSteps<GroupAnswers>(options.groupId, false), ...deploySteps<GroupAnswers>(options)]
  const answers = await runWithClient(aws, steps, {...emptyGroupAnswers(), ...definitionsOf(options)})
  return answers.deployment!
}

/** Poll GetDeploymentStatus until the deployment succeeds (its last answer), fails or the wait times out. */
async function waitForDeployment(
  gg: GreengrassClient,
  input: GreengrassIo['GetDeploymentStatus']['input'],
  result: DeployGroupResult,
  options: DeployGroupOptions,
): Promise<GreengrassIo['GetDeploymentStatus']['output']> {
  const interval = (options.pollIntervalSeconds ?? 5) * 1000
  const deadline = Date.now() + (options.timeoutSeconds ?? 600) * 1000
  const label = `Deployment ${result.deploymentId}`
  const spinner = createSpinner({enabled: options.spinner ?? false, text: `${label}: starting`})
  try {
    for (;;) {
      const status = await sendGreengrass(gg, 'GetDeploymentStatus', input)
      const state = status.DeploymentStatus ?? 'Unknown'
      spinner.text(`${label}: ${state}`)
      if (state === 'Success' || state === 'Failure') spinner.stop(`${label}: ${state}`)
      if (state === 'Success') return status
      if (state === 'Failure') throw deploymentFailed(status, {...result, status: state})
      if (Date.now() > deadline) {
        throw new IccError('DEPLOYMENT_TIMEOUT', `${label} is still ${state}; stopped waiting.`, {
          details: {...result, status: state},
          suggestions: [
            `Check later: aws greengrass get-deployment-status --group-id ${result.groupId} --deployment-id ${result.deploymentId}`,
          ],
        })
      }

      await sleep(interval)
    }
  } finally {
    spinner.stop()
  }
}

function deploymentFailed(status: GreengrassIo['GetDeploymentStatus']['output'], result: DeployGroupResult): AwsError {
  const details = (status.ErrorDetails ?? []).map((d) => `${d.DetailedErrorCode}: ${d.DetailedErrorMessage}`)
  return new AwsError(
    'DEPLOYMENT_FAILED',
    `Deployment ${result.deploymentId} of group ${result.groupId} failed: ${[status.ErrorMessage, ...details].filter(Boolean).join('; ')}`,
    {
      details: {...result},
      suggestions: ['Check the core device logs (greengrass-root/ggc/var/log/system/runtime.log).'],
    },
  )
}
