import type {AwsOptions} from '../aws/clients.js'

import {greengrassClient, latestConnectors, sendConnectorDefinition} from '../aws/greengrass.js'
/**
 * `icc create-connector`: validated connector parameters -> a Greengrass ConnectorDefinition, through the AWS
 * SDK v3, with the same request shape as the documentation's `aws greengrass create-connector-definition`
 * examples. Optionally also the SageMaker ML resource the connector needs, and a deployment of the group.
 *
 * Parameters come from a file and/or one option per parameter (options win); they are validated against the
 * connector version's schema before anything is sent. `dryRun` sends nothing and returns the planned requests.
 */
import {
  type CreatedDefinition,
  createMlResource,
  deployGroup,
  type DeployGroupResult,
  groupResources,
  planDeployGroup,
  planMlResource,
  type PlannedRequest,
} from '../aws/group.js'
import {UsageError, ValidationError, type ValidationProblem} from '../errors.js'
import {type ParameterName, type PlatformId} from './catalog.js'
import {
  buildConnectorEntry,
  checkDefinitionVersion,
  type ConnectorEntry,
  planCreateConnector,
  type PlannedCreate,
  resolveConnector,
} from './definition.js'
import {parametersOf, readJsonFile} from './files.js'
import {type ConnectorParameters, parameterProblems, type ParameterTarget} from './parameters.js'

export interface CreateConnectorOptions extends AwsOptions {
  connectorArn?: string
  connectorVersion?: number
  /** Add a version to this definition, keeping its other connectors. */
  definitionId?: string
  deploy?: boolean
  dryRun?: boolean
  groupId?: string
  /** The connector's Id in the definition version (default `<ConnectorName>-<service name>`). */
  id?: string
  /** With withMlResource: the OS group that owns the model files on the core, and its permission. */
  mlResourceOwner?: {GroupOwner: string; GroupPermission: 'ro' | 'rw'}
  /** Name of a new definition (default `icc-<service name>`). */
  name?: string
  /** Parameters given one by one (they win over the file). */
  parameters?: ConnectorParameters
  parametersFile?: string
  platform?: PlatformId
  spinner?: boolean
  wait?: boolean
  waitTimeoutSeconds?: number
  /** Called with each warning when it arises (before the deployment it warns about); also in the result. */
  warn?: (warning: string) => void
  withMlResource?: boolean
}

export interface CreateConnectorPlan {
  requests: PlannedRequest[]
}

export interface CreateConnectorResult {
  connectorArn: string
  connectorId: string
  /** The definition's ARN (only for a new definition). */
  definitionArn?: string
  definitionId: string
  deployment?: DeployGroupResult
  /** The new version's id and ARN (a group version's ConnectorDefinitionVersionArn). */
  latestVersion?: string
  latestVersionArn?: string
  mlResource?: CreatedDefinition
  /** With withMlResource and deploy: the group's other resources, kept in the new resource definition version. */
  keptResources?: string[]
  /** Other connectors kept from the definition's previous version (with definitionId). */
  keptConnectors: string[]
  operation: PlannedCreate['operation']
  serviceName: string
  warnings: string[]
}

const ID_PATTERN = /^[a-zA-Z0-9:_-]{1,128}$/

/** The create-connector option of each parameter (problems with a value given as an option name the option). */
export const PARAMETER_FLAGS: Record<ParameterName, string> = {
  GPUAcceleration: '--gpu-acceleration',
  LocalInferenceServiceMemoryLimitKB: '--memory-limit-kb',
  LocalInferenceServiceName: '--service-name',
  LocalInferenceServiceTimeoutSeconds: '--timeout-seconds',
  MLFeedbackConnectorConfigId: '--feedback-config-id',
  MLModelDestinationPath: '--model-destination-path',
  MLModelResourceId: '--ml-resource-id',
  MLModelSageMakerJobArn: '--sagemaker-job-arn',
}

/** Merge file and option parameters (options win; undefined options are ignored). */
async function gatherParameters(options: CreateConnectorOptions): Promise<Record<string, unknown>> {
  const fromFile = options.parametersFile
    ? parametersOf(await readJsonFile(options.parametersFile, 'parameters'), options.parametersFile)
    : {}
  const merged: Record<string, unknown> = {...fromFile}
  for (const [key, value] of Object.entries(options.parameters ?? {}) as [ParameterName, string | undefined][]) {
    if (value !== undefined) merged[key] = value
  }

  return merged
}

