/**
 * The protocol of the Greengrass IPC endpoint of `icc serve` (./ipc.ts): existing Lambda code that calls the connector through the
 * Greengrass Machine Learning SDK (`invoke_inference_service`) keeps working unchanged.
 *
 * The SDK speaks the Lambda-invoke-style protocol of the Greengrass V1 core (its IPC daemon):
 *
 *   POST /2016-11-01/functions/arn:aws:lambda:<region>:aws:function:GG-ML-INF-<AlgoType>-<ServiceName>
 *        body = raw image, `X-Amz-Client-Context` = base64 of `{"custom":{"Content-Type":..,"Accept":..}}`,
 *        `Authorization` = the core's token, `X-Amz-Invocation-Type: RequestResponse`
 *        -> 202 with `X-Amz-InvocationId`
 *   GET  the same URL with `X-Amz-InvocationId` and `Authorization`
 *        -> 200 `{"Body":"[0.3,0.1,...]","ContentType":"application/json"}` on success
 *        -> 200 + `X-Amz-Function-Error: Handled` + `{"errorMessage":..}` for an inference failure (bad image,
 *           unsupported content type, timeout, memory limit): the SDK raises GreengrassInferenceException
 *        -> 200 + `X-Amz-Function-Error: Unhandled`, or an HTTP 4xx/5xx (wrong token, unknown function, service not
 *           ready, unknown invocation id): the SDK raises GreengrassDependencyException
 *
 * This file holds the protocol's names and parsing (function ARNs, the client context, the answers' shapes);
 * ./ipc-endpoint.ts answers the calls, ./ipc.ts listens. {@link lambdaEnvironment} gives the variables a Lambda
 * process needs to find the endpoint.
 */
import type {ServerResponse} from 'node:http'

import {randomBytes} from 'node:crypto'

import {sendJson} from './http-io.js'
import {type InferenceResult, ServeError, type ServeErrorCode} from './types.js'

/** Version segment of the IPC API path. */
export const IPC_API_VERSION = '2016-11-01'
/** The only algorithm type the connector serves. */
export const SUPPORTED_ALGO_TYPE = 'image-classification'
/** Interface version icc announces to Lambda code (the ML SDK needs 1.x with x >= 2). */
export const GGC_INTERFACE_VERSION = '1.5'
/** Lambda's limit on a base64 client context; the core enforced the same. */
export const MAX_CLIENT_CONTEXT_BYTES = 3583

export const HEADER_INVOCATION_ID = 'x-amz-invocationid'
export const HEADER_CLIENT_CONTEXT = 'x-amz-client-context'
export const HEADER_INVOCATION_TYPE = 'x-amz-invocation-type'
export const HEADER_FUNCTION_ERROR = 'x-amz-function-error'

/** Serve error codes that are the caller's input problem: reported as Handled (GreengrassInferenceException). */
export const HANDLED_CODES: ReadonlySet<ServeErrorCode> = new Set<ServeErrorCode>([
  'BAD_IMAGE',
  'BODY_TOO_LARGE',
  'MEMORY_LIMIT',
  'TIMEOUT',
  'UNSUPPORTED_CONTENT_TYPE',
])

const FUNCTION_ARN = /^arn:aws:lambda:([a-z0-9-]+):aws:function:GG-ML-INF-(.+)$/
/** What a service name may be (LocalInferenceServiceName). */
export const SERVICE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9-]{1,62}$/

export interface ParsedFunctionArn {
  algoType: string
  region: string
  serviceName: string
}

/** The function ARN the ML SDK addresses for a service. */
export function functionArn(region: string, algoType: string, serviceName: string): string {
  return `arn:aws:lambda:${region}:aws:function:GG-ML-INF-${algoType}-${serviceName}`
}

/**
 * Split a `GG-ML-INF-<AlgoType>-<ServiceName>` function ARN. Both parts may contain hyphens, so the known service
 * names decide the split where they can; otherwise the supported algorithm type is taken as the prefix.
 */
