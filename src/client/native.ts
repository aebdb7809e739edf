/**
 * Client of the native `icc serve` HTTP API (unix socket by default, or a URL), used by `icc invoke`, the
 * benchmark and tests. Node's http module only; no dependencies.
 */
import {request as httpRequest, type IncomingHttpHeaders} from 'node:http'
import {dirname} from 'node:path'

import {ExitCode, IccError, UsageError} from '../errors.js'
import {readLabelsFile} from '../model/labels.js'
import {checkSocketFolder, defaultSocketPath} from '../serve/paths.js'

export interface NativeInvokeOptions {
  /** Accept header (e.g. `application/json; verbose`). */
  accept?: string
  body: Uint8Array
  /** Content-Type; default: sniffed from the bytes (image/jpeg, image/png, else application/x-image). */
  contentType?: string
  /** With topK: name the top classes from this file (../model/labels.ts), mapped here, client-side. */
  labelsFile?: string
  /** Service name; undefined: POST /invocations (the first service). */
  serviceName?: string
  /** Unix socket (default: the default socket of icc serve); ignored when `url` is given. */
  socketPath?: string
  timeoutMs?: number
  topK?: number
  /** Base URL, e.g. http://127.0.0.1:8080. */
  url?: string
}

export interface NativeResponse {
  body: string
  headers: IncomingHttpHeaders
  status: number
}

export interface NativeInvokeResult {
  /** The connector body `[p0,...]`, or the verbose JSON text. */
  body: string
  probabilities: number[]
  serverTiming?: string
  top?: {index: number; label?: string; probability: number}[]
}

/** Content type from the leading bytes. */
export function sniffContentType(bytes: Uint8Array): string {
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg'
  if (bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return 'image/png'
  return 'application/x-image'
}

/** One raw HTTP request to the host (GET or POST). */
export async function nativeRequest(options: {
  body?: Uint8Array
  headers?: Record<string, string>
  method?: string
  path: string
  socketPath?: string
  timeoutMs?: number
  url?: string
}): Promise<NativeResponse> {
  const base = options.url ? new URL(options.url) : undefined
  const socketPath = base ? undefined : (options.socketPath ?? defaultSocketPath())
  // the default folder may sit in /tmp: another user's folder (or a link) there is refused before connecting
  if (!base && !options.socketPath) await checkSocketFolder(dirname(socketPath!))
  return new Promise<NativeResponse>((resolve, reject) => {
    const req = httpRequest(
      {
        headers: {...options.headers, ...(options.body ? {'content-length': String(options.body.byteLength)} : {})},
        hostname: base?.hostname.replaceAll(/^\[|\]$/g, ''),
        method: options.method ?? (options.body ? 'POST' : 'GET'),
        path: (base ? base.pathname.replace(/\/$/, '') : '') + options.path,
        port: base?.port,
        socketPath,
        timeout: options.timeoutMs ?? 60_000,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () =>
          resolve({body: Buffer.concat(chunks).toString('utf8'), headers: res.headers, status: res.statusCode ?? 0}),
        )
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error(`no answer within ${options.timeoutMs ?? 60_000} ms`)))
    req.on('error', (error: NodeJS.ErrnoException) => {
      const where = socketPath ? `unix:${socketPath}` : options.url
      const why =
        error.code === 'ENOENT' || error.code === 'ECONNREFUSED'
          ? `nothing is listening on ${where}`
          : `${error.message} (${where})`
      reject(
        new IccError('SERVICE_UNREACHABLE', `Cannot reach icc serve: ${why}.`, {
          exitCode: ExitCode.Unreachable,
          suggestions: ['Start it with `icc serve`, or pass --socket / --url where it listens.'],
        }),
      )
    })
    if (options.body) req.end(options.body)
    else req.end()
  })
}

/** Invoke a service; throws an IccError (exit 8) carrying the server's error code when it refuses. */
export async function invokeNative(options: NativeInvokeOptions): Promise<NativeInvokeResult> {
  if (options.topK !== undefined && (!Number.isInteger(options.topK) || options.topK < 1)) {
    throw new UsageError('BAD_TOP_K', `--top-k must be a positive integer, got ${options.topK}`)
  }

  const path =
    (options.serviceName ? `/services/${encodeURIComponent(options.serviceName)}/invocations` : '/invocations') +
    (options.topK ? `?top_k=${options.topK}` : '')
  const res = await nativeRequest({
    body: options.body,
    headers: {
      'content-type': options.contentType ?? sniffContentType(options.body),
      ...(options.accept ? {accept: options.accept} : {}),
    },
    path,
    socketPath: options.socketPath,
    timeoutMs: options.timeoutMs,
    url: options.url,
  })
  if (res.status !== 200) {
    let code = `HTTP_${res.status}`
    let message = res.body
    try {
      const e = (JSON.parse(res.body) as {error: {code: string; message: string}}).error
      code = e.code
      message = e.message
    } catch {
      // not our JSON error
    }

    const retry = res.headers['retry-after']
    throw new IccError(code, `${options.serviceName ?? 'icc serve'}: ${message}`, {
      details: {status: res.status, ...(retry ? {retryAfter: Number(retry)} : {})},
      exitCode: ExitCode.Service,
      suggestions: retry ? [`Retry after ${retry} s.`] : [],
    })
  }

  const serverTiming = res.headers['server-timing'] as string | undefined
  if (res.body.startsWith('[')) {
    return {body: res.body, probabilities: JSON.parse(res.body) as number[], serverTiming}
  }

  const parsed = JSON.parse(res.body) as {probabilities: number[]; top: NativeInvokeResult['top']}
  if (options.labelsFile && parsed.top) {
    const labels = await readLabelsFile(options.labelsFile, parsed.probabilities.length)
    parsed.top = parsed.top.map((t) => ({...t, label: labels[t.index]}))
    return {body: JSON.stringify(parsed), probabilities: parsed.probabilities, serverTiming, top: parsed.top}
  }

  return {body: res.body, probabilities: parsed.probabilities, serverTiming, top: parsed.top}
}
