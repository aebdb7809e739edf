/**
 * The listeners of the `icc serve` host: the node:http servers every request arrives on (the unix socket and the
 * optional TCP port), each with the client limits of ./http-io.ts, the invocation route first (the hot path,
 * ./invocations.ts) and the framework's router for the rest (./routes.ts); the TCP listener's bearer-token guard,
 * the fail-fast check that a TCP port is free before any runner starts, and the listeners' warm-up before the
 * host says it is ready.
 */
import {type FastifyInstance} from 'fastify'
import {chmod} from 'node:fs/promises'
import {type IncomingMessage, request, type Server, type ServerResponse} from 'node:http'
import {createServer} from 'node:net'

import {IccError, UsageError} from '../errors.js'
import {limitedServer, type ListenerLimits, sendContinue, sendJson} from './http-io.js'
import {tokenChecker} from './tokens.js'

type Handler = (req: IncomingMessage, res: ServerResponse) => void
type Guard = (req: IncomingMessage, res: ServerResponse) => boolean

export interface HostAddresses {
  socket?: string
  tcp?: {host: string; port: number; url: string}
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host)
}

/** A check of `Authorization: Bearer <token>`: false (401 sent, connection closed) when it is missing or wrong. */
export function bearerGuard(token: string): Guard {
  const isToken = tokenChecker(token)
  return (req, res) => {
    const given = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1]
    if (isToken(given)) return true
    const message = 'This TCP listener needs "Authorization: Bearer <token>" (the token of --auth-token-file).'
    sendJson(res, 401, JSON.stringify({error: {code: 'UNAUTHORIZED', message}}), {
      connection: 'close',
      'www-authenticate': 'Bearer',
    })
    return false
  }
}

/** A TCP port someone else listens on fails fast (PORT_IN_USE, exit 2), before any runner starts. */
export async function assertPortFree(host: string, port: number, flag: string): Promise<void> {
  const probe = createServer()
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject)
      probe.listen({exclusive: true, host, port}, () => resolve())
    })
  } catch (error) {
    const e = error as NodeJS.ErrnoException
    if (e.code === 'EADDRINUSE') {
      throw new UsageError(
        'PORT_IN_USE',
        `TCP port ${port} on ${host} (${flag}) is already in use by another server.`,
        {
          details: {host, port},
          suggestions: [`Stop it, or pass ${flag} with another port (0: any free one).`],
        },
      )
    }

    throw new UsageError('LISTEN_FAILED', `icc serve cannot listen on ${host}:${port} (${flag}): ${e.message}`, {
      suggestions: [`Pass ${flag} with another port, or another --host.`],
    })
  } finally {
    await new Promise((resolve) => {
      probe.close(resolve)
    })
  }
}

export interface ListenerOptions {
  /** The invocation route: false, having done nothing, for a request that is not an invocation. */
  invocations: (req: IncomingMessage, res: ServerResponse) => boolean
  limits: ListenerLimits
  /** A request the TCP guard refused. */
  onUnauthorized: () => void
}

/** A listener: the guard (TCP with a token), then the invocation route, then `route` (the framework's router). */
export function hostListener(options: ListenerOptions, route: Handler, guard?: Guard): Server {
  return limitedServer(options.limits, (req, res) => {
    if (guard && !guard(req, res)) {
      options.onUnauthorized()
      return
    }

    if (options.invocations(req, res)) return
    // the framework reads the bodies of its routes itself: a client waiting for `100 Continue` gets it here
    sendContinue(req)
    route(req, res)
  })
}

export interface OpenOptions extends ListenerOptions {
  /** TCP listener: Bearer token asked on every route. */
  authToken?: string
  /** TCP host (default 127.0.0.1). */
  host?: string
  /** TCP port (0: any free one); undefined: no TCP listener. */
  port?: number
  /** The unix socket path, already checked by ./paths.ts prepareSocketPath; undefined: none. */
  socketPath?: string
  /** Warnings for the user (a TCP listener reachable from other machines). */
  warnings: string[]
}

/**
 * Listen: the framework's own server (made by `serverFactory` with {@link hostListener}) on the unix socket (mode
 * 0660), a second server of the same kind on TCP. Any failure closes what was opened and is LISTEN_FAILED (exit 2).
 */
export async function openListeners(
  app: FastifyInstance,
  options: OpenOptions,
): Promise<{addresses: HostAddresses; tcpServer?: Server}> {
  const addresses: HostAddresses = {}
  let tcpServer: Server | undefined
  try {
    await app.ready()
    if (options.socketPath) {
      await app.listen({path: options.socketPath})
      await chmod(options.socketPath, 0o660)
      addresses.socket = options.socketPath
    }

    if (options.port !== undefined) {
      const host = options.host ?? '127.0.0.1'
      if (!isLoopback(host)) {
        options.warnings.push(
          `TCP listener on ${host} is reachable from other machines (every request needs the token).`,
        )
      }

      const routed: Handler = (req, res) => app.routing(req, res)
      tcpServer = hostListener(options, routed, options.authToken ? bearerGuard(options.authToken) : undefined)
      addresses.tcp = await listenTcp(tcpServer, host, options.port)
    }
  } catch (error) {
    await app.close().catch(() => {})
    tcpServer?.close()
    if (error instanceof IccError) throw error
    throw new UsageError('LISTEN_FAILED', `icc serve cannot listen: ${(error as Error).message}`, {
      suggestions: ['Pick another --socket path or --port.'],
    })
  }

  return {addresses, tcpServer}
}

async function listenTcp(server: Server, host: string, port: number): Promise<NonNullable<HostAddresses['tcp']>> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve())
  })
  const addr = server.address() as {port: number}
  const urlHost = host.includes(':') ? `[${host}]` : host
  return {host, port: addr.port, url: `http://${urlHost}:${addr.port}`}
}

/**
 * Warm the listeners' request path up before the host says it is ready: one `GET /ping` of the host to itself (its
 * unix socket, else its TCP listener with the token), so that the first client does not pay for the first use of
 * node:http's server (parser, response writer), the invocation route's check and the router. /ping is no
 * invocation: nothing counts it or logs it. Its answer is dropped; a failure only leaves the path cold.
 */
export async function warmUpListener(addresses: HostAddresses, authToken?: string): Promise<boolean> {
  const target = addresses.socket
    ? {socketPath: addresses.socket}
    : addresses.tcp && {host: addresses.tcp.host, port: addresses.tcp.port}
  if (!target) return false
  return new Promise<boolean>((resolve) => {
    const req = request(
      {
        ...target,
        agent: false,
        headers: authToken ? {authorization: `Bearer ${authToken}`} : {},
        method: 'GET',
        path: '/ping',
        timeout: 5000,
      },
      (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode === 200))
        res.on('error', () => resolve(false))
      },
    )
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(false))
    req.end()
  })
}
