/**
 * TypeScript client for the Greengrass IPC protocol: `invokeInferenceService` does what the Greengrass Machine
 * Learning SDK's `invoke_inference_service` does (POST the image to the service's function ARN, GET the result by
 * invocation id) against `icc serve --ipc-port` or a Greengrass V1 core, with the SDK's two error classes.
 */
import {Agent, request as httpRequest} from 'node:http'

import {ExitCode, IccError, UsageError} from '../errors.js'

const IPC_API_VERSION = '2016-11-01'
const NAME_REGEX = /^[a-zA-Z0-9][a-zA-Z0-9-]{1,62}$/

export interface InvokeInferenceServiceArgs {
  /** Reply type the service should produce (optional, like the SDK's `Accept`). */
  Accept?: string
  /** Algorithm type; the connector serves `image-classification`. */
  AlgoType: string
  /** The image file content. */
  Body: Uint8Array
  /** `image/jpeg` or `image/png`. */
  ContentType?: string
  /** The connector's LocalInferenceServiceName. */
  ServiceName: string
}

export interface IpcClientOptions {
  /** Loopback host of the IPC endpoint; default 127.0.0.1. */
  host?: string
  /** Default: env GG_DAEMON_PORT, else 8000. */
  port?: number
  /** Default: env AWS_REGION. */
  region?: string
  /** Abort the call. */
  signal?: AbortSignal
  /** Default: env AWS_CONTAINER_AUTHORIZATION_TOKEN. */
  token?: string
}

export interface InvokeInferenceServiceResult {
  /** The service's reply body, e.g. `[0.3,0.1,...]` for image classification. */
  Body: Buffer
  ContentType: string
}

/** The inference service rejected the request (bad image, unsupported content type, timeout, memory limit). */
export class GreengrassInferenceException extends IccError {
  readonly errorType?: string

  constructor(message: string, errorType?: string) {
    super('INFERENCE_FAILED', message, {details: errorType ? {errorType} : undefined, exitCode: ExitCode.Service})
    this.name = 'GreengrassInferenceException'
    this.errorType = errorType
  }
}

/** The IPC endpoint or the service could not be used (unreachable, wrong token, unknown service, not ready). */
export class GreengrassDependencyException extends IccError {
  readonly status?: number

  constructor(message: string, options: {cause?: unknown; errorType?: string; status?: number} = {}) {
    super('GREENGRASS_DEPENDENCY', message, {
      cause: options.cause,
      details: {errorType: options.errorType, status: options.status},
      exitCode: ExitCode.Dependency,
      suggestions: [
        'check that icc serve runs with --ipc-port and that the token and port match (icc serve --print-env)',
      ],
    })
    this.name = 'GreengrassDependencyException'
    this.status = options.status
  }
}

/** Parse an image-classification reply body `[p0,p1,...]` into numbers. */
export function parsePredictions(body: Buffer | string): number[] {
  const parsed: unknown = JSON.parse(String(body))
  if (!Array.isArray(parsed) || !parsed.every((v) => typeof v === 'number')) {
    throw new TypeError('the reply body is not a JSON array of numbers')
  }

  return parsed as number[]
}

interface HttpReply {
  body: Buffer
  headers: Record<string, string | string[] | undefined>
  status: number
}

function errorFields(body: Buffer): {message?: string; type?: string} {
  try {
    const doc = JSON.parse(body.toString('utf8')) as {errorMessage?: unknown; errorType?: unknown; message?: unknown}
    const message = typeof doc.errorMessage === 'string' ? doc.errorMessage : doc.message
    return {
      message: typeof message === 'string' ? message : undefined,
      type: typeof doc.errorType === 'string' ? doc.errorType : undefined,
    }
  } catch {
    return {}
  }
}

function header(reply: HttpReply, name: string): string | undefined {
  const value = reply.headers[name.toLowerCase()]
  return Array.isArray(value) ? value[0] : value
}

/**
 * Connections to the endpoint are kept alive between calls (a call is two requests; a new loopback connection for
 * each cost the client and `icc serve` ~0.5 ms of CPU apiece). Idle ones do not keep the process alive.
 */
const keepAlive = new Agent({keepAlive: true})

/** Errors of a kept-alive connection that the endpoint closed just as it was reused: the request never arrived. */
const STALE_CONNECTION = new Set(['ECONNRESET', 'EPIPE'])

async function call(
  method: 'GET' | 'POST',
  target: {host: string; path: string; port: number; signal?: AbortSignal},
  headers: Record<string, string>,
  body?: Uint8Array,
  retried = false,
): Promise<HttpReply> {
  return new Promise<HttpReply>((resolve, reject) => {
    let answered = false
    const req = httpRequest(
      {
        agent: keepAlive,
        headers: body ? {...headers, 'content-length': String(body.byteLength)} : headers,
        host: target.host,
        method,
        path: target.path,
        port: target.port,
        signal: target.signal,
      },
      (res) => {
        answered = true
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('end', () => resolve({body: Buffer.concat(chunks), headers: res.headers, status: res.statusCode ?? 0}))
        res.on('error', reject)
      },
    )
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (!retried && !answered && req.reusedSocket && STALE_CONNECTION.has(error.code ?? '')) {
        call(method, target, headers, body, true).then(resolve, reject)
        return
      }

      reject(
        new GreengrassDependencyException(
          `cannot reach the Greengrass IPC endpoint at ${target.host}:${target.port}: ${error.message}`,
          {cause: error},
        ),
      )
    })
    req.end(body)
  })
}

