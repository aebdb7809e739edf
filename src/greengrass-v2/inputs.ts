/**
 * The connector parameters a Greengrass V2 component (or a systemd unit) is exported from: the same inputs as
 * `icc create-connector` (a Parameters file, one option per parameter, options winning) or a whole
 * connector-definition version (one entry per Image Classification connector), checked by the same schemas
 * (src/connector) with the same messages, so a file `create-connector` rejects is rejected here word for word.
 */
import {type ParameterName, type PlatformId} from '../connector/catalog.js'
import {checkParameters} from '../connector/create.js'
import {checkDefinitionVersion} from '../connector/definition.js'
import {parametersOf, readJsonFile} from '../connector/files.js'
import {type ConnectorParameters, inferTarget, type ParameterTarget} from '../connector/parameters.js'
import {UsageError, ValidationError} from '../errors.js'

export interface ConnectorInputOptions {
  connectorVersion?: number
  /** A connector-definition version file: every Image Classification connector in it. */
  definitionFile?: string
  /** Parameters given one by one (they win over the file). */
  parameters?: ConnectorParameters
  parametersFile?: string
  /** Which connector's schema applies (default: inferred, as `icc serve --parameters` does). */
  platform?: PlatformId
}

export interface ConnectorInput {
  parameters: ConnectorParameters
  target: ParameterTarget
}

function givenOptions(parameters: ConnectorParameters | undefined): [ParameterName, string][] {
  return (Object.entries(parameters ?? {}) as [ParameterName, string | undefined][]).filter(
    (e): e is [ParameterName, string] => e[1] !== undefined,
  )
}

async function fromDefinition(options: ConnectorInputOptions): Promise<ConnectorInput[]> {
  const path = options.definitionFile!
  if (options.parametersFile || givenOptions(options.parameters).length > 0) {
    throw new UsageError(
      'CONFLICTING_FLAGS',
      '--definition gives every connector its own parameters; do not combine it with --parameters or parameter options.',
    )
  }

  const doc = await readJsonFile(path, 'connector definition')
  const {parsed, problems} = checkDefinitionVersion(doc, {allowRegionPlaceholder: true})
  if (problems.length > 0) throw new ValidationError(`Invalid connector definition ${path}.`, problems)
  const found = parsed?.imageClassification ?? []
  if (found.length === 0) {
    throw new ValidationError(`The definition file ${path} holds no Image Classification connector.`, [
      {
        message: 'no connector has an Image Classification ConnectorArn',
        path: '/Connectors',
        suggestion: 'run `icc list-connectors` to see the ARNs',
      },
    ])
  }

  return found.map((c) => ({parameters: c.parameters, target: {connector: c.connector, version: c.version}}))
}

/** Read and validate the inputs; throws the same ValidationError as `create-connector` for bad parameters. */
export async function readConnectorInputs(options: ConnectorInputOptions): Promise<ConnectorInput[]> {
  if (options.definitionFile) return fromDefinition(options)
  const merged: Record<string, unknown> = options.parametersFile
    ? {...parametersOf(await readJsonFile(options.parametersFile, 'parameters'), options.parametersFile)}
    : {}
  const given = givenOptions(options.parameters)
  for (const [key, value] of given) merged[key] = value
  const target = inferTarget(merged, {platform: options.platform, version: options.connectorVersion})
  checkParameters(merged, target, options)
  return [{parameters: merged as ConnectorParameters, target}]
}
