/**
 * The Greengrass IPC endpoint of `icc serve`: existing Lambda code that calls the connector through the
 * Greengrass Machine Learning SDK (`invoke_inference_service`) keeps working unchanged. The protocol (the Lambda
 * invoke API of the Greengrass V1 core's IPC daemon) is in ./ipc-protocol.ts, the handler that answers it in
 * ./ipc-endpoint.ts; this file listens: on loopback only, with the client limits of the native listeners, and
 * closes so that a GET still waiting for its result is answered first.
 */
import type {IncomingMessage, ServerResponse} from 'node:http'

import {UsageError} from '../errors.js'
import {DEFAULT_MAX_CONNECTIONS, limitedServer, type ListenerLimits} from './http-io.js'
import {ipcEndpoint, type IpcOptions} from './ipc-endpoint.js'

export {ipcEndpoint, type IpcEndpoint, type IpcOptions} from './ipc-endpoint.js'
export {
  type ClientContext,
  decodeClientContext,
  functionArn,
  generateAuthToken,
  GGC_INTERFACE_VERSION,
  HEADER_CLIENT_CONTEXT,
  HEADER_FUNCTION_ERROR,
  HEADER_INVOCATION_ID,
  HEADER_INVOCATION_TYPE,
  IPC_API_VERSION,
  lambdaEnvironment,
  MAX_CLIENT_CONTEXT_BYTES,
  type ParsedFunctionArn,
  parseFunctionArn,
  SUPPORTED_ALGO_TYPE,
} from './ipc-protocol.js'

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost'])

export interface IpcServerOptions extends IpcOptions {
  /** Loopback address to bind: 127.0.0.1 (default), ::1 or localhost. */
  host?: string
  /** Client timeouts and connection cap: those of the native listeners (default: theirs with a 30 s client timeout). */
  limits?: ListenerLimits
  /** TCP port; 0 (default) picks a free one. The ML SDK uses 8000 unless GG_DAEMON_PORT says otherwise. */
  port?: number
}

export interface IpcServer {
  /** Stop accepting calls, drop pending results, close the socket. */
  close(): Promise<void>
  host: string
  /** Results waiting to be fetched (for diagnostics and tests). */
  pendingResults(): number
  port: number
}

/** Start the IPC endpoint on its own loopback listener (`icc serve --ipc-port`). */
export async function startIpcServer(options: IpcServerOptions): Promise<IpcServer> {
  const host = options.host ?? '127.0.0.1'
  if (!LOOPBACK_HOSTS.has(host)) {
    throw new UsageError('IPC_NOT_LOOPBACK', `the Greengrass IPC endpoint binds loopback only, not ${host}`, {
      suggestions: ['use 127.0.0.1 (default) or ::1'],
    })
  }

  const endpoint = ipcEndpoint(options)
  // answers being worked on; when the endpoint closes, they close their connection as they finish
  const active = new Map<ServerResponse, IncomingMessage>()
  let closing = false
  // Lambda code calls at its own pace: an idle connection is kept for a while, so that the next call does not
  // connect again (the client replaces one that the endpoint closed just as it was reused)
  const limits = options.limits ?? {
    clientTimeoutMs: 30_000,
    maxConnections: DEFAULT_MAX_CONNECTIONS,
    requestTimeoutMs: 30_000 + 60_000,
  }
  const server = limitedServer(limits, (req, res) => {
    if (closing) res.shouldKeepAlive = false
    active.set(res, req)
    res.once('close', () => active.delete(res))
    endpoint.handle(req, res)
  })
  server.keepAliveTimeout = 72_000
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({host, port: options.port ?? 0}, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (error) {
    endpoint.dispose()
    throw new UsageError(
      'IPC_LISTEN_FAILED',
      `cannot listen on ${host}:${options.port ?? 0} for the Greengrass IPC endpoint: ${(error as Error).message}`,
      {cause: error, suggestions: ['choose another --ipc-port, or stop the process that holds it']},
    )
  }

  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : (options.port ?? 0)
  let closed: Promise<void> | undefined
  return {
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing = true
        endpoint.dispose()
        // idle kept-alive connections are closed at once, and so is an upload still under way (its POST would be
        // refused now); a GET still waiting for its result is answered first, and its connection closed after it
        for (const [res, req] of active) {
          res.shouldKeepAlive = false
          if (!req.complete) req.socket.destroy()
        }

        server.close(() => resolve())
        server.closeIdleConnections()
      })
      return closed
    },
    host,
    pendingResults: endpoint.pending,
    port,
  }
}
