/**
 * The two pieces of node:http plumbing that both inference front ends of `icc serve` (the native invocation route,
 * ./invocations.ts, and the Greengrass IPC endpoint, ./ipc.ts) run on every request, kept off any web framework:
 * reading a size-limited body, and writing a JSON answer in one go.
 */
import type {IncomingMessage, ServerResponse} from 'node:http'

/**
 * The whole body as one buffer; 'too-large' when the declared Content-Length is over `limit` (nothing is read)
 * or as soon as the bytes that arrive pass it (what was read is dropped and the rest is not kept); 'aborted' when
 * the client goes away first. After 'too-large' the caller answers and closes the connection.
 */
export async function readBody(req: IncomingMessage, limit: number): Promise<'aborted' | 'too-large' | Buffer> {
  if (Number(req.headers['content-length']) > limit) return 'too-large'
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