function usageChecks(options: CreateConnectorOptions): void {
  const problems: ValidationProblem[] = []
  if (options.connectorArn && options.platform) {
    problems.push({
      message: '--connector-arn and --platform both choose the connector.',
      path: '--platform',
      suggestion: 'Pass only one of them.',
    })
  }

  if (options.id !== undefined && !ID_PATTERN.test(options.id)) {
    problems.push({
      message: `--id "${options.id}" may hold only letters, digits, ":", "_" and "-" (1 to 128).`,
      path: '--id',
    })
  }

  if (options.deploy && !options.groupId) {
    problems.push({message: '--deploy needs the group to deploy.', path: '--group-id', suggestion: 'Pass --group-id.'})
  }

  if (options.wait && !options.deploy) {
    problems.push({message: '--wait waits for a deployment.', path: '--wait', suggestion: 'Add --deploy.'})
  }

  if (options.definitionId && options.name) {
    problems.push({
      message: '--name names a new definition; --definition-id adds a version to an existing one.',
      path: '--name',
      suggestion: 'Pass only one of them.',
    })
  }

  if (problems.length > 0) throw new ValidationError('Invalid create-connector options.', problems)
}

/** Put our entry into the connectors of the definition's latest version (same Id: replaced). */
function mergeConnectors(
  existing: ConnectorEntry[],
  entry: ConnectorEntry,
): {connectors: ConnectorEntry[]; kept: string[]} {
  const kept = existing.filter((c) => c.Id !== entry.Id)
  return {connectors: [...kept, entry], kept: kept.map((c) => c.Id)}
}

/**
 * Check merged parameters against the target connector's schema; a problem with a parameter given as an option is
 * named by its option. Throws one ValidationError listing every problem (create-connector and the exporters of
 * src/greengrass-v2 word it alike).
 */
export function checkParameters(
  params: Record<string, unknown>,
  target: ParameterTarget,
  given: {parameters?: Partial<Record<ParameterName, string | undefined>>; parametersFile?: string},
): void {
  const problems = parameterProblems(params, target).map((p) => {
    const name = p.path.slice(1) as ParameterName
    return given.parameters?.[name] === undefined || !PARAMETER_FLAGS[name]
      ? p
      : {...p, path: `${PARAMETER_FLAGS[name]} (${name})`}
  })
  if (problems.length === 0) return
  const source = given.parametersFile ? `The parameters (${given.parametersFile} and options)` : 'The parameters'
  throw new ValidationError(
    `${source} ${problems.length === 1 ? 'have a problem' : `have ${problems.length} problems`} for ${target.connector.displayName} (version ${target.version})`,
    problems,
  )
}

