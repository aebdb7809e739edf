/**
 * `icc serve` as a library call: build the services from flags/files (./config.ts), resolve the bundled default
 * model when no model is given, start the host (./host.ts), announce readiness, and run until SIGTERM/SIGINT
 * (or `options.signal`), then drain and stop. Resolves with a summary once everything has stopped.
 */
import {access} from 'node:fs/promises'

import {spinWhile} from '../aws/progress.js'
import {UsageError} from '../errors.js'
import {withAccessLog} from './access-log.js'
import {buildServiceConfigs, type ServiceConfig, type ServiceFlags} from './config.js'
import {
  assertPortFree,
  type Host,
  type HostAddresses,
  type HostOptions,
  type HostServices,
  type StartedService,
  startHost,
} from './host.js'
import {generateAuthToken, lambdaEnvironment, startIpcServer} from './ipc.js'
import {readTokenFile} from './tokens.js'
import {holdHostYoungGeneration} from './tuning.js'

export {buildServiceConfigs, type ServiceConfig, type ServiceFlags} from './config.js'
export {type Host, type HostAddresses, type HostOptions, httpStatus, startHost} from './host.js'
export {defaultSocketPath} from './paths.js'
export * from './types.js'

export interface IpcServeOptions {
  /** The token Lambda code must send (default: AWS_CONTAINER_AUTHORIZATION_TOKEN, else a generated one). */
  authToken?: string
  /** A file (the user's own, mode 0600) holding that token: `--ipc-auth-token-file` (./tokens.ts). */
  authTokenFile?: string
  /** Loopback host (default 127.0.0.1). */
  host?: string
  /** TCP port (0: any free one; the ML SDK's default is 8000). */
  port: number
  /** Function ARNs must name this region (default: AWS_REGION; none: any region is accepted). */
  region?: string
}

/** Where the Greengrass IPC endpoint listens (no secret: printed with --json). */
export interface IpcInfo {
  host: string
  port: number
  /** True when the token was generated (nobody else knows it yet). */
  tokenGenerated: boolean
  url: string
}

export interface ServeOptions extends Omit<HostOptions, 'adminTokens' | 'services'>, ServiceFlags {
  /** Bearer token that allows `POST /v2/repository/models/{name}/load` over TCP (the IPC auth token does too). */
  adminToken?: string
  /** A file (the user's own, mode 0600) holding the TCP listener's token (instead of `authToken`). */
  authTokenFile?: string
  /** Also expose the Greengrass IPC protocol (what the ML SDK speaks) on a loopback TCP port. */
  ipc?: IpcServeOptions
  /**
   * Called once every service is ready and listening. `lambdaEnv` (with --ipc) holds the variables a Lambda needs
   * to reach the IPC endpoint, token included: it is never part of `info` or of the result.
   */
  onReady?: (info: ServeReadyInfo, secrets: {lambdaEnv?: Record<string, string>}) => void
  /** A spinner with the elapsed time on stderr while the models load (a first load converts; the caller's TTY check). */
  progress?: boolean
  /** Stop when aborted (in addition to SIGTERM/SIGINT). */
  signal?: AbortSignal
}

export interface ServeReadyInfo {
  addresses: HostAddresses
  /** The Greengrass IPC endpoint, when enabled. */
  ipc?: IpcInfo
  services: StartedService[]
  warnings: string[]
}

export interface ServeResult extends ServeReadyInfo {
  stoppedBy: string
}

/** The bundled default model directory, written into the cache on first use. */
async function defaultModelPath(cacheDir?: string): Promise<string> {
  // imported here, not at the top: the host process itself never needs ONNX Runtime in memory
  const {ensureDefaultModel} = await import('../model/default-model.js')
  return ensureDefaultModel(cacheDir)
}

/**
 * Each service's model path (the bundled default when none is given). A missing model fails start-up when it is
 * the only service, with `strict`, or when every model is missing; otherwise that service is kept with `notReady`
 * (the host reports it not ready and serves the others).
 */
