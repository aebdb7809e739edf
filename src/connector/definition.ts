/**
 * Connector definitions: the documents Greengrass V1 keeps connectors in, and the requests that create them.
 *
 * - {@link parseDefinitionVersion} checks a whole connector-definition version (`{"Connectors":[...]}`, the JSON
 *   that `aws greengrass create-connector-definition --initial-version` takes; also accepted wrapped as
 *   `InitialVersion` or `Definition`): its structure against `schemas/connector-definition-version.schema.json`,
 *   each Image Classification connector's Parameters against that connector version's schema, and what a schema
 *   cannot say (the documentation's literal `region` in an ARN, duplicate Ids or service names, an Image
 *   Classification connector version that does not exist). Every problem is reported at once.
 * - {@link buildConnectorEntry} / {@link planCreateConnector} build the exact CreateConnectorDefinition (or
 *   CreateConnectorDefinitionVersion) request `icc create-connector` sends, so that `--dry-run` prints what would
 *   go on the wire.
 */
import type {ErrorObject} from 'ajv'

import type {PlannedRequest} from '../aws/greengrass.js'

import {clientToken} from '../aws/clients.js'
import {ValidationError, type ValidationProblem} from '../errors.js'
import {
  connectorArn,
  type ConnectorInfo,
  CONNECTORS,
  type ConnectorVersion,
  PARAMETER_NAMES,
  parseConnectorArn,
  type PlatformId,
} from './catalog.js'
import {type ConnectorParameters, definitionValidator, parameterProblems} from './parameters.js'

export interface ConnectorEntry {
  ConnectorArn: string
  /** icc serve only: the service's labels file (refused elsewhere: Greengrass does not know it). */
  IccLabels?: string
  Id: string
  Parameters: Record<string, string>
}

export interface DefinitionVersion {
  Connectors: ConnectorEntry[]
}

/** An Image Classification connector found in a definition version. */
export interface ImageClassificationEntry {
  connector: ConnectorInfo
  entry: ConnectorEntry
  /** Position in `Connectors`. */
  index: number
  parameters: ConnectorParameters
  version: ConnectorVersion
}

export interface ParsedDefinition {
  /** Every Image Classification connector, in order. */
  imageClassification: ImageClassificationEntry[]
  /** How many other connectors the version holds (passed through untouched). */
  otherConnectors: number
  version: DefinitionVersion
}

const IC_NAME = /\/connectors\/(ImageClassification[A-Za-z0-9_.-]*)\/versions\/(\d+)$/

/** Unwrap `{"InitialVersion": {...}}` or `{"Definition": {...}}` to the version document. */
export function unwrapDefinition(doc: unknown): unknown {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return doc
  const root = doc as Record<string, unknown>
  if (!('Connectors' in root)) {
    if (typeof root.InitialVersion === 'object') return root.InitialVersion
    if (typeof root.Definition === 'object') return root.Definition
  }

  return doc
}

/** Does this JSON look like a definition version (as opposed to a bare Parameters object)? */
export function looksLikeDefinition(doc: unknown): boolean {
  const inner = unwrapDefinition(doc)
  return typeof inner === 'object' && inner !== null && 'Connectors' in inner
}

