/**
 * `icc create-connector`: validated connector parameters -> a Greengrass ConnectorDefinition, through the AWS
 * SDK v3, with the same request shape as the documentation's `aws greengrass create-connector-definition`
 * examples. Optionally also the SageMaker ML resource the connector needs, and a deployment of the group.
 *
 * Parameters come from a file and/or one option per parameter (options win); they are validated against the
 * connector version's schema before anything is sent. `dryRun` sends nothing and returns the planned requests:
 * the same steps (create-steps.ts) the executor sends.
 */
import type {AwsOptions} from '../aws/clients.js'

import {greengrassClient, type PlannedRequest, planSteps, runSteps} from '../aws/greengrass.js'
import {ValidationError, type ValidationProblem} from '../errors.js'
import {type ParameterName, type PlatformId} from './catalog.js'
import {
  type CreateAnswers,
  createPlaceholders,
  type CreateRequests,
  createSteps,
  emptyCreateAnswers,
} from './create-steps.js'
import {buildConnectorEntry, planCreateConnector, type PlannedCreate, resolveConnector} from './definition.js'
import {parametersOf, readJsonFile} from './files.js'
import {type CreatedDefinition, type DeployGroupResult} from './group.js'
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

/** Everything decided from the options before any request: the connector entry and the requests to make. */
function decide(options: CreateConnectorOptions, params: Record<string, unknown>, region?: string): CreateRequests {
  const target = resolveConnector({...options, region: options.connectorArn ? undefined : region})
  checkParameters(params, target, options)
  const parameters = params as ConnectorParameters
  const serviceName = parameters.LocalInferenceServiceName!
  const plan = {
    definitionId: options.definitionId,
    id: options.id ?? `${target.connector.name}-${serviceName}`,
    name: options.definitionId ? undefined : (options.name ?? `icc-${serviceName}`),
    parameters,
    target,
  }
  return {
    create: planCreateConnector(plan),
    deploy: options.deploy
      ? {
          groupId: options.groupId!,
          spinner: options.spinner,
          timeoutSeconds: options.waitTimeoutSeconds,
          wait: options.wait,
        }
      : undefined,
    entry: buildConnectorEntry(plan),
    ml: options.withMlResource
      ? {
          destinationPath: parameters.MLModelDestinationPath!,
          ownerSetting: options.mlResourceOwner,
          resourceId: parameters.MLModelResourceId!,
          sagemakerJobArn: parameters.MLModelSageMakerJobArn!,
        }
      : undefined,
    warn: options.warn,
  }
}

/** The result of the sent steps. */
function resultOf(r: CreateRequests, a: CreateAnswers): CreateConnectorResult {
  const created = a.created!
  const result: CreateConnectorResult = {
    connectorArn: r.entry.ConnectorArn,
    connectorId: r.entry.Id,
    definitionArn: created.arn,
    definitionId: created.definitionId,
    keptConnectors: a.otherConnectors.map((c) => c.Id),
    latestVersion: created.latestVersion,
    latestVersionArn: created.latestVersionArn,
    operation: r.create.operation,
    serviceName: r.entry.Parameters.LocalInferenceServiceName,
    warnings: a.warnings,
  }
  if (r.ml) {
    result.mlResource = a.mlResource
    // Deploying replaces the group's resource definition version: its other resources were kept in the new one.
    if (r.deploy) result.keptResources = a.groupResources.map((x) => x.Id ?? '').filter((x) => x !== r.ml!.resourceId)
  }

  if (a.deployment) result.deployment = a.deployment
  return result
}

/**
 * Validate, plan and (unless dryRun) send the steps: the reads that can refuse the call first (definition,
 * group), then the connector definition, ML resource and deployment.
 */
export async function createConnector(
  options: CreateConnectorOptions,
): Promise<CreateConnectorPlan | CreateConnectorResult> {
  usageChecks(options)
  const params = await gatherParameters(options)
  const {client, region} = await greengrassClient(options)
  try {
    const requests = decide(options, params, region)
    const steps = createSteps(requests)
    if (options.dryRun) return {requests: planSteps(steps, createPlaceholders(requests))}
    return resultOf(requests, await runSteps(client, steps, emptyCreateAnswers()))
  } finally {
    client.destroy()
  }
}