async function resolveModels(services: ServiceConfig[], cacheDir?: string, strict = false): Promise<HostServices> {
  const out: HostServices = []
  const missing: UsageError[] = []
  for (const s of services) {
    const modelPath = s.modelPath ?? (await defaultModelPath(cacheDir))
    try {
      await access(modelPath)
      out.push({...s, modelPath})
    } catch {
      const error = new UsageError('MODEL_NOT_FOUND', `The model of service "${s.name}" does not exist: ${modelPath}`, {
        suggestions: ['Check MLModelDestinationPath / --model.'],
      })
      if (strict || services.length === 1) throw error
      missing.push(error)
      out.push({...s, modelPath, notReady: error.message})
    }
  }

  if (missing.length === services.length) throw missing[0]
  return out
}

/** The Greengrass IPC endpoint's token: the flag, the token file, the Lambda environment's, or a new one. */
async function ipcToken(options: IpcServeOptions): Promise<{authToken: string; generated: boolean}> {
  const fromEnv = process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN
  const given =
    options.authToken ||
    (options.authTokenFile ? await readTokenFile(options.authTokenFile, '--ipc-auth-token-file') : undefined)
  return {authToken: given || fromEnv || generateAuthToken(), generated: !given && !fromEnv}
}

/** Start the Greengrass IPC endpoint on the host's dispatcher. */
async function startIpc(
  host: Host,
  options: IpcServeOptions,
  {authToken, generated}: Awaited<ReturnType<typeof ipcToken>>,
  maxBodyBytes?: number,
) {
  const region = options.region ?? process.env.AWS_REGION
  const server = await startIpcServer({
    authToken,
    bodyLimitBytes: maxBodyBytes,
    budget: host.budget,
    dispatcher: withAccessLog(host.dispatcher, host.accessLog, 'ipc'),
    host: options.host,
    limits: host.limits,
    port: options.port,
    region,
  })
  const info: IpcInfo = {
    host: server.host,
    port: server.port,
    tokenGenerated: generated,
    url: `http://${server.host.includes(':') ? `[${server.host}]` : server.host}:${server.port}`,
  }
  const lambdaEnv = lambdaEnvironment({port: server.port, region: region ?? 'us-east-1', token: authToken})
  return {info, lambdaEnv, server}
}

export async function serve(options: ServeOptions): Promise<ServeResult> {
  // a long-running host: its young generation is held small, so request bodies are freed young (./tuning.ts)
  holdHostYoungGeneration()
  const authToken = options.authTokenFile
    ? await readTokenFile(options.authTokenFile, '--auth-token-file')
    : options.authToken
  const configs = await buildServiceConfigs(options)
  // a TCP port in use fails fast, before any model is looked at (the --port check is the host's, ./host.ts)
  if (options.ipc?.port) await assertPortFree(options.ipc.host ?? '127.0.0.1', options.ipc.port, '--ipc-port')
  const services = await resolveModels(configs, options.cacheDir, options.strict)
  // the IPC token is settled before the host starts: it also allows a model reload over TCP
  const token = options.ipc ? await ipcToken(options.ipc) : undefined
  const adminTokens: string[] = []
  for (const t of [options.adminToken, token?.authToken]) if (t) adminTokens.push(t)
  // the runners load (and the first time convert) the models: a line on a terminal meanwhile, as convert-model's
  const label = `loading ${services.length === 1 ? 'the model' : `${services.length} models`} (the first load converts)`
  const host = await spinWhile(Boolean(options.progress), label, async () =>
    startHost({...options, adminTokens, authToken, services}),
  )
  let ipc: Awaited<ReturnType<typeof startIpc>> | undefined
  try {
    if (options.ipc && token) ipc = await startIpc(host, options.ipc, token, options.maxBodyBytes)
  } catch (error) {
    await host.close()
    throw error
  }

  const info: ServeReadyInfo = {
    addresses: host.addresses,
    ...(ipc ? {ipc: ipc.info} : {}),
    services: host.started,
    warnings: host.warnings,
  }
  options.onReady?.(info, {lambdaEnv: ipc?.lambdaEnv})
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
    await Promise.all([ipc?.server.close(), host.close()])
  } finally {
    process.removeListener('SIGTERM', onSignal!)
    process.removeListener('SIGINT', onSignal!)
  }

  return {...info, stoppedBy}
}
