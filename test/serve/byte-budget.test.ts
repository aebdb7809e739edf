// @tier unit: needs neither ../shared nor child processes (npm run test:unit)
/**
 * The host's byte budget (src/serve/http-io.ts ByteBudget) and body reading: memory is given back once the host
 * goes idle after big uploads (issue 21, item 3; the RSS figures are in `npm run soak`, test/bench/uploads.ts); bodies
 * with and without a Content-Length are read whole, on a real node:http server.
 */
import assert from 'node:assert/strict'
import {request, type Server} from 'node:http'

import {ByteBudget, limitedServer, readBody, RELEASE_AFTER_BYTES, RELEASE_IDLE_MS} from '../../src/serve/http-io.js'

const MB = 1024 * 1024
const later = async (ms: number) =>
  new Promise((r) => {
    setTimeout(r, ms)
  })

describe('ByteBudget: memory given back when idle', function () {
  this.timeout(30_000)

  it('releases once after enough bytes were given back and the budget stayed empty', async () => {
    let released = 0
    const budget = new ByteBudget(256 * MB, () => released++)
    assert.ok(budget.take(RELEASE_AFTER_BYTES / 2))
    assert.ok(budget.take(RELEASE_AFTER_BYTES / 2))
    budget.give(RELEASE_AFTER_BYTES / 2)
    budget.give(RELEASE_AFTER_BYTES / 2)
    assert.equal(released, 0, 'released before the host was idle')
    await later(RELEASE_IDLE_MS * 3)
    assert.equal(released, 1)
    // nothing given back since: no second release
    await later(RELEASE_IDLE_MS * 2)
    assert.equal(released, 1)
  })

  it('does not release while requests come, nor after fewer bytes', async () => {
    let released = 0
    const budget = new ByteBudget(256 * MB, () => released++)
    budget.take(RELEASE_AFTER_BYTES)
    budget.give(RELEASE_AFTER_BYTES)
    // a request comes and goes before the budget has been empty for RELEASE_IDLE_MS
    budget.take(1)
    budget.give(1)
    await later(RELEASE_IDLE_MS * 3)
    assert.equal(released, 0, 'released although a request came')
    const small = new ByteBudget(256 * MB, () => released++)
    small.take(MB)
    small.give(MB)
    await later(RELEASE_IDLE_MS * 3)
    assert.equal(released, 0, 'released after 1 MB')
    // the busy budget releases the next time it empties and stays so
    budget.take(1)
    budget.give(1)
    await later(RELEASE_IDLE_MS * 3)
    assert.equal(released, 1)
  })
})

describe('readBody', function () {
  this.timeout(30_000)
  let server: Server
  let port: number
  const bodies: (Buffer | string)[] = []

  before(async () => {
    const limits = {clientTimeoutMs: 10_000, maxConnections: 16, requestTimeoutMs: 20_000}
    server = limitedServer(limits, async (req, res) => {
      const body = await readBody(req, 4 * MB)
      bodies.push(body)
      res.end(typeof body === 'string' ? body : String(body.length))
    })
    await new Promise<void>((resolve) => {
      server.listen(0, '127.0.0.1', resolve)
    })
    port = (server.address() as {port: number}).port
  })

  after(async () => {
    await new Promise((r) => {
      server.close(r)
    })
  })

  const send = async (chunks: Buffer[], headers: Record<string, number | string>) =>
    new Promise<string>((resolve, reject) => {
      const req = request({headers, host: '127.0.0.1', method: 'POST', path: '/', port}, (res) => {
        let text = ''
        res.on('data', (d: Buffer) => {
          text += d.toString()
        })
        res.on('end', () => resolve(text))
      })
      req.on('error', reject)
      for (const c of chunks) req.write(c)
      req.end()
    })

  it('reads a declared body into one buffer of its size, and a chunked one whole', async () => {
    const parts = [Buffer.alloc(100_000, 1), Buffer.alloc(200_000, 2), Buffer.alloc(3, 3)]
    const whole = Buffer.concat(parts)
    assert.equal(await send(parts, {'content-length': whole.length}), String(whole.length))
    const declared = bodies.at(-1) as Buffer
    assert.ok(declared.equals(whole))
    assert.equal(await send(parts, {'transfer-encoding': 'chunked'}), String(whole.length))
    assert.ok((bodies.at(-1) as Buffer).equals(whole))
    assert.equal(await send([Buffer.alloc(5 * MB)], {'transfer-encoding': 'chunked'}), 'too-large')
  })
})
