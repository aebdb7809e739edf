/**
 * Service configuration for `icc serve`: turns flags, a connector Parameters file, or a whole connector
 * definition version into a list of services (one runner each).
 *
 * The names are the connector's: MLModelDestinationPath -> model path, LocalInferenceServiceName -> service name,
 * LocalInferenceServiceTimeoutSeconds, LocalInferenceServiceMemoryLimitKB, GPUAcceleration.
 *
 * Validation is the connector's own: Parameters files and definition versions go through the JSON Schemas in
 * `schemas/` (src/connector), so `icc serve` reports the same errors as `create-connector` and
 * `validate-connector`. A definition may keep the documentation's literal `region` in its ARNs here: nothing is
 * sent to AWS.
 */
import {isAbsolute, resolve} from 'node:path'

import {checkDefinitionVersion} from '../connector/definition.js'
import {parametersOf, readJsonFile} from '../connector/files.js'
import {fieldProblems, inferTarget, parameterProblems} from '../connector/parameters.js'
import {UsageError, ValidationError, type ValidationProblem} from '../errors.js'

export interface ServiceConfig {
  /** Run on the CPU with a warning when GPU was asked but the CUDA provider cannot be loaded. */
  allowCpuFallback: boolean
  gpu: boolean
  /** The service's labels file (`IccLabels` of its connector in a definition); else `--labels`, if given. */
  labelsFile?: string
  memoryLimitKb: number
  /** MLModelDestinationPath; undefined: the bundled default model. */
  modelPath?: string
  name: string
  timeoutSeconds: number
}

export interface ServiceFlags {
  allowCpuFallback?: boolean
  definition?: string
  gpuAcceleration?: string
  memoryLimitKb?: number
  model?: string
  parameters?: string
  serviceName?: string
  timeoutSeconds?: number
}

export const DEFAULT_SERVICE_NAME = 'imageClassification'
export const DEFAULT_TIMEOUT_SECONDS = 10
export const DEFAULT_MEMORY_LIMIT_KB = 500_000

type Params = Record<string, unknown>

function fromParams(params: Params, base: ServiceFlags, labelsFile?: string): ServiceConfig {
  const s = (k: string) => params[k] as string | undefined
  return {
    allowCpuFallback: Boolean(base.allowCpuFallback),
    gpu: (base.gpuAcceleration ?? s('GPUAcceleration') ?? 'CPU') === 'GPU',
    labelsFile: labelsFile === undefined ? undefined : resolve(labelsFile),
    memoryLimitKb: base.memoryLimitKb ?? Number(s('LocalInferenceServiceMemoryLimitKB') ?? DEFAULT_MEMORY_LIMIT_KB),
    modelPath: base.model ?? s('MLModelDestinationPath'),
    name: base.serviceName ?? s('LocalInferenceServiceName') ?? DEFAULT_SERVICE_NAME,
    timeoutSeconds: base.timeoutSeconds ?? Number(s('LocalInferenceServiceTimeoutSeconds') ?? DEFAULT_TIMEOUT_SECONDS),
  }
}

/** Build the services to run from the command's flags. */
export async function buildServiceConfigs(flags: ServiceFlags): Promise<ServiceConfig[]> {
  const problems: ValidationProblem[] = []
  if (flags.definition && flags.parameters) {
    throw new UsageError('CONFLICTING_FLAGS', 'Use either --definition or --parameters, not both.')
  }

  if (flags.serviceName !== undefined)
    problems.push(...fieldProblems('LocalInferenceServiceName', flags.serviceName, '--service-name'))
  if (flags.gpuAcceleration !== undefined)
    problems.push(...fieldProblems('GPUAcceleration', flags.gpuAcceleration, '--gpu-acceleration'))
  for (const [flag, v] of [
    ['--timeout-seconds', flags.timeoutSeconds],
    ['--memory-limit-kb', flags.memoryLimitKb],
  ] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 1))
      problems.push({message: `must be an integer >= 1, got ${v}`, path: flag})
  }

  if (problems.length > 0) throw new ValidationError('Invalid icc serve flags.', problems)

  let services: ServiceConfig[]
  if (flags.definition) {
    const perService = ['model', 'serviceName', 'parameters'] as const
    const clash = perService.filter((k) => flags[k] !== undefined)
    if (clash.length > 0) {
      throw new UsageError(
        'CONFLICTING_FLAGS',
        `--definition gives every service its own parameters; do not combine it with ${clash.map((k) => `--${k.replaceAll(/[A-Z]/g, (m) => `-${m.toLowerCase()}`)}`).join(', ')}.`,
      )
    }

    const doc = await readJsonFile(flags.definition, 'connector definition')
    const {parsed, problems: found} = checkDefinitionVersion(doc, {allowIccFields: true, allowRegionPlaceholder: true})
    if (found.length > 0) throw new ValidationError(`Invalid connector definition ${flags.definition}.`, found)
    const connectors = (parsed?.imageClassification ?? []).map((c) => ({
      labels: c.entry.IccLabels,
      params: c.parameters as Params,
    }))
    if (connectors.length === 0) {
      throw new ValidationError(`The definition file ${flags.definition} holds no Image Classification connector.`, [
        {
          message: 'no connector has an Image Classification ConnectorArn',
          path: '/Connectors',
          suggestion: 'run `icc list-connectors` to see the ARNs',
        },
      ])
    }

    services = connectors.map((c) =>
      fromParams(c.params, {...flags, model: undefined, serviceName: undefined}, c.labels),
    )
  } else if (flags.parameters) {
    const params = parametersOf(await readJsonFile(flags.parameters, 'parameters'), flags.parameters)
    problems.push(...parameterProblems(params, inferTarget(params)))
    if (problems.length > 0) throw new ValidationError(`Invalid parameters in ${flags.parameters}.`, problems)
    services = [fromParams(params, flags)]
  } else {
    services = [fromParams({}, flags)]
  }

  const seen = new Set<string>()
  for (const s of services) {
    if (seen.has(s.name)) {
      throw new ValidationError('Two services have the same LocalInferenceServiceName.', [
        {
          message: `"${s.name}" is used more than once`,
          path: '/Connectors',
          suggestion: 'give each connector its own name',
        },
      ])
    }

    seen.add(s.name)
    if (s.modelPath !== undefined && !isAbsolute(s.modelPath)) s.modelPath = resolve(s.modelPath)
  }

  return services
}
