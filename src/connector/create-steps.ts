/**
 * The requests of `icc create-connector`, as one list of typed steps (src/aws/greengrass.ts) that `--dry-run`
 * prints and the executor sends: first every read that can refuse the call (the definition's latest version with
 * `--definition-id`, the group with `--deploy`), then the connector definition (or version), the ML resource,
 * the group version and the deployment. A group that does not exist therefore stops the call before anything is
 * created.
 */
import type {CreateConnectorDefinitionVersionCommandOutput} from '@aws-sdk/client-greengrass'

import type {Step, StepOf} from '../aws/greengrass.js'

import {UsageError, ValidationError} from '../errors.js'
import {checkDefinitionVersion, type ConnectorEntry, type PlannedCreate} from './definition.js'
import {
  type DeployGroupOptions,
  deploySteps,
  emptyGroupAnswers,
  type GroupAnswers,
  groupPlaceholders,
  groupReadSteps,
  type MlResourceOptions,
  mlResourceStep,
} from './group.js'

export interface CreatedConnectorDefinition {
  /** The definition's ARN (only for a new definition). */
  arn?: string
  definitionId: string
  /** The version id. */
  latestVersion?: string
  /** The version ARN: what a group version's ConnectorDefinitionVersionArn needs. */
  latestVersionArn?: string
}

/** Everything create-connector decided before sending anything. */
export interface CreateRequests {
  /** The CreateConnectorDefinition request, or the CreateConnectorDefinitionVersion one with only our entry. */
  create: PlannedCreate
  /** With --deploy: the group to deploy, and how to wait. */
  deploy?: Omit<DeployGroupOptions, 'connectorDefinitionVersionArn' | 'resourceDefinitionVersionArn'>
  entry: ConnectorEntry
  /** With --with-ml-resource. */
  ml?: MlResourceOptions
  /** Called with each warning when it arises. */
  warn?: (warning: string) => void
}

/** What create-connector learns from the answers, beside what the group steps learn. */
export interface CreateAnswers extends GroupAnswers {
  created?: CreatedConnectorDefinition
  definitionLatestVersion?: string
  /** The other connectors of the definition's latest version, kept in the new version. */
  otherConnectors: ConnectorEntry[]
  warnings: string[]
}

/** The steps, in the order they are sent. */
export function createSteps(r: CreateRequests): Step<CreateAnswers>[] {
  const {create} = r
  return [
    ...(create.operation === 'CreateConnectorDefinitionVersion'
      ? definitionReadSteps(create.input.ConnectorDefinitionId!, r.entry)
      : []),
    ...(r.deploy ? groupReadSteps<CreateAnswers>(r.deploy.groupId, Boolean(r.ml)) : []),
    create.operation === 'CreateConnectorDefinition' ? newDefinitionStep(r, create) : newVersionStep(r, create),
    ...(r.ml ? [mlResourceStep<CreateAnswers>(r.ml, Boolean(r.deploy))] : []),
    ...(r.deploy ? deploySteps<CreateAnswers>(r.deploy) : []),
  ]
}

/** Answers before anything is read (the executor's starting point). */
export function emptyCreateAnswers(): CreateAnswers {
  return {...emptyGroupAnswers(), otherConnectors: [], warnings: []}
}

/** The dry run's stand-ins for what the answers will say. */
export function createPlaceholders(r: CreateRequests): CreateAnswers {
  const op = r.create.operation
  const versionArn = `<from ${op}: ${op === 'CreateConnectorDefinition' ? 'LatestVersionArn' : 'Arn'}>`
  const resourceArn = '<from CreateResourceDefinition: LatestVersionArn>'
  return {
    ...groupPlaceholders(),
    connectorDefinitionVersionArn: versionArn,
    created: {definitionId: `<from ${op}: Id>`, latestVersionArn: versionArn},
    definitionLatestVersion: '<from GetConnectorDefinition: LatestVersion>',
    otherConnectors: [],
    ...(r.ml ? {mlResource: {latestVersionArn: resourceArn}, resourceDefinitionVersionArn: resourceArn} : {}),
    warnings: [],
  }
}