export function parseFunctionArn(arn: string, knownServices: readonly string[] = []): ParsedFunctionArn | undefined {
  const m = FUNCTION_ARN.exec(arn)
  if (!m) return undefined
  const [, region, rest] = m
  const known = [...knownServices].sort((a, b) => b.length - a.length).find((s) => rest.endsWith(`-${s}`))
  if (known && rest.length > known.length + 1) {
    return {algoType: rest.slice(0, -known.length - 1), region, serviceName: known}
  }

  if (rest.startsWith(`${SUPPORTED_ALGO_TYPE}-`)) {
    return {algoType: SUPPORTED_ALGO_TYPE, region, serviceName: rest.slice(SUPPORTED_ALGO_TYPE.length + 1)}
  }

  const dash = rest.indexOf('-')
  if (dash <= 0) return undefined
  return {algoType: rest.slice(0, dash), region, serviceName: rest.slice(dash + 1)}
}

/** Environment variables a Lambda process needs to reach this endpoint through the ML SDK. */
export function lambdaEnvironment(options: {port: number; region: string; token: string}): Record<string, string> {
  return {
    AWS_CONTAINER_AUTHORIZATION_TOKEN: options.token,
    AWS_REGION: options.region,
    GG_DAEMON_PORT: String(options.port),
    GGC_MAX_INTERFACE_VERSION: GGC_INTERFACE_VERSION,
  }
}

/** A fresh random token for `--ipc-auth-token` when none is given. */
export function generateAuthToken(): string {
  return randomBytes(24).toString('base64url')
}

/** Decoded `X-Amz-Client-Context`: the SDK's `custom` map. */
export interface ClientContext {
  accept?: string
  contentType?: string
}

/** Decode and check an `X-Amz-Client-Context` header; throws an Error with a specific message. */
export function decodeClientContext(header: string | undefined): ClientContext {
  if (header === undefined || header === '') return {}
  if (header.length > MAX_CLIENT_CONTEXT_BYTES) {
    throw new Error(
      `X-Amz-Client-Context is ${header.length} bytes; the limit is ${MAX_CLIENT_CONTEXT_BYTES} bytes of base64`,
    )
  }

  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(header) || header.length % 4 !== 0) {
    throw new Error('X-Amz-Client-Context is not valid base64')
  }

  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(header, 'base64').toString('utf8'))
  } catch {
    throw new Error('X-Amz-Client-Context is not base64 of a JSON object (expected {"custom":{"Content-Type":..}})')
  }

  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error('X-Amz-Client-Context must decode to a JSON object (expected {"custom":{"Content-Type":..}})')
  }

  const {custom} = parsed as {custom?: unknown}
  if (custom === undefined || custom === null) return {}
  if (typeof custom !== 'object' || Array.isArray(custom)) {
    throw new TypeError('X-Amz-Client-Context "custom" must be a JSON object')
  }

  const result: ClientContext = {}
  for (const [key, field] of [
    ['Content-Type', 'contentType'],
    ['Accept', 'accept'],
  ] as const) {
    const value = (custom as Record<string, unknown>)[key]
    if (value === undefined || value === null) continue
    if (typeof value !== 'string') throw new Error(`X-Amz-Client-Context custom["${key}"] must be a string`)
    result[field] = value
  }

  return result
}

/** What became of an invocation: its result, or the error the SDK raises. */
export type Outcome =
  | {kind: 'error'; functionError: 'Handled' | 'Unhandled'; message: string; type: string}
  | {kind: 'ok'; result: InferenceResult}

/** IPC answers are JSON without a charset parameter, as the Greengrass core sent them. */
export const JSON_TYPE = 'application/json'

/** Answer with `{errorMessage, errorType}`, the shape Lambda's invoke API (and the ML SDK) reads errors in. */
export function errorReply(
  res: ServerResponse,
  status: number,
  message: string,
  type: string,
  extra: Record<string, string> = {},
): void {
  sendJson(res, status, JSON.stringify({errorMessage: message, errorType: type}), extra, JSON_TYPE)
}

export function outcomeOf(error: unknown): Outcome {
  if (error instanceof ServeError) {
    return {
      functionError: HANDLED_CODES.has(error.code) ? 'Handled' : 'Unhandled',
      kind: 'error',
      message: error.message,
      type: error.code,
    }
  }

  return {
    functionError: 'Unhandled',
    kind: 'error',
    message: `internal error: ${error instanceof Error ? error.message : String(error)}`,
    type: 'INTERNAL',
  }
}
