/**
 * A lean HTTP/1.1 client for the benchmarks: keep-alive connections over a unix socket or TCP, a pool of them for
 * concurrent callers, one `writev` per request (head + body), and answers read by `Content-Length`. It drives the
 * native API (POST /invocations) and the Greengrass IPC protocol (POST, then GET by invocation id).
 *
 * Why not node:http: on a 2-core machine the benchmark client shares the CPU with the server it measures. Node's
 * client (agent, streams, header objects, events) costs ~0.5 ms of CPU per request here, which ONNX Runtime then
 * lacks, and which the in-process baseline never pays; this one costs a fraction of that, so the figures say more
 * about `icc serve` and less about the client. `npm run bench -- --client node` measures with node:http instead.
 *
 * What it checks of every answer: the status line, a `Content-Length` (chunked answers are refused, `icc serve`
 * never sends them), and the body's length. The caller checks the body.
 */
import {connect, type Socket} from 'node:net'

export interface LeanAnswer {
  body: Buffer
  /** The status line and headers, as they came (latin1), for a caller that needs a header. */
  head: string
  status: number
}

type Target = {socket: string} | {host: string; port: number}

const HEAD_END = Buffer.from('\r\n\r\n')

class Connection {
  /** Set once the connection has carried an answer: a failure before the next answer's first byte is retried. */
  used = false
  /** What has arrived of the answer being read. */
  private buffered?: Buffer
  private closed = false
  private pending?: {reject(e: Error): void; resolve(a: LeanAnswer): void}
  private readonly socket: Socket

  constructor(target: Target) {
    this.socket = 'socket' in target ? connect({path: target.socket}) : connect({host: target.host, port: target.port})
    this.socket.setNoDelay(true)
    this.socket.on('data', (c: Buffer) => this.onData(c))
    this.socket.on('error', (e) => this.fail(e))
    this.socket.on('close', () => this.fail(new Error('the server closed the connection')))
  }

  get alive(): boolean {
    return !this.closed
  }

  close(): void {
    this.closed = true
    this.socket.destroy()
  }

  send(head: Buffer, body?: Buffer): Promise<LeanAnswer> {
    return new Promise((resolve, reject) => {
      this.pending = {reject, resolve}
      this.buffered = undefined
      if (!body) {
        this.socket.write(head)
        return
      }

      this.socket.cork()
      this.socket.write(head)
      this.socket.write(body)
      this.socket.uncork()
    })
  }

  private fail(error: Error): void {
    this.closed = true
    const p = this.pending
    this.pending = undefined
    p?.reject(Object.assign(error, {beforeAnswer: this.buffered === undefined}))
  }

  private onData(chunk: Buffer): void {
    const all = this.buffered ? Buffer.concat([this.buffered, chunk]) : chunk
    this.buffered = all
    const end = all.indexOf(HEAD_END)
    if (end === -1) return
    const head = all.toString('latin1', 0, end)
    const length = /\r\ncontent-length: *(\d+)/i.exec(head)
    if (!length) {
      this.fail(new Error(`answer without Content-Length (chunked answers are not read here): ${head}`))
      this.socket.destroy()
      return
    }

    const total = end + 4 + Number(length[1])
    if (all.length < total) return
    const p = this.pending
    this.pending = undefined
    this.buffered = undefined
    this.used = true
    if (/\r\nconnection: *close/i.test(head)) this.close()
    p?.resolve({body: all.subarray(end + 4, total), head, status: Number(head.slice(9, 12))})
  }
}

/** A pool of keep-alive connections to one target: a request takes an idle one or opens another. */
export class LeanHttp {
  private readonly idle: Connection[] = []

  constructor(private readonly target: Target) {}

  close(): void {
    for (const c of this.idle.splice(0)) c.close()
  }

  /** A function that POSTs `body` to `path` (the request head is built once). */
  poster(path: string, body: Buffer, contentType: string): () => Promise<LeanAnswer> {
    const head = Buffer.from(
      `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: ${contentType}\r\nContent-Length: ${body.length}\r\n\r\n`,
      'latin1',
    )
    return () => this.send(head, body)
  }

  /**
   * Send one request (`head`: request line and headers, ending with the blank line; `body` as its Content-Length
   * says) and read its answer; a kept-alive connection that the server closed meanwhile is replaced once,
   * transparently.
   */
  async send(head: Buffer, body?: Buffer): Promise<LeanAnswer> {
    for (;;) {
      let c = this.idle.pop()
      while (c && !c.alive) c = this.idle.pop()
      const conn = c ?? new Connection(this.target)
      try {
        const answer = await conn.send(head, body)
        if (conn.alive) this.idle.push(conn)
        return answer
      } catch (error) {
        // the keep-alive race: the server closed an idle connection just as it was taken
        if (!(conn.used && (error as {beforeAnswer?: boolean}).beforeAnswer)) throw error
      }
    }
  }
}
