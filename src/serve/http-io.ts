/**
 * The node:http plumbing that both inference front ends of `icc serve` (the native invocation route,
 * ./invocations.ts, and the Greengrass IPC endpoint, ./ipc.ts) share, kept off any web framework: their listeners,
 * made with the same client timeouts and connection cap ({@link limitedServer}); reading a size-limited body, and
 * writing a JSON answer in one go, on every request.
 */
import type {Socket} from 'node:net'

import {createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse} from 'node:http'

/** What every listener of `icc serve` allows a client (native socket, TCP, Greengrass IPC). */
export interface ListenerLimits {
  /** The request headers must arrive within this many ms of the connection (or of the previous request). */
  clientTimeoutMs: number
  /** Open connections at once; beyond, new ones are closed at once (so idle ones cannot use up descriptors). */
  maxConnections: number
  /** The whole request (headers and body) within this many ms (the client timeout plus the longest service's). */
  requestTimeoutMs: number
}

/** Default of `--max-connections`, per listener. */
export const DEFAULT_MAX_CONNECTIONS = 1024

/**
 * A node:http server with these limits. Node's header timeout starts with the first byte, so a connection that
 * never sends one is closed here after `clientTimeoutMs`; its first request lifts that (keep-alive idleness after
 * it is the server's keepAliveTimeout). Expired requests are found by a check every quarter of the timeout.
 */
export function limitedServer(limits: ListenerLimits, handler: RequestListener): Server {
  const {clientTimeoutMs} = limits
  const server = createServer(
    {
      connectionsCheckingInterval: Math.min(30_000, Math.max(250, Math.floor(clientTimeoutMs / 4))),
      headersTimeout: clientTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
    },
    handler,
  )
  server.maxConnections = limits.maxConnections
  // a client that half-closes its connection after its request still gets the answer (see probeHalfClosed)
  // (node:http's own switch, not in its type definitions)
  ;(server as Server & {httpAllowHalfOpen: boolean}).httpAllowHalfOpen = true
  server.on('connection', (socket: Socket) => {
    socket.setTimeout(clientTimeoutMs, () => socket.destroy())
  })
  server.on('request', (req: IncomingMessage) => {
    req.socket.setTimeout(0)
  })
  // `Expect: 100-continue`: node:http would write `100 Continue` before the handler sees the request; here the
  // handler decides (a body over the limit or the byte budget is refused without it), see {@link sendContinue}
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    req.socket.setTimeout(0)
    awaitingContinue.set(req, res)
    handler(req, res)
  })
  return server
}

/** Requests whose client waits for `100 Continue` before it sends the body. */
const awaitingContinue = new WeakMap<IncomingMessage, ServerResponse>()

/**
 * Tell a client that sent `Expect: 100-continue` to send its body (once; nothing for other requests). Called when
 * the body is about to be read, after every check that can refuse the request from its headers.
 */
export function sendContinue(req: IncomingMessage): void {
  const res = awaitingContinue.get(req)
  if (!res) return
  awaitingContinue.delete(req)
  if (!res.headersSent && !res.destroyed) res.writeContinue()
}

/**
 * The whole body as one buffer; 'too-large' when the declared Content-Length is over `limit` (nothing is read, and
 * a client waiting for `100 Continue` does not get it) or as soon as the bytes that arrive pass it (what was read
 * is dropped and the rest is not kept); 'aborted' when the client goes away first. After 'too-large' the caller
 * answers and closes the connection.
 */
export async function readBody(req: IncomingMessage, limit: number): Promise<'aborted' | 'too-large' | Buffer> {
  if (Number(req.headers['content-length']) > limit) return 'too-large'
  sendContinue(req)
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    let size = 0
    let settled = false
    const finish = (value: 'aborted' | 'too-large' | Buffer) => {
      if (settled) return
      settled = true
      resolve(value)
    }

    req.on('data', (chunk: Buffer) => {
      if (settled) return
      size += chunk.length
      if (size > limit) {
        chunks.length = 0
        finish('too-large')
        return
      }

      chunks.push(chunk)
    })
    const whole = () => (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size))
    req.on('end', () => finish(whole()))
    req.on('error', () => finish('aborted'))
    req.on('close', () => finish(req.complete ? whole() : 'aborted'))
  })
}

/**
 * Answer with a JSON text (status, Content-Length, Content-Type and any `extra` headers in one head); nothing when
 * an answer was already sent or the client is gone.
 */
export function sendJson(
  res: ServerResponse,
  status: number,
  text: string,
  extra: Record<string, string> = {},
  contentType = 'application/json; charset=utf-8',
): void {
  if (res.headersSent || res.destroyed) return
  res.writeHead(status, {'content-length': Buffer.byteLength(text), 'content-type': contentType, ...extra})
  res.end(text)
}

/**
 * A client may half-close its connection once its request is sent and still wait for the answer, so the listeners
 * keep half-closed connections open (and answer on them). A client that went away altogether sends the same end of
 * stream: when it arrives before the answer, `102 Processing` is written (twice: on TCP the first write to a closed
 * peer only brings back a reset); on a closed connection that write fails, the response closes, and the request's
 * client-gone signal fires. A client still there reads a 1xx, which HTTP/1.1 clients skip.
 */
export function probeHalfClosed(req: IncomingMessage, res: ServerResponse): void {
  const {socket} = req
  if (req.httpVersionMinor < 1 && req.httpVersionMajor < 2) return
  const probe = () => {
    const write = () => {
      if (!res.headersSent && !res.destroyed) res.writeProcessing()
    }

    write()
    setTimeout(write, 50).unref()
  }

  if (socket.readableEnded) {
    probe()
    return
  }

  socket.once('end', probe)
  res.once('close', () => socket.off('end', probe))
}

/** Default of `--max-buffered-bytes`: what a 1 GB device can hold in request bodies beside the runners. */
export const DEFAULT_MAX_BUFFERED_BYTES = 256 * 1024 * 1024

/**
 * The bytes of request bodies a host holds at once (being read, queued, running), across its listeners: a request
 * reserves its declared Content-Length (the body limit when it declares none) before its body is read, and gives
 * it back when its answer is done; one that does not fit is refused at once (OVERLOADED), unread.
 */
export class ByteBudget {
  private held = 0

  constructor(readonly limit: number) {}

  get used(): number {
    return this.held
  }

  give(bytes: number): void {
    this.held -= bytes
  }

  take(bytes: number): boolean {
    if (this.held + bytes > this.limit) return false
    this.held += bytes
    return true
  }
}