/** Structural problems (ajv on the definition schema), minus the parameter errors we report ourselves. */
function structureProblems(errors: ErrorObject[]): ValidationProblem[] {
  const out: ValidationProblem[] = []
  for (const error of errors) {
    // Errors inside an Image Classification connector's Parameters come again, in words, from parameterProblems.
    if (/^\/Connectors\/\d+\/Parameters(\/|$)/.test(error.instancePath)) {
      if (error.keyword === 'type' && /\/Parameters\/[^/]+$/.test(error.instancePath)) {
        // A non-string value in another connector's Parameters.
        out.push({
          message: `${error.instancePath.split('/').pop()} must be a string (connector parameters are strings).`,
          path: error.instancePath,
          suggestion: 'Quote the value.',
        })
      }

      continue
    }

    if (error.keyword === 'if' || error.keyword === '$ref') continue
    const path = error.instancePath || '/'
    switch (error.keyword) {
      case 'additionalProperties': {
        const extra = (error.params as {additionalProperty: string}).additionalProperty
        out.push({
          message: `Unknown field "${extra}".`,
          path: `${error.instancePath}/${extra}`,
          suggestion:
            error.instancePath === ''
              ? 'A definition version has only "Connectors".'
              : 'A connector has only "Id", "ConnectorArn" and "Parameters".',
        })
        break
      }

      case 'required': {
        const missing = (error.params as {missingProperty: string}).missingProperty
        const hint: Record<string, string> = {
          ConnectorArn: 'e.g. arn:aws:greengrass:us-west-2::/connectors/ImageClassificationARMv7/versions/1',
          Connectors: 'e.g. {"Connectors": [{"Id": ..., "ConnectorArn": ..., "Parameters": {...}}]}',
          Id: 'a unique id of your choice, e.g. "MyImageClassificationConnector"',
          Parameters: 'the connector parameters, e.g. from `icc create-connector --dry-run`',
        }
        out.push({
          message: `${missing} is required.`,
          path: `${error.instancePath}/${missing}`,
          suggestion: hint[missing],
        })
        break
      }

      case 'pattern': {
        const field = error.instancePath.split('/').pop()
        out.push({
          message:
            field === 'Id'
              ? 'Id may hold only letters, digits, ":", "_" and "-".'
              : `${field} is not a Greengrass connector ARN.`,
          path,
          suggestion:
            field === 'ConnectorArn'
              ? 'Connector ARNs look like arn:aws:greengrass:<region>::/connectors/<Name>/versions/<n> (see `icc list-connectors`).'
              : undefined,
        })
        break
      }

      default: {
        out.push({message: `${path === '/' ? 'The document' : path.split('/').pop()} ${error.message}.`, path})
      }
    }
  }

  return out
}

/** What checking a definition version has gathered so far, connector by connector. */
interface DefinitionScan {
  allowIccFields: boolean
  allowRegionPlaceholder: boolean
  ids: Map<string, number>
  imageClassification: ImageClassificationEntry[]
  otherConnectors: number
  problems: ValidationProblem[]
  services: Map<string, number>
}

/** A value used twice (Ids, service names): the problem, or undefined (and the value remembered) the first time. */
function firstUse(seen: Map<string, number>, value: string, index: number): number | undefined {
  const first = seen.get(value)
  if (first === undefined) seen.set(value, index)
  return first
}

/**
 * Check a definition version document. Returns the parsed document and every problem found (empty: valid); use
 * {@link parseDefinitionVersion} to throw instead.
 */
export function checkDefinitionVersion(
  doc: unknown,
  options: {
    /** Accept the documentation's literal `region` in ARNs (for local use: `icc serve`). */
    allowRegionPlaceholder?: boolean
    /** Accept icc serve's own `IccLabels` field (for `icc serve`; Greengrass refuses unknown fields). */
    allowIccFields?: boolean
  } = {},
): {parsed?: ParsedDefinition; problems: ValidationProblem[]} {
  const version = unwrapDefinition(doc)
  const validate = definitionValidator()
  const problems: ValidationProblem[] = []
  if (!validate(version)) problems.push(...structureProblems(validate.errors ?? []))
  const connectors = (version as {Connectors?: unknown})?.Connectors
  if (!Array.isArray(connectors)) return {problems}

  const scan: DefinitionScan = {
    allowIccFields: options.allowIccFields ?? false,
    allowRegionPlaceholder: options.allowRegionPlaceholder ?? false,
    ids: new Map(),
    imageClassification: [],
    otherConnectors: 0,
    problems,
    services: new Map(),
  }
  for (const [index, raw] of connectors.entries()) {
    if (typeof raw === 'object' && raw !== null) scanConnector(scan, raw as Partial<ConnectorEntry>, index)
  }

  const {imageClassification, otherConnectors} = scan
  return {parsed: {imageClassification, otherConnectors, version: version as DefinitionVersion}, problems}
}