function checked(reply: HttpReply, what: string): HttpReply {
  if (reply.status >= 200 && reply.status < 300) return reply
  const {message, type} = errorFields(reply.body)
  throw new GreengrassDependencyException(
    `Greengrass IPC ${what} failed with HTTP ${reply.status}${message ? `: ${message}` : ''}`,
    {errorType: type, status: reply.status},
  )
}

function validate(args: InvokeInferenceServiceArgs): void {
  for (const name of ['AlgoType', 'ServiceName', 'Body'] as const) {
    if (args[name] === undefined || args[name] === null) {
      throw new UsageError('INVALID_ARGUMENT', `${name} argument of invokeInferenceService is required`)
    }
  }

  for (const name of ['AlgoType', 'ServiceName'] as const) {
    if (typeof args[name] !== 'string' || !NAME_REGEX.test(args[name])) {
      throw new UsageError('INVALID_ARGUMENT', `${name} must match the regex ${NAME_REGEX.source}`, {
        details: {value: String(args[name])},
      })
    }
  }

  if (!(args.Body instanceof Uint8Array)) {
    throw new UsageError('INVALID_ARGUMENT', 'Body must be a Buffer or Uint8Array with the image file content')
  }
}

/**
 * Invoke a local inference service over the Greengrass IPC protocol. Resolves with the reply; rejects with
 * {@link GreengrassInferenceException} for a handled service error and {@link GreengrassDependencyException}
 * for anything else that went wrong on the way.
 */
export async function invokeInferenceService(
  args: InvokeInferenceServiceArgs,
  options: IpcClientOptions = {},
): Promise<InvokeInferenceServiceResult> {
  validate(args)
  const region = options.region ?? process.env.AWS_REGION
  if (!region) {
    throw new GreengrassDependencyException('no region: pass {region} or set AWS_REGION (icc serve --print-env)')
  }

  const port = options.port ?? Number(process.env.GG_DAEMON_PORT ?? 8000)
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new UsageError('INVALID_ARGUMENT', `IPC port ${String(port)} is not a TCP port (1-65535)`)
  }

  const token = options.token ?? process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN ?? ''
  const arn = `arn:aws:lambda:${region}:aws:function:GG-ML-INF-${args.AlgoType}-${args.ServiceName}`
  const target = {
    host: options.host ?? '127.0.0.1',
    path: `/${IPC_API_VERSION}/functions/${arn}`,
    port,
    signal: options.signal,
  }
  const custom: Record<string, string> = {}
  if (args.ContentType !== undefined) custom['Content-Type'] = args.ContentType
  if (args.Accept !== undefined) custom.Accept = args.Accept
  const context = Buffer.from(JSON.stringify({custom})).toString('base64')

  const posted = checked(
    await call(
      'POST',
      target,
      {
        authorization: token,
        'content-type': 'application/octet-stream',
        'x-amz-client-context': context,
        'x-amz-invocation-type': 'RequestResponse',
      },
      args.Body,
    ),
    `POST ${arn}`,
  )
  const id = header(posted, 'x-amz-invocationid')
  if (!id)
    throw new GreengrassDependencyException(`the IPC endpoint accepted the work for ${arn} but sent no invocation id`)

  const result = checked(await call('GET', target, {authorization: token, 'x-amz-invocationid': id}), `GET ${arn}`)
  const functionError = header(result, 'x-amz-function-error')
  if (functionError === 'Handled') {
    const {message, type} = errorFields(result.body)
    throw new GreengrassInferenceException(message ?? result.body.toString('utf8'), type)
  }

  if (functionError) {
    const {message, type} = errorFields(result.body)
    throw new GreengrassDependencyException(`${functionError} error from ${arn}: ${message ?? 'no details'}`, {
      errorType: type,
    })
  }

  let reply: {Body?: unknown; ContentType?: unknown}
  try {
    reply = JSON.parse(result.body.toString('utf8')) as typeof reply
  } catch (error) {
    throw new GreengrassDependencyException(`the service ${args.ServiceName} sent a reply that is not JSON`, {
      cause: error,
    })
  }

  if (typeof reply?.Body !== 'string') {
    throw new GreengrassDependencyException(`the service ${args.ServiceName} sent a reply without a Body`)
  }

  return {
    Body: Buffer.from(reply.Body, 'utf8'),
    ContentType: typeof reply.ContentType === 'string' ? reply.ContentType : 'application/json',
  }
}
