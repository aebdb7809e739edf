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
 * answers and closes the connection. A body with a Content-Length is copied into one buffer of that size as it
 * arrives (each chunk is garbage at once; no second copy at the end): a host holding many big bodies needs about
 * their size, not twice it, and gives it back whole (see {@link ByteBudget}).
 */
export async function readBody(req: IncomingMessage, limit: number): Promise<'aborted' | 'too-large' | Buffer> {
  const declared = Number(req.headers['content-length'])
  if (declared > limit) return 'too-large'
  sendContinue(req)
  return new Promise((resolve) => {
    const into = Number.isSafeInteger(declared) && declared > 0 ? Buffer.allocUnsafeSlow(declared) : undefined
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
      if (size + chunk.length > (into?.length ?? limit)) {
        chunks.length = 0
        finish('too-large')
        return
      }

      if (into) chunk.copy(into, size)
      else chunks.push(chunk)
      size += chunk.length
    })
    const whole = () => {
      if (into) return size === into.length ? into : 'aborted'
      return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)
    }

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

/** Bytes given back since the last release after which an idle host releases memory (see {@link ByteBudget}). */
export const RELEASE_AFTER_BYTES = 64 * 1024 * 1024
/** How long the budget must stay empty, with no request taking from it, before that release. */
export const RELEASE_IDLE_MS = 1000

/**
 * The bytes of request bodies a host holds at once (being read, queued, running), across its listeners: a request
 * reserves its declared Content-Length (the body limit when it declares none) before its body is read, and gives
 * it back when its answer is done; one that does not fit is refused at once (OVERLOADED), unread.
 *
 * Memory given back when idle: the bodies' buffers live outside the JS heap, and a host that goes idle after big
 * uploads allocates nothing more that would make V8 collect them, so it kept them (measured: 600 MB after 25 s
 * idle). Once {@link RELEASE_AFTER_BYTES} have been given back and the budget has stayed empty for
 * {@link RELEASE_IDLE_MS}, `release` (a full garbage collection, ./tuning.ts) runs once.
 */
export class ByteBudget {
  private given = 0
  private held = 0
  private takes = 0
  private timer?: NodeJS.Timeout

  constructor(
    readonly limit: number,
    private readonly release?: () => void,
  ) {}

  get used(): number {
    return this.held
  }

  give(bytes: number): void {
    this.held -= bytes
    this.given += bytes
    if (this.held === 0 && this.given >= RELEASE_AFTER_BYTES && this.release && !this.timer) this.releaseWhenIdle()
  }

  take(bytes: number): boolean {
    if (this.held + bytes > this.limit) return false
    this.held += bytes
    this.takes++
    return true
  }

  private releaseWhenIdle(): void {
    const {takes} = this
    this.timer = setTimeout(() => {
      this.timer = undefined
      // a request came (and maybe went) meanwhile: not idle; the next time the budget empties tries again
      if (this.held !== 0 || this.takes !== takes) return
      this.given = 0
      this.release!()
    }, RELEASE_IDLE_MS)
    this.timer.unref()
  }
}
