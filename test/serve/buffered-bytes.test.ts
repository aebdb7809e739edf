/**
 * Host memory bounded by bytes (issue 21, item 3), against the real `icc serve`: with `--max-buffered-bytes` room
 * for two bodies, a third request while two are held (one running, one queued) gets 503 OVERLOADED with
 * Retry-After at once, unread; the bytes are given back when the answers are done, and the next request is served.
 * A client that sends `Expect: 100-continue` (issue 21, item 14) is refused from its headers, without a
 * `100 Continue` first, when its Content-Length is over the body limit or the budget; otherwise it gets one.
 */
import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import {connect} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {writeTinyOnnxModel} from '../helpers/onnx-tiny.js'
import {http, noiseImage, type RunningHost, startServe, waitFor, withFault} from '../helpers/serve-host.js'

/**
 * Send a request head with `Expect: 100-continue` on a raw connection and read what comes back until `until` matches
 * (or the server closes); with `body`, the body is sent once `100 Continue` arrives.
 */
async function expectContinue(
  target: {port: number} | {socket: string},
  head: string,
  until: RegExp,
  body?: Buffer,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = 'socket' in target ? connect(target.socket) : connect(target.port, '127.0.0.1')
    let reply = ''
    let sent = false
    const timer = setTimeout(() => {
      sock.destroy()
      reject(new Error(`no answer matching ${until} in time; got ${JSON.stringify(reply)}`))
    }, 30_000)
    const done = () => {
      clearTimeout(timer)
      sock.destroy()
      resolve(reply)
    }

    sock.on('data', (d: Buffer) => {
      reply += d.toString('latin1')
      if (body && !sent && reply.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) {
        sent = true
        sock.write(body)
      }

      if (until.test(reply)) done()
    })
    sock.on('close', done)
    sock.on('error', () => {})
    sock.write(`${head}Expect: 100-continue\r\n\r\n`, 'latin1')
  })
}

describe('icc serve: --max-buffered-bytes', function () {
  this.timeout(120_000)
  let dir: string
  let host: RunningHost
  let jpeg: Buffer

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'icc-buffered-'))
    const model = await writeTinyOnnxModel(join(dir, 'model.onnx'))
    jpeg = await noiseImage('jpeg', 320, 240)
    const room = Math.floor(jpeg.length * 2.5)
    host = await startServe(
      [
        '--model',
        model,
        '--max-buffered-bytes',
        String(room),
        '--pipeline-depth',
        '1',
        '--max-batch',
        '1',
        '--ipc-port',
        '0',
        '--ipc-auth-token',
        'buffered-token',
        '--region',
        'us-east-1',
        '--json',
      ],
      {faults: true, socket: join(dir, 'icc.sock')},
    )
  })

  after(async () => {
    await host?.stop()
    await rm(dir, {force: true, recursive: true})
  })

  it('refuses a body beyond the bytes held with 503 OVERLOADED + Retry-After (native and IPC); serves again once they are given back', async () => {
    const sock = {socket: host.socket}
    const post = async (hook?: string) =>
      http(sock, 'POST', '/invocations', hook ? withFault(jpeg, hook) : jpeg, {'content-type': 'image/jpeg'})
    const depth = async (n: number) =>
      waitFor(async () =>
        new RegExp(`icc_queue_depth\\{[^}]*\\} ${n}$`, 'm').test((await http(sock, 'GET', '/metrics')).body),
      )
    const running = post('sleep:1500')
    await depth(1)
    const queued = post()
    await depth(2)
    const refused = await post()
    assert.equal(refused.status, 503, refused.body)
    assert.equal(refused.json().error.code, 'OVERLOADED')
    assert.match(refused.json().error.message, /--max-buffered-bytes/)
    assert.equal(refused.headers['retry-after'], '1')
    // the Greengrass IPC endpoint takes from the same budget
    const ipcPort = JSON.parse(host.stdout().split('\n')[0]).ipc.port
    const arn = 'arn:aws:lambda:us-east-1:aws:function:GG-ML-INF-image-classification-imageClassification'
    const ipc = await http({url: `http://127.0.0.1:${ipcPort}`}, 'POST', `/2016-11-01/functions/${arn}`, jpeg, {
      authorization: 'buffered-token',
    })
    assert.equal(ipc.status, 503, ipc.body)
    assert.equal(ipc.headers['retry-after'], '1')
    assert.equal((await running).status, 200)
    assert.equal((await queued).status, 200)
    assert.equal((await post()).status, 200)
  })

  it('answers Expect: 100-continue over the body limit or the budget with 413 / 503 and no 100 Continue first', async () => {
    const head = (path: string, bytes: number, extra = '') =>
      `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: ${bytes}\r\n${extra}`
    const sock = {socket: host.socket}
    // over the body limit (20 MiB by default): 413 from the headers alone
    const huge = await expectContinue(sock, head('/invocations', 100 * 1024 * 1024), /\r\n\r\n[^]*\}/)
    assert.match(huge, /^HTTP\/1\.1 413 /, huge)
    assert.match(huge, /BODY_TOO_LARGE/)
    // under the body limit, over --max-buffered-bytes: 503 OVERLOADED
    const over = await expectContinue(sock, head('/invocations', jpeg.length * 3), /\r\n\r\n[^]*\}/)
    assert.match(over, /^HTTP\/1\.1 503 /, over)
    assert.match(over, /OVERLOADED/)
    // the Greengrass IPC endpoint likewise
    const ipcPort = JSON.parse(host.stdout().split('\n')[0]).ipc.port
    const arn = 'arn:aws:lambda:us-east-1:aws:function:GG-ML-INF-image-classification-imageClassification'
    const ipcHead = (bytes: number) => head(`/2016-11-01/functions/${arn}`, bytes, 'Authorization: buffered-token\r\n')
    const ipcHuge = await expectContinue({port: ipcPort}, ipcHead(100 * 1024 * 1024), /\r\n\r\n[^]*\}/)
    assert.match(ipcHuge, /^HTTP\/1\.1 413 /, ipcHuge)
    const ipcOver = await expectContinue({port: ipcPort}, ipcHead(jpeg.length * 3), /\r\n\r\n[^]*\}/)
    assert.match(ipcOver, /^HTTP\/1\.1 503 /, ipcOver)
    // a body that fits gets `100 Continue`, then its answer
    const ok = await expectContinue(sock, head('/invocations', jpeg.length), /HTTP\/1\.1 200 [^]*\]$/, jpeg)
    assert.match(ok, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /, ok)
  })
})