/** Check one connector of a definition version: its Id, and for an Image Classification one its ARN and Parameters. */
function scanConnector(scan: DefinitionScan, entry: Partial<ConnectorEntry>, index: number): void {
  const {problems} = scan
  const at = `/Connectors/${index}`
  const firstId = typeof entry.Id === 'string' ? firstUse(scan.ids, entry.Id, index) : undefined
  if (firstId !== undefined) {
    problems.push({
      message: `Id "${entry.Id}" is already used by /Connectors/${firstId}.`,
      path: `${at}/Id`,
      suggestion: 'Give every connector its own Id.',
    })
  }

  if (entry.IccLabels !== undefined && !scan.allowIccFields) {
    problems.push({
      message: 'IccLabels is read by `icc serve` only; Greengrass refuses a connector with fields it does not know.',
      path: `${at}/IccLabels`,
      suggestion:
        'Remove IccLabels from the definition you deploy (keep it in the one given to icc serve --definition).',
    })
  }

  if (typeof entry.ConnectorArn !== 'string') return
  const named = IC_NAME.exec(entry.ConnectorArn)
  if (!named) {
    scan.otherConnectors++
    return
  }

  if (!scan.allowRegionPlaceholder && /:greengrass:region::/.test(entry.ConnectorArn)) {
    problems.push({
      message: 'The ConnectorArn has the placeholder "region" where the AWS region belongs.',
      path: `${at}/ConnectorArn`,
      suggestion: `Use your group's region, e.g. ${entry.ConnectorArn.replace(':greengrass:region::', ':greengrass:us-west-2::')}`,
    })
  }

  const parsed = parseConnectorArn(entry.ConnectorArn.replace(':greengrass:region::', ':greengrass:us-west-2::'))
  const known = CONNECTORS.find((c) => c.name === named[1])
  if (!parsed) {
    problems.push({
      message: known
        ? `${known.displayName} has no version ${named[2]}.`
        : `There is no Image Classification connector named ${named[1]}.`,
      path: `${at}/ConnectorArn`,
      suggestion: known
        ? `Use version ${known.versions.join(' or ')}.`
        : `The connectors are ${CONNECTORS.map((c) => c.name).join(', ')} (see \`icc list-connectors\`).`,
    })
    if (!known) return
  }

  // a known connector of an unknown version: its parameters are still checked (against its latest version), so
  // that every problem of the file is reported at once. Missing Parameters are reported by the schema.
  const target = parsed ?? {connector: known!, version: known!.versions.at(-1)!}
  if (entry.Parameters !== undefined) problems.push(...parameterProblems(entry.Parameters, target, `${at}/Parameters`))
  const service = (entry.Parameters as Record<string, unknown> | undefined)?.LocalInferenceServiceName
  const firstService = typeof service === 'string' ? firstUse(scan.services, service, index) : undefined
  if (firstService !== undefined) {
    problems.push({
      message: `LocalInferenceServiceName "${service}" is already used by /Connectors/${firstService}; Lambda functions could not tell the two services apart.`,
      path: `${at}/Parameters/LocalInferenceServiceName`,
      suggestion: 'Give every Image Classification connector its own service name.',
    })
  }

  if (!parsed) return
  scan.imageClassification.push({
    connector: parsed.connector,
    entry: entry as ConnectorEntry,
    index,
    parameters: (entry.Parameters ?? {}) as ConnectorParameters,
    version: parsed.version,
  })
}

/** Check a definition version document; throws a ValidationError (exit 2) listing every problem. */
export function parseDefinitionVersion(doc: unknown, source = 'The connector definition'): ParsedDefinition {
  const {parsed, problems} = checkDefinitionVersion(doc)
  if (problems.length > 0 || !parsed) {
    throw new ValidationError(
      `${source} ${problems.length === 1 ? 'has a problem' : `has ${problems.length} problems`}`,
      problems.length > 0 ? problems : [{message: 'expected {"Connectors": [...]}', path: '/'}],
    )
  }

  return parsed
}

export interface ConnectorTarget {
  connector: ConnectorInfo
  /** The region put in the ARN. */
  region: string
  version: ConnectorVersion
}

