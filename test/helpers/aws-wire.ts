/**
 * A loopback AWS endpoint for tests: a real HTTP server on 127.0.0.1 that real SDK v3 clients talk to through
 * `endpoint` / `--endpoint-url`. It recognises three wire protocols and records every request for assertions:
 *
 * - IAM query protocol: POST form-encoded `Action=...&Version=2010-05-08`, XML replies (`iamResult`, `iamError`);
 * - SageMaker JSON 1.1: `X-Amz-Target: SageMaker.<Operation>`, JSON replies, errors with `__type`;
 * - Greengrass REST-JSON: `/greengrass/...` paths mapped to operation names, JSON replies.
 *
 * Handlers are keyed `iam:<Action>`, `sagemaker:<Operation>`, `greengrass:<Operation>`, or `other` for anything
 * else (e.g. S3). `throttle(op, n)` answers the protocol's throttling error n times before the handler runs.
 * Unhandled "other" requests can be forwarded to another server (`proxyTo`), e.g. s3rver.
 */
import type {AddressInfo} from 'node:net'

import {once} from 'node:events'
import {createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse} from 'node:http'

export type Protocol = 'greengrass' | 'iam' | 'other' | 'sagemaker'

export interface WireRequest {
  body: string
  headers: IncomingMessage['headers']
  /** Parsed JSON body (SageMaker, Greengrass). */
  json?: any
  method: string
  /** e.g. `iam:SimulatePrincipalPolicy`, `greengrass:GetGroup`, `other`. */
  operation: string
  /** IAM form fields, or Greengrass path parameters. */
  params: Record<string, string>
  path: string
  protocol: Protocol
  query: Record<string, string>
}

export interface WireReply {
  body?: object | string
  headers?: Record<string, string>
  /** Take over the raw response (e.g. to cut a body short); everything else is ignored. */
  raw?: (res: ServerResponse) => void
  status?: number
}

export type WireHandler = (req: WireRequest) => Promise<undefined | WireReply> | undefined | WireReply

const GREENGRASS_ROUTES: [string, RegExp, string, string[]][] = [
  ['GET', /^\/greengrass\/groups\/([^/]+)\/role$/, 'GetAssociatedRole', ['GroupId']],
  ['POST', /^\/greengrass\/definition\/resources$/, 'CreateResourceDefinition', []],
  [
    'GET',
    /^\/greengrass\/definition\/resources\/([^/]+)\/versions\/([^/]+)$/,
    'GetResourceDefinitionVersion',
    ['ResourceDefinitionId', 'ResourceDefinitionVersionId'],
  ],
  ['POST', /^\/greengrass\/definition\/connectors$/, 'CreateConnectorDefinition', []],
  [
    'POST',
    /^\/greengrass\/definition\/connectors\/([^/]+)\/versions$/,
    'CreateConnectorDefinitionVersion',
    ['ConnectorDefinitionId'],
  ],
  ['GET', /^\/greengrass\/definition\/connectors\/([^/]+)$/, 'GetConnectorDefinition', ['ConnectorDefinitionId']],
  [
    'GET',
    /^\/greengrass\/definition\/connectors\/([^/]+)\/versions\/([^/]+)$/,
    'GetConnectorDefinitionVersion',
    ['ConnectorDefinitionId', 'ConnectorDefinitionVersionId'],
  ],
  ['GET', /^\/greengrass\/groups\/([^/]+)$/, 'GetGroup', ['GroupId']],
  ['GET', /^\/greengrass\/groups\/([^/]+)\/versions\/([^/]+)$/, 'GetGroupVersion', ['GroupId', 'GroupVersionId']],
  ['POST', /^\/greengrass\/groups\/([^/]+)\/versions$/, 'CreateGroupVersion', ['GroupId']],
  ['POST', /^\/greengrass\/groups\/([^/]+)\/deployments$/, 'CreateDeployment', ['GroupId']],
  [
    'GET',
    /^\/greengrass\/groups\/([^/]+)\/deployments\/([^/]+)\/status$/,
    'GetDeploymentStatus',
    ['GroupId', 'DeploymentId'],
  ],
]

/** The body of a successful IAM query-protocol reply. */
export function iamResult(action: string, inner: string): string {
  return (
    `<${action}Response xmlns="https://iam.amazonaws.com/doc/2010-05-08/">` +
    `<${action}Result>${inner}</${action}Result>` +
    `<ResponseMetadata><RequestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</RequestId></ResponseMetadata>` +
    `</${action}Response>`
  )
}

export function iamError(code: string, message: string, status = 403): WireReply {
  return {
    body:
      `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>` +
      `<Code>${code}</Code><Message>${message}</Message></Error>` +
      `<RequestId>4b4e5b2c-EXAMPLE</RequestId></ErrorResponse>`,
    headers: {'content-type': 'text/xml'},
    status,
  }
}

/** A HEAD (or GET) answer for an S3 object of `bytes` bytes, as S3 sends it (no body for HEAD). */
export function s3ObjectHead(bytes: number): WireReply {
  return {
    raw(res) {
      res.writeHead(200, {
        'content-length': String(bytes),
        'content-type': 'application/x-tar',
        etag: '"0123456789abcdef0123456789abcdef"',
        'last-modified': 'Wed, 01 May 2024 10:00:00 GMT',
      })
      res.end()
    },
  }
}

export function jsonError(type: string, message: string, status = 400): WireReply {
  return {body: {__type: type, message}, headers: {'x-amzn-errortype': type}, status}
}

