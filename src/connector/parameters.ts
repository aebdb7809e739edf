/**
 * Connector parameters: validation against the JSON Schemas shipped in `schemas/` (one per connector and version,
 * plus one for a whole connector-definition version), with errors a user can act on.
 *
 * ajv (all errors at once) is the judge; this module only turns its findings into {@link ValidationProblem}s that
 * say which field, what was wrong and what would be right, with the cases users hit most spelled out: the
 * documentation's own example job ARN (`training-job:Name`, where the pattern demands `training-job/Name`),
 * GPUAcceleration on a connector other than the Jetson TX2 one, numbers given as JSON numbers instead of strings,
 * service names of the wrong length, misspelt parameter names.
 */
import {Ajv, type ErrorObject, type ValidateFunction} from 'ajv'
import {readdirSync, readFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {ValidationError, type ValidationProblem} from '../errors.js'
import {
  connectorForPlatform,
  type ConnectorInfo,
  CONNECTORS,
  type ConnectorVersion,
  PARAMETER_NAMES,
  type ParameterName,
  parametersFor,
  type PlatformId,
} from './catalog.js'

/** The `schemas/` folder of the package (dist/src/connector -> the package root). */
export const SCHEMA_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'schemas')

/** The Parameters object of a connector: every value a string. */
export type ConnectorParameters = Partial<Record<ParameterName, string>>

export const DEFINITION_SCHEMA_FILE = 'connector-definition-version.schema.json'

/** The file name of the Parameters schema of a connector version. */
export function parametersSchemaFile(connector: ConnectorInfo, version: ConnectorVersion): string {
  return join('parameters', `${connector.name}-v${version}.schema.json`)
}

let cached: undefined | {ajv: Ajv; definition: ValidateFunction; parameters: Map<string, ValidateFunction>}

function compiled(): NonNullable<typeof cached> {
  if (cached) return cached
  const ajv = new Ajv({allErrors: true, strict: true})
  const parameters = new Map<string, ValidateFunction>()
  // every file once (the definition schema refers to them all by $id), then each catalog version by its file
  const ids = new Map<string, string>()
  for (const file of readdirSync(join(SCHEMA_DIR, 'parameters'))) {
    const schema = JSON.parse(readFileSync(join(SCHEMA_DIR, 'parameters', file), 'utf8')) as {$id: string}
    ajv.addSchema(schema)
    ids.set(join('parameters', file), schema.$id)
  }

  for (const connector of CONNECTORS) {
    for (const version of connector.versions) {
      const id = ids.get(parametersSchemaFile(connector, version))
      const validate = id === undefined ? undefined : ajv.getSchema(id)
      if (!validate) throw new Error(`schemas/${parametersSchemaFile(connector, version)} is missing from this install`)
      parameters.set(`${connector.name}/${version}`, validate)
    }
  }

  const definition = ajv.compile(JSON.parse(readFileSync(join(SCHEMA_DIR, DEFINITION_SCHEMA_FILE), 'utf8')))
  cached = {ajv, definition, parameters}
  return cached
}

/** The compiled schema of a whole connector-definition version. */
export function definitionValidator(): ValidateFunction {
  return compiled().definition
}

const JOB_ARN_EXAMPLE = 'arn:aws:sagemaker:us-west-2:123456789012:training-job/MyImageClassifier'

/** What a parameter must look like, in words (for messages). */
const EXPECTED: Record<ParameterName, string> = {
  GPUAcceleration: '"CPU" or "GPU"',
  LocalInferenceServiceMemoryLimitKB: 'a whole number of KB of at least 1, as a string (e.g. "500000")',
  LocalInferenceServiceName:
    '2 to 63 characters: letters, digits and hyphens, starting with a letter or digit (e.g. "imageClassification")',
  LocalInferenceServiceTimeoutSeconds: 'a whole number of seconds of at least 1, as a string (e.g. "10")',
  MLFeedbackConnectorConfigId:
    'empty, or 2 to 63 characters: letters, digits and hyphens, starting with a letter or digit',
  MLModelDestinationPath: 'a non-empty path on one line (the ML resource destination path, e.g. "/ml/model")',
  MLModelResourceId: 'letters, digits, ":", "_" and "-" only (e.g. "my-ml-resource")',
  MLModelSageMakerJobArn: `arn:aws:sagemaker:<region>:<account>:training-job/<job name> (e.g. ${JOB_ARN_EXAMPLE})`,
}

