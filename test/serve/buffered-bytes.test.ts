/**
 * Host memory bounded by bytes (issue 21, item 3), against the real `icc serve`: with `--max-buffered-bytes` room
 * for two bodies, a third request while two are held (one running, one queued) gets 503 OVERLOADED with
 * Retry-After at once, unread; the bytes are given back when the answers are done, and the next request is served.
 */
import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {writeTinyOnnxModel} from '../helpers/onnx-tiny.js'
import {http, noiseImage, type RunningHost, startServe, waitFor, withFault} from '../helpers/serve-host.js'

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
})