function throttleReply(protocol: Protocol): WireReply {
  if (protocol === 'iam') return iamError('Throttling', 'Rate exceeded', 400)
  if (protocol === 'sagemaker') return jsonError('ThrottlingException', 'Rate exceeded', 400)
  return {...jsonError('TooManyRequestsException', 'Too many requests', 429)}
}

export class AwsWire {
  readonly requests: WireRequest[] = []
  private readonly handlers = new Map<string, WireHandler>()
  private proxyUrl?: URL
  private readonly server: Server
  private readonly throttles = new Map<string, number>()

  private constructor() {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((error: Error) => {
        if (!res.headersSent) res.writeHead(500, {'content-type': 'text/plain'})
        res.end(`aws-wire: ${error.message}`)
      })
    })
  }

  get url(): string {
    const {port} = this.server.address() as AddressInfo
    return `http://127.0.0.1:${port}`
  }

  static async start(): Promise<AwsWire> {
    const wire = new AwsWire()
    wire.server.listen(0, '127.0.0.1')
    await once(wire.server, 'listening')
    return wire
  }

  async close(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve())
    })
  }

  /** Requests of one operation, in order. */
  calls(operation: string): WireRequest[] {
    return this.requests.filter((r) => r.operation === operation)
  }

  on(operation: string, handler: WireHandler | WireReply): this {
    this.handlers.set(operation, typeof handler === 'function' ? handler : () => handler)
    return this
  }

  proxyTo(url: string): this {
    this.proxyUrl = new URL(url)
    return this
  }

  reset(): void {
    this.requests.length = 0
    this.handlers.clear()
    this.throttles.clear()
  }

  throttle(operation: string, times: number): this {
    this.throttles.set(operation, times)
    return this
  }

  private classify(req: IncomingMessage, body: string, url: URL): WireRequest {
    const base = {
      body,
      headers: req.headers,
      method: req.method ?? 'GET',
      params: {} as Record<string, string>,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
    }
    const target = req.headers['x-amz-target']
    if (typeof target === 'string' && target.startsWith('SageMaker.')) {
      return {
        ...base,
        json: body ? JSON.parse(body) : {},
        operation: `sagemaker:${target.slice(10)}`,
        protocol: 'sagemaker',
      }
    }

    const type = req.headers['content-type'] ?? ''
    if (req.method === 'POST' && type.startsWith('application/x-www-form-urlencoded')) {
      const params = Object.fromEntries(new URLSearchParams(body))
      if (params.Version === '2010-05-08' && params.Action) {
        return {...base, operation: `iam:${params.Action}`, params, protocol: 'iam'}
      }
    }

    for (const [method, pattern, name, keys] of GREENGRASS_ROUTES) {
      const m = pattern.exec(url.pathname)
      if (m && method === req.method) {
        const params = Object.fromEntries(keys.map((k, i) => [k, decodeURIComponent(m[i + 1])]))
        return {
          ...base,
          json: body ? JSON.parse(body) : undefined,
          operation: `greengrass:${name}`,
          params,
          protocol: 'greengrass',
        }
      }
    }

    return {...base, operation: 'other', protocol: 'other'}
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    const isProxyCandidate = !req.headers['x-amz-target'] && !url.pathname.startsWith('/greengrass/')
    // Bodies for S3 may be binary and large: buffer everything (test payloads are small).
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const raw = Buffer.concat(chunks)
    const wire = this.classify(req, raw.toString('utf8'), url)
    this.requests.push(wire)

    const left = this.throttles.get(wire.operation) ?? 0
    if (left > 0) {
      this.throttles.set(wire.operation, left - 1)
      this.reply(res, wire.protocol, throttleReply(wire.protocol))
      return
    }

    const handler = this.handlers.get(wire.operation)
    const reply = handler ? await handler(wire) : undefined
    if (reply?.raw) {
      reply.raw(res)
      return
    }

    if (reply) {
      this.reply(res, wire.protocol, reply)
      return
    }

    if (wire.protocol === 'other' && isProxyCandidate && this.proxyUrl) {
      this.forward(req, raw, res)
      return
    }

    this.reply(res, wire.protocol, {
      body:
        wire.protocol === 'iam'
          ? iamError('InternalFailure', `aws-wire: no handler for ${wire.operation}`).body
          : {__type: 'InternalFailure', message: `aws-wire: no handler for ${wire.operation}`},
      status: 500,
    })
  }

  private forward(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const target = this.proxyUrl!
    const upstream = httpRequest(
      {headers: req.headers, hostname: target.hostname, method: req.method, path: req.url, port: target.port},
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers)
        up.pipe(res)
      },
    )
    upstream.on('error', (error) => {
      if (!res.headersSent) res.writeHead(502)
      res.end(String(error))
    })
    upstream.end(body)
  }

  private reply(res: ServerResponse, protocol: Protocol, reply: WireReply): void {
    const status = reply.status ?? 200
    const defaults: Record<string, string> = {
      'content-type':
        protocol === 'iam' ? 'text/xml' : protocol === 'sagemaker' ? 'application/x-amz-json-1.1' : 'application/json',
      'x-amzn-requestid': 'c0ffee00-0000-4000-8000-000000000000',
    }
    const text = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body ?? {})
    res.writeHead(status, {...defaults, ...reply.headers, 'content-length': String(Buffer.byteLength(text))})
    res.end(text)
  }
}