/** GetConnectorDefinition, GetConnectorDefinitionVersion: the connectors kept; an Id clash stops the call. */
function definitionReadSteps(definitionId: string, entry: ConnectorEntry): Step<CreateAnswers>[] {
  return [
    {
      input: () => ({ConnectorDefinitionId: definitionId}),
      keep(out, a) {
        a.definitionLatestVersion = out.LatestVersion
      },
      operation: 'GetConnectorDefinition',
    },
    {
      input: (a) => ({ConnectorDefinitionId: definitionId, ConnectorDefinitionVersionId: a.definitionLatestVersion}),
      keep(out, a) {
        const existing = (out.Definition?.Connectors ?? []).map((c) => ({
          ConnectorArn: c.ConnectorArn ?? '',
          Id: c.Id ?? '',
          Parameters: {...c.Parameters},
        }))
        a.otherConnectors = existing.filter((c) => c.Id !== entry.Id)
        checkMerged(definitionId, a, entry)
      },
      operation: 'GetConnectorDefinitionVersion',
      skip: (a) => !a.definitionLatestVersion,
    },
  ]
}

/** The merged version must stay valid (e.g. no service name used twice). */
function checkMerged(definitionId: string, a: CreateAnswers, entry: ConnectorEntry): void {
  const check = checkDefinitionVersion({Connectors: [...a.otherConnectors, entry]})
  const clashes = check.problems.filter((p) => /already used/.test(p.message))
  if (clashes.length === 0) return
  throw new ValidationError(
    `The new version of ${definitionId} would be invalid (its latest version ${a.definitionLatestVersion ?? '-'} is merged in)`,
    clashes,
  )
}

function newDefinitionStep(
  r: CreateRequests,
  create: Extract<PlannedCreate, {operation: 'CreateConnectorDefinition'}>,
): StepOf<'CreateConnectorDefinition', CreateAnswers> {
  return {
    input: () => create.input,
    keep(out, a) {
      created(r, a, {
        arn: out.Arn,
        definitionId: out.Id ?? '',
        latestVersion: out.LatestVersion,
        latestVersionArn: out.LatestVersionArn,
      })
    },
    operation: 'CreateConnectorDefinition',
  }
}

function newVersionStep(
  r: CreateRequests,
  create: Extract<PlannedCreate, {operation: 'CreateConnectorDefinitionVersion'}>,
): StepOf<'CreateConnectorDefinitionVersion', CreateAnswers> {
  return {
    input: (a) => ({...create.input, Connectors: [...a.otherConnectors, r.entry]}),
    keep(out: CreateConnectorDefinitionVersionCommandOutput, a) {
      created(r, a, {
        definitionId: out.Id ?? create.input.ConnectorDefinitionId!,
        latestVersion: out.Version,
        latestVersionArn: out.Arn,
      })
    },
    note: 'Connectors also holds the other connectors of the latest version (GetConnectorDefinitionVersion), unchanged, before this one.',
    operation: 'CreateConnectorDefinitionVersion',
  }
}

/** Record the created definition; with --deploy, its version is what the group gets (warned about first). */
function created(r: CreateRequests, a: CreateAnswers, definition: CreatedConnectorDefinition): void {
  a.created = definition
  if (!r.deploy) return
  if (!definition.latestVersionArn) {
    throw new UsageError('NO_VERSION_ARN', 'Greengrass returned no connector definition version ARN to deploy.')
  }

  a.connectorDefinitionVersionArn = definition.latestVersionArn
  const warning =
    `The group's connector definition version is replaced by ${definition.latestVersionArn}` +
    `${r.create.operation === 'CreateConnectorDefinition' ? ' (a new definition)' : ''}: connectors of other definitions leave the group.`
  a.warnings.push(warning)
  r.warn?.(warning)
}
