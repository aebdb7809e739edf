/**
 * `icc serve` as a library call: build the services from flags/files (./config.ts), resolve the bundled default
 * model when no model is given, start the host (./host.ts), announce readiness, and run until SIGTERM/SIGINT
 * (or `options.signal`), then drain and stop. Resolves with a summary once everything has stopped.
 */
import {access} from 'node:fs/promises'

import {ModelError, UsageError} from '../errors.js'
import {buildServiceConfigs, type ServiceConfig, type ServiceFlags} from './config.js'
import {type Host, type HostAddresses, type HostOptions, type StartedService, startHost} from './host.js'

export {buildServiceConfigs, type ServiceConfig, type ServiceFlags} from './config.js'
export {type Host, type HostAddresses, type HostOptions, httpStatus, startHost} from './host.js'
export {defaultSocketPath} from './paths.js'
export * from './types.js'

/**
 * A front end started on top of the host once it is ready (e.g. the Greengrass IPC endpoint on --ipc-port):
 * gets the host (its `dispatcher`, `logger`), returns something to close at shutdown (stop accepting, finish
 * in-flight requests); closed at the same time as the host drains.
 */
export type ServePlugin = (host: Host) => Promise<void | {close(): Promise<void>; warnings?: string[]}>

export interface ServeOptions extends Omit<HostOptions, 'services'>, ServiceFlags {
  /** Called once every service is ready and listening. */
  onReady?: (info: ServeReadyInfo) => void
  /** Front ends to start on the host (see {@link ServePlugin}). */
  plugins?: ServePlugin[]
  /** Stop when aborted (in addition to SIGTERM/SIGINT). */
  signal?: AbortSignal
}

export interface ServeReadyInfo {
  addresses: HostAddresses
  services: StartedService[]
  warnings: string[]
}

export interface ServeResult extends ServeReadyInfo {
  stoppedBy: string
}

/** The bundled default model directory (from the model core), or a clear error while it is not available. */
async function defaultModelPath(cacheDir?: string): Promise<string> {
  // imported here, not at the top: the host process itself never needs ONNX Runtime in memory
  const modelCore = (await import('../model/index.js')) as Record<string, unknown>
  const ensure = modelCore.ensureDefaultModel as ((cacheDir?: string) => Promise<string>) | undefined
  if (typeof ensure !== 'function') {
    throw new ModelError('NO_DEFAULT_MODEL', 'No --model given and this build has no bundled default model yet.', {
      suggestions: ['Pass --model PATH (a SageMaker model directory, model.tar.gz or .onnx file).'],
    })
  }

  return ensure(cacheDir)
}

async function resolveModels(
  services: ServiceConfig[],
  cacheDir?: string,
): Promise<(ServiceConfig & {modelPath: string})[]> {
  const out: (ServiceConfig & {modelPath: string})[] = []
  for (const s of services) {
    const modelPath = s.modelPath ?? (await defaultModelPath(cacheDir))
    try {
      await access(modelPath)
    } catch {
      throw new UsageError('MODEL_NOT_FOUND', `The model of service "${s.name}" does not exist: ${modelPath}`, {
        suggestions: ['Check MLModelDestinationPath / --model.'],
      })
    }

    out.push({...s, modelPath})
  }

  return out
}

export async function serve(options: ServeOptions): Promise<ServeResult> {
  const configs = await buildServiceConfigs(options)
  const services = await resolveModels(configs, options.cacheDir)
  const host = await startHost({...options, services})
  const closers: {close(): Promise<void>}[] = []
  try {
    for (const plugin of options.plugins ?? []) {
      const started = await plugin(host)
      if (started) {
        closers.push(started)
        host.warnings.push(...(started.warnings ?? []))
      }
    }
  } catch (error) {
    await Promise.all([...closers.map(async (c) => c.close()), host.close()])
    throw error
  }

  const info: ServeReadyInfo = {addresses: host.addresses, services: host.started, warnings: host.warnings}
  options.onReady?.(info)
  // `on`, not `once`, and removed only after the shutdown: execa's exit hook (signal-exit) re-raises a signal
  // when it finds itself the only listener, which would kill the host in the middle of draining
  let onSignal: ((sig: NodeJS.Signals) => void) | undefined
  const stoppedBy = await new Promise<string>((resolve) => {
    onSignal = (sig) => resolve(sig)
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
    options.signal?.addEventListener('abort', () => resolve('abort'), {once: true})
  })
  try {
    await Promise.all([...closers.map(async (c) => c.close()), host.close()])
  } finally {
    process.removeListener('SIGTERM', onSignal!)
    process.removeListener('SIGINT', onSignal!)
  }

  return {...info, stoppedBy}
}