/** Resolve `--platform` / `--connector-arn` / `--connector-version` to a connector. */
export function resolveConnector(options: {
  connectorArn?: string
  connectorVersion?: number
  platform?: PlatformId
  region?: string
}): ConnectorTarget {
  if (options.connectorArn) {
    const parsed = parseConnectorArn(options.connectorArn)
    if (!parsed) {
      throw new ValidationError('The connector ARN is not an Image Classification connector.', [
        {
          message: `${options.connectorArn} is not one of the Image Classification connector ARNs.`,
          path: '--connector-arn',
          suggestion: 'Run `icc list-connectors` for the ARNs, or pass --platform x86_64|armv7|jtx2 instead.',
        },
      ])
    }

    if (parsed.region === 'region' || parsed.region === '') {
      throw new ValidationError('The connector ARN has no real region.', [
        {
          message: `The ARN has "${parsed.region}" where the AWS region belongs.`,
          path: '--connector-arn',
          suggestion: `Use your group's region, e.g. ${connectorArn(parsed.connector, parsed.version, 'us-west-2')}`,
        },
      ])
    }

    return parsed
  }

  const connector = CONNECTORS.find((c) => c.platform === options.platform)
  if (!connector) {
    throw new ValidationError('No connector chosen.', [
      {
        message: 'Say which Image Classification connector to create.',
        path: '--platform',
        suggestion: 'Pass --platform x86_64, --platform armv7 or --platform jtx2 (or --connector-arn ARN).',
      },
    ])
  }

  const version = (options.connectorVersion ?? 1) as ConnectorVersion
  if (!connector.versions.includes(version)) {
    throw new ValidationError('Unknown connector version.', [
      {
        message: `${connector.displayName} has no version ${version}.`,
        path: '--connector-version',
        suggestion: `Use ${connector.versions.join(' or ')}.`,
      },
    ])
  }

  if (!options.region) {
    throw new ValidationError('No AWS region.', [
      {
        message: 'The connector ARN needs the region of your Greengrass group.',
        path: '--region',
        suggestion: 'Pass --region (or set AWS_REGION, or a region in your AWS profile).',
      },
    ])
  }

  return {connector, region: options.region, version}
}

/** Parameters in the documentation's order (the catalog's; the order the seed's CLI examples send them in). */
export function orderParameters(params: ConnectorParameters): Record<string, string> {
  const out: Record<string, string> = {}
  for (const key of PARAMETER_NAMES) if (params[key] !== undefined) out[key] = params[key]!
  return out
}

export interface PlanCreateConnectorOptions {
  /** Add a version to this existing definition (CreateConnectorDefinitionVersion) instead of creating one. */
  definitionId?: string
  /** The connector's Id within the definition version. */
  id: string
  /** Name of a new connector definition. */
  name?: string
  parameters: ConnectorParameters
  target: ConnectorTarget
}

/** The request that creates the connector: a new definition, or a new version of an existing one. */
export type PlannedCreate = Extract<
  PlannedRequest,
  {operation: 'CreateConnectorDefinition' | 'CreateConnectorDefinitionVersion'}
>

/** The one connector entry of the definition version. */
export function buildConnectorEntry(options: PlanCreateConnectorOptions): ConnectorEntry {
  return {
    Id: options.id,
    ConnectorArn: connectorArn(options.target.connector, options.target.version, options.target.region),
    Parameters: orderParameters(options.parameters),
  }
}

/** The request `create-connector` sends (what `--dry-run` prints). */
export function planCreateConnector(options: PlanCreateConnectorOptions): PlannedCreate {
  const connectors = [buildConnectorEntry(options)]
  if (options.definitionId) {
    return {
      input: {ConnectorDefinitionId: options.definitionId, Connectors: connectors},
      operation: 'CreateConnectorDefinitionVersion',
    }
  }

  const input = {...(options.name ? {Name: options.name} : {}), InitialVersion: {Connectors: connectors}}
  // sent as the X-Amzn-Client-Token header (the JSON body stays the documentation's): the same request twice
  // creates one definition
  return {
    input: {...input, AmznClientToken: clientToken('CreateConnectorDefinition', input)},
    operation: 'CreateConnectorDefinition',
  }
}