/** Levenshtein distance, for "did you mean" on misspelt parameter names. */
function distance(a: string, b: string): number {
  const d = Array.from({length: b.length + 1}, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let previous = d[0]
    d[0] = i
    for (let j = 1; j <= b.length; j++) {
      const keep = d[j]
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1))
      previous = keep
    }
  }

  return d[b.length]
}

function closestName(name: string): ParameterName | undefined {
  let best: ParameterName | undefined
  let bestDistance = Number.POSITIVE_INFINITY
  for (const known of PARAMETER_NAMES) {
    const dist = known.toLowerCase() === name.toLowerCase() ? 0 : distance(known, name)
    if (dist < bestDistance) [best, bestDistance] = [known, dist]
  }

  return bestDistance <= Math.max(2, Math.floor(name.length / 6)) ? best : undefined
}

/** The fix for a job ARN that fails the pattern, when one can be guessed. */
export function suggestJobArn(value: string): string | undefined {
  const fixed = value.trim().replace(/:training-job:/, ':training-job/')
  return fixed !== value &&
    /^arn:aws:sagemaker:[a-zA-Z0-9-]+:[0-9]+:training-job\/[a-zA-Z0-9][a-zA-Z0-9-]+$/.test(fixed)
    ? fixed
    : undefined
}

function describeValue(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value)
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}

/** A parameter the connector version does not have: the connector or version it belongs to, or a close name. */
function unknownParameterProblem(
  extra: string,
  where: string,
  connector: ConnectorInfo,
  version: ConnectorVersion,
): ValidationProblem {
  if (extra === 'GPUAcceleration') {
    return {
      message: `GPUAcceleration applies only to the Image Classification Aarch64 JTX2 connector, not to ${connector.displayName}.`,
      path: where,
      suggestion: 'Remove GPUAcceleration, or use the JTX2 connector (--platform jtx2) on a Jetson TX2.',
    }
  }

  if (extra === 'MLFeedbackConnectorConfigId') {
    return {
      message: `MLFeedbackConnectorConfigId exists only in version 2 of the connector; this is version ${version}.`,
      path: where,
      suggestion: 'Remove it, or use the version 2 connector ARN (--connector-version 2).',
    }
  }

  const close = closestName(extra)
  return {
    message: `Unknown parameter "${extra}".`,
    path: where,
    suggestion: close
      ? `Did you mean "${close}"?`
      : `The parameters of this connector are: ${parametersFor(connector, version)
          .map((p) => p.name)
          .join(', ')}.`,
  }
}

/** The fix for a value that does not match its parameter's pattern, when one can be said. */
function patternSuggestion(field: ParameterName, text: string): string | undefined {
  const numeric = field === 'LocalInferenceServiceTimeoutSeconds' || field === 'LocalInferenceServiceMemoryLimitKB'
  if (field === 'MLModelSageMakerJobArn') {
    const fixed = suggestJobArn(text)
    return fixed
      ? `Did you mean "${fixed}"? The job name follows "training-job/", not "training-job:" (the AWS documentation's example has this mistake).`
      : `Copy the ARN from the SageMaker console or: aws sagemaker describe-training-job --training-job-name NAME --query TrainingJobArn`
  }

  if (field === 'LocalInferenceServiceName' && /^[a-zA-Z0-9-]*$/.test(text)) {
    if (text.length < 2)
      return `The name has ${text.length} character${text.length === 1 ? '' : 's'}; it needs at least 2.`
    return text.length > 63
      ? `The name has ${text.length} characters; it may have at most 63.`
      : 'It must start with a letter or a digit.'
  }

  if (numeric && /^\s*[0-9]+(\.0*)?\s*$/.test(text) && Number(text) >= 1) {
    return `Use "${Number(text)}" (digits only, no spaces, sign, decimals or leading zeros).`
  }

  return numeric ? 'The minimum is 1.' : undefined
}