/** Validate, plan and (unless dryRun) create the connector definition, ML resource and deployment. */
export async function createConnector(
  options: CreateConnectorOptions,
): Promise<CreateConnectorPlan | CreateConnectorResult> {
  usageChecks(options)
  const params = await gatherParameters(options)
  const {client, region} = await greengrassClient(options)
  try {
    const target = resolveConnector({...options, region: options.connectorArn ? undefined : region})
    checkParameters(params, target, options)

    const parameters = params as ConnectorParameters
    const serviceName = parameters.LocalInferenceServiceName!
    const id = options.id ?? `${target.connector.name}-${serviceName}`
    const plan = planCreateConnector({
      definitionId: options.definitionId,
      id,
      name: options.definitionId ? undefined : (options.name ?? `icc-${serviceName}`),
      parameters,
      target,
    })
    const ml = options.withMlResource
      ? {
          destinationPath: parameters.MLModelDestinationPath!,
          resourceId: parameters.MLModelResourceId!,
          ownerSetting: options.mlResourceOwner,
          sagemakerJobArn: parameters.MLModelSageMakerJobArn!,
        }
      : undefined

    if (options.dryRun) {
      const requests: PlannedRequest[] = []
      if (options.definitionId) {
        requests.push(
          {input: {ConnectorDefinitionId: options.definitionId}, operation: 'GetConnectorDefinition'},
          {
            input: {
              ConnectorDefinitionId: options.definitionId,
              ConnectorDefinitionVersionId: '<from GetConnectorDefinition: LatestVersion>',
            },
            operation: 'GetConnectorDefinitionVersion',
          },
        )
        const input = plan.input as {ConnectorDefinitionId: string; Connectors: ConnectorEntry[]}
        requests.push({
          input: {
            ...input,
            Connectors: ['<the other connectors of the latest version, unchanged>', ...input.Connectors],
          },
          operation: plan.operation,
        })
      } else {
        requests.push(plan)
      }

      if (ml && options.deploy) {
        const groupId = options.groupId!
        const versionArn = '<from GetGroupVersion: ResourceDefinitionVersionArn>'
        requests.push(
          {input: {GroupId: groupId}, operation: 'GetGroup'},
          {input: {GroupId: groupId, GroupVersionId: '<from GetGroup: LatestVersion>'}, operation: 'GetGroupVersion'},
          {input: {ResourceDefinitionVersionArn: versionArn}, operation: 'GetResourceDefinitionVersion'},
        )
        const planned = planMlResource(ml)
        const version = (planned.input as {InitialVersion: {Resources: unknown[]}}).InitialVersion
        version.Resources.unshift('<the other resources of the group, unchanged>')
        requests.push(planned)
      } else if (ml) requests.push(planMlResource(ml))

      if (options.deploy) {
        requests.push(
          ...planDeployGroup({
            connectorDefinitionVersionArn: `<from ${plan.operation}: ${plan.operation === 'CreateConnectorDefinition' ? 'LatestVersionArn' : 'Arn'}>`,
            groupId: options.groupId!,
            resourceDefinitionVersionArn: ml ? '<from CreateResourceDefinition: LatestVersionArn>' : undefined,
            wait: options.wait,
          }),
        )
      }

      return {requests}
    }

    const warnings: string[] = []
    const entry = buildConnectorEntry({id, parameters, target})
    let kept: string[] = []
    let request = plan
    if (options.definitionId) {
      const existing = await latestConnectors(client, options.definitionId)
      const merged = mergeConnectors(existing.connectors, entry)
      const check = checkDefinitionVersion({Connectors: merged.connectors})
      const clashes = check.problems.filter((p) => /already used/.test(p.message))
      if (clashes.length > 0) {
        throw new ValidationError(
          `The new version of ${options.definitionId} would be invalid (its latest version ${existing.latestVersion ?? '-'} is merged in)`,
          clashes,
        )
      }

      kept = merged.kept
      request = {
        input: {ConnectorDefinitionId: options.definitionId, Connectors: merged.connectors},
        operation: plan.operation,
      }
    }

    const created = await sendConnectorDefinition(client, request)
    const result: CreateConnectorResult = {
      connectorArn: entry.ConnectorArn,
      connectorId: id,
      definitionArn: created.arn,
      definitionId: created.definitionId,
      keptConnectors: kept,
      latestVersion: created.latestVersion,
      latestVersionArn: created.latestVersionArn,
      operation: request.operation,
      serviceName,
      warnings,
    }
    if (ml) {
      // Deploying replaces the group's resource definition version: keep its other resources in the new one.
      const others = options.deploy ? (await groupResources(options, options.groupId!)).resources : []
      result.mlResource = await createMlResource(options, ml, others)
      if (options.deploy) result.keptResources = others.map((r) => r.Id ?? '').filter((r) => r !== ml.resourceId)
    }

    if (options.deploy) {
      if (!created.latestVersionArn) {
        throw new UsageError('NO_VERSION_ARN', 'Greengrass returned no connector definition version ARN to deploy.')
      }

      const warning =
        `The group's connector definition version is replaced by ${created.latestVersionArn}` +
        `${options.definitionId ? '' : ' (a new definition)'}: connectors of other definitions leave the group.`
      warnings.push(warning)
      options.warn?.(warning)
      result.deployment = await deployGroup(options, {
        connectorDefinitionVersionArn: created.latestVersionArn,
        groupId: options.groupId!,
        resourceDefinitionVersionArn: result.mlResource?.latestVersionArn,
        spinner: options.spinner,
        timeoutSeconds: options.waitTimeoutSeconds,
        wait: options.wait,
      })
    }

    return result
  } finally {
    client.destroy()
  }
}
