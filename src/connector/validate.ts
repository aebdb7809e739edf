/**
 * `icc validate-connector FILE`: offline validation of a Parameters file or a whole connector-definition version
 * file (told apart by the presence of `Connectors`), reporting every problem at once.
 *
 * A bare Parameters file does not say which connector it is for: `platform` / `connectorVersion` say it, or it is
 * inferred (GPUAcceleration: the JTX2 connector; MLFeedbackConnectorConfigId: version 2; otherwise x86_64, whose
 * parameters are the same as ARMv7's).
 */
import type {ValidationProblem} from '../errors.js'

import {type PlatformId} from './catalog.js'
import {checkDefinitionVersion, looksLikeDefinition} from './definition.js'
import {parametersOf, readJsonFile} from './files.js'
import {inferTarget, parameterProblems} from './parameters.js'

export interface ValidateConnectorOptions {
  connectorVersion?: number
  file: string
  platform?: PlatformId
}

export interface ValidatedConnector {
  /** Path of the connector inside the file ('' for a Parameters file). */
  at: string
  connector: string
  serviceName?: string
  version: number
}

export interface ValidateConnectorResult {
  /** Which connector a Parameters file was checked against, and whether that was inferred. */
  assumed?: string
  connectors: ValidatedConnector[]
  file: string
  kind: 'definition' | 'parameters'
  /** Connectors in a definition that are not Image Classification ones (checked for structure only). */
  otherConnectors: number
  problems: ValidationProblem[]
  valid: boolean
}

export async function validateConnectorFile(options: ValidateConnectorOptions): Promise<ValidateConnectorResult> {
  const doc = await readJsonFile(options.file, 'connector')
  if (looksLikeDefinition(doc)) {
    const {parsed, problems} = checkDefinitionVersion(doc)
    const connectors = (parsed?.imageClassification ?? []).map((c) => ({
      at: `/Connectors/${c.index}`,
      connector: c.connector.name,
      serviceName: c.parameters.LocalInferenceServiceName,
      version: c.version,
    }))
    return {
      connectors,
      file: options.file,
      kind: 'definition',
      otherConnectors: parsed?.otherConnectors ?? 0,
      problems,
      valid: problems.length === 0,
    }
  }

  const params = parametersOf(doc, options.file)
  const {connector, version} = inferTarget(params, {platform: options.platform, version: options.connectorVersion})
  const assumed = options.platform ? undefined : `${connector.displayName} (pass --platform to choose)`
  const problems = connector.versions.includes(version)
    ? parameterProblems(params, {connector, version})
    : [
        {
          message: `${connector.displayName} has no version ${version}.`,
          path: '--connector-version',
          suggestion: `Use ${connector.versions.join(' or ')}.`,
        },
      ]
  return {
    assumed,
    connectors: [
      {
        at: '',
        connector: connector.name,
        serviceName:
          typeof params.LocalInferenceServiceName === 'string' ? params.LocalInferenceServiceName : undefined,
        version,
      },
    ],
    file: options.file,
    kind: 'parameters',
    otherConnectors: 0,
    problems,
    valid: problems.length === 0,
  }
}