/** One ajv error on a Parameters object -> a problem a user can act on. */
function parameterProblem(
  error: ErrorObject,
  params: Record<string, unknown>,
  at: string,
  connector: ConnectorInfo,
  version: ConnectorVersion,
): ValidationProblem | undefined {
  const field = error.instancePath.split('/')[1] as ParameterName | undefined
  const value = field === undefined ? undefined : params[field]
  const path = `${at}${error.instancePath}`
  switch (error.keyword) {
    case 'additionalProperties': {
      const extra = (error.params as {additionalProperty: string}).additionalProperty
      return unknownParameterProblem(extra, `${at}/${extra}`, connector, version)
    }

    case 'required': {
      const missing = (error.params as {missingProperty: ParameterName}).missingProperty
      return {
        message: `${missing} is required.`,
        path: `${at}/${missing}`,
        suggestion: `Set it to ${EXPECTED[missing] ?? 'a value'}.`,
      }
    }

    case 'type': {
      if (field === undefined) {
        return {message: `Parameters must be a JSON object, got ${describeValue(params)}.`, path: at}
      }

      const quoted = typeof value === 'number' || typeof value === 'boolean' ? `"${value}"` : undefined
      return {
        message: `${field} must be a string, got the JSON ${value === null ? 'null' : typeof value} ${describeValue(value)}.`,
        path,
        suggestion: quoted
          ? `Quote it: "${field}": ${quoted} (every connector parameter is a string).`
          : `Set it to ${EXPECTED[field]}.`,
      }
    }

    case 'enum': {
      const upper = typeof value === 'string' ? value.toUpperCase() : ''
      return {
        message: `${field} must be ${EXPECTED[field!]}, got ${describeValue(value)}.`,
        path,
        suggestion: ['CPU', 'GPU'].includes(upper)
          ? `Did you mean "${upper}"? (the values are case-sensitive)`
          : undefined,
      }
    }

    case 'pattern': {
      return {
        message: `${field} must be ${EXPECTED[field!]}, got ${describeValue(value)}.`,
        path,
        suggestion: patternSuggestion(field!, String(value)),
      }
    }

    default: {
      return {message: `${field ?? 'Parameters'} ${error.message ?? 'is invalid'}.`, path}
    }
  }
}

export interface ParameterTarget {
  connector: ConnectorInfo
  version: ConnectorVersion
}

/**
 * Check a Parameters object against the schema of a connector version. Returns every problem (empty: valid);
 * `at` prefixes the paths (e.g. `/Connectors/0/Parameters`).
 */
export function parameterProblems(params: unknown, target: ParameterTarget, at = ''): ValidationProblem[] {
  const validate = compiled().parameters.get(`${target.connector.name}/${target.version}`)!
  if (validate(params)) return []
  const object = (typeof params === 'object' && params !== null ? params : {}) as Record<string, unknown>
  const problems: ValidationProblem[] = []
  const seen = new Set<string>()
  for (const error of validate.errors ?? []) {
    const problem = parameterProblem(error, object, at, target.connector, target.version)
    if (!problem) continue
    const key = `${problem.path}\0${problem.message}`
    if (seen.has(key)) continue
    seen.add(key)
    problems.push(problem)
  }

  return problems
}

/** Validate a Parameters object; throws a ValidationError (exit 2) listing every problem. */
export function validateParameters(
  params: unknown,
  target: ParameterTarget,
  source = 'Parameters',
): ConnectorParameters {
  const problems = parameterProblems(params, target)
  if (problems.length > 0) {
    throw new ValidationError(
      `${source} ${problems.length === 1 ? 'has a problem' : `have ${problems.length} problems`} for ${target.connector.displayName} (version ${target.version})`,
      problems,
    )
  }

  return params as ConnectorParameters
}

/**
 * The connector a bare Parameters object is for, when nothing else says it: GPUAcceleration means the JTX2
 * connector, MLFeedbackConnectorConfigId version 2; otherwise x86_64 (whose parameters are ARMv7's too).
 */
export function inferTarget(
  params: Record<string, unknown>,
  given: {platform?: PlatformId; version?: number} = {},
): ParameterTarget {
  const connector = connectorForPlatform(given.platform ?? ('GPUAcceleration' in params ? 'jtx2' : 'x86_64'))
  const version = (given.version ?? ('MLFeedbackConnectorConfigId' in params ? 2 : 1)) as ConnectorVersion
  return {connector, version}
}

/** The problems of one parameter value on its own (e.g. a command-line option), located at `at`. */
export function fieldProblems(name: ParameterName, value: unknown, at: string): ValidationProblem[] {
  const target = inferTarget({}, {platform: name === 'GPUAcceleration' ? 'jtx2' : 'x86_64', version: 2})
  return parameterProblems({[name]: value}, target)
    .filter((p) => p.path === `/${name}`)
    .map((p) => ({...p, path: at}))
}
