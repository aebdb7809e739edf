/**
 * Service configuration for `icc serve`: turns flags, a connector Parameters file, or a whole connector
 * definition version into a list of services (one runner each).
 *
 * The names are the connector's: MLModelDestinationPath -> model path, LocalInferenceServiceName -> service name,
 * LocalInferenceServiceTimeoutSeconds, LocalInferenceServiceMemoryLimitKB, GPUAcceleration.
 *
 * SCHEMA HOOK (for the lead): the full JSON-schema validation lives in src/connector/parameters.ts
 * (`validateParameters`, `parseDefinitionVersion`). Until it is wired in, this module does the basic checks
 * itself (patterns from the connector documentation); replace `checkParameters` / `connectorsOfDefinition`
 * with those calls so `icc serve` reports the same errors as `create-connector`.
 */
import {readFile} from 'node:fs/promises'
import {isAbsolute, resolve} from 'node:path'

import {parseConnectorArn} from '../connector/catalog.js'
import {UsageError, ValidationError, type ValidationProblem} from '../errors.js'

export interface ServiceConfig {
  /** Run on the CPU with a warning when GPU was asked but the CUDA provider cannot be loaded. */
  allowCpuFallback: boolean
  gpu: boolean
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

const SERVICE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9-]{1,62}$/
const POSITIVE = /^[1-9][0-9]*$/

type Params = Record<string, unknown>

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new UsageError('FILE_NOT_READABLE', `Cannot read the ${what} file ${path}: ${(error as Error).message}`)
  }

  try {
    return JSON.parse(text)
  } catch (error) {
    throw new UsageError('INVALID_JSON', `The ${what} file ${path} is not valid JSON: ${(error as Error).message}`, {
      suggestions: ['Check the file with `jq . FILE`.'],
    })
  }
}

/** Basic checks of one connector's Parameters (SCHEMA HOOK: validateParameters). */
function checkParameters(params: Params, where: string, problems: ValidationProblem[]): void {
  const str = (name: string): string | undefined => {
    const v = params[name]
    if (v === undefined) return undefined
    if (typeof v !== 'string') {
      problems.push({message: `${name} must be a string (the connector takes strings)`, path: `${where}/${name}`})
      return undefined
    }

    return v
  }

  const name = str('LocalInferenceServiceName')
  if (name !== undefined && !SERVICE_NAME.test(name)) {
    problems.push({
      message: `"${name}" does not match [a-zA-Z0-9][a-zA-Z0-9-]{1,62}`,
      path: `${where}/LocalInferenceServiceName`,
      suggestion: 'use 2-63 letters, digits and dashes, starting with a letter or digit',
    })
  }

  for (const key of ['LocalInferenceServiceTimeoutSeconds', 'LocalInferenceServiceMemoryLimitKB']) {
    const v = str(key)
    if (v !== undefined && !POSITIVE.test(v)) {
      problems.push({message: `"${v}" is not a positive integer ([1-9][0-9]*)`, path: `${where}/${key}`})
    }
  }

  const gpu = str('GPUAcceleration')
  if (gpu !== undefined && gpu !== 'CPU' && gpu !== 'GPU') {
    problems.push({message: `"${gpu}" is not CPU or GPU`, path: `${where}/GPUAcceleration`})
  }

  const model = str('MLModelDestinationPath')
  if (model !== undefined && model.length === 0) {
    problems.push({message: 'must not be empty', path: `${where}/MLModelDestinationPath`})
  }
}

function fromParams(params: Params, base: ServiceFlags): ServiceConfig {
  const s = (k: string) => params[k] as string | undefined
  return {
    allowCpuFallback: Boolean(base.allowCpuFallback),
    gpu: (base.gpuAcceleration ?? s('GPUAcceleration') ?? 'CPU') === 'GPU',
    memoryLimitKb: base.memoryLimitKb ?? Number(s('LocalInferenceServiceMemoryLimitKB') ?? DEFAULT_MEMORY_LIMIT_KB),
    modelPath: base.model ?? s('MLModelDestinationPath'),
    name: base.serviceName ?? s('LocalInferenceServiceName') ?? DEFAULT_SERVICE_NAME,
    timeoutSeconds: base.timeoutSeconds ?? Number(s('LocalInferenceServiceTimeoutSeconds') ?? DEFAULT_TIMEOUT_SECONDS),
  }
}

/**
 * The Image Classification connectors of a definition version (SCHEMA HOOK: parseDefinitionVersion). Accepts the
 * `--initial-version` document itself, or it wrapped as `InitialVersion` / `Definition`.
 */
function connectorsOfDefinition(doc: unknown, path: string): {id: string; index: number; params: Params}[] {
  const root = doc as Record<string, unknown>
  const version = (root?.InitialVersion ?? root?.Definition ?? root) as {Connectors?: unknown}
  if (!version || !Array.isArray(version.Connectors)) {
    throw new ValidationError(`The definition file ${path} has no Connectors list.`, [
      {message: 'expected {"Connectors": [...]}', path: '/Connectors'},
    ])
  }

  const out: {id: string; index: number; params: Params}[] = []
  for (const [index, c] of (version.Connectors as Record<string, unknown>[]).entries()) {
    if (typeof c?.ConnectorArn !== 'string' || !parseConnectorArn(c.ConnectorArn)) continue
    out.push({id: String(c.Id ?? index), index, params: (c.Parameters ?? {}) as Params})
  }

  return out
}

/** Build the services to run from the command's flags. */
export async function buildServiceConfigs(flags: ServiceFlags): Promise<ServiceConfig[]> {
  const problems: ValidationProblem[] = []
  if (flags.definition && flags.parameters) {
    throw new UsageError('CONFLICTING_FLAGS', 'Use either --definition or --parameters, not both.')
  }

  if (flags.serviceName !== undefined)
    checkParameters({LocalInferenceServiceName: flags.serviceName}, '--service-name', problems)
  if (flags.gpuAcceleration !== undefined)
    checkParameters({GPUAcceleration: flags.gpuAcceleration}, '--gpu-acceleration', problems)
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

    const doc = await readJson(flags.definition, 'connector definition')
    const connectors = connectorsOfDefinition(doc, flags.definition)
    if (connectors.length === 0) {
      throw new ValidationError(`The definition file ${flags.definition} holds no Image Classification connector.`, [
        {
          message: 'no connector has an Image Classification ConnectorArn',
          path: '/Connectors',
          suggestion: 'run `icc list-connectors` to see the ARNs',
        },
      ])
    }

    for (const c of connectors) checkParameters(c.params, `/Connectors/${c.index}/Parameters`, problems)
    for (const c of connectors) {
      for (const k of ['MLModelDestinationPath', 'LocalInferenceServiceName']) {
        if (c.params[k] === undefined)
          problems.push({message: `${k} is required`, path: `/Connectors/${c.index}/Parameters/${k}`})
      }
    }

    if (problems.length > 0) throw new ValidationError(`Invalid connector definition ${flags.definition}.`, problems)
    services = connectors.map((c) => fromParams(c.params, {...flags, model: undefined, serviceName: undefined}))
  } else if (flags.parameters) {
    const doc = (await readJson(flags.parameters, 'parameters')) as Record<string, unknown>
    const params = (doc?.Parameters ?? doc) as Params
    if (!params || typeof params !== 'object' || Array.isArray(params)) {
      throw new ValidationError(`The parameters file ${flags.parameters} is not a JSON object.`, [
        {message: 'expected {"MLModelDestinationPath": ..., ...}', path: '/'},
      ])
    }

    checkParameters(params, '', problems)
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
