/**
 * The Greengrass IPC listener has the native listener's client timeouts and connection cap (issue 21, item 13),
 * against the real `icc serve`: a connection that sends nothing, headers that never finish, a refused (401) call
 * with a trickled body, and more connections than `--max-connections`; the native socket keeps serving.
 */
import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import {connect, type Socket} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {writeTinyOnnxModel} from '../helpers/onnx-tiny.js'
import {
  closedWithin as closedAt,
  http,
  noiseImage,
  type RunningHost,
  startServe,
  waitFor,
} from '../helpers/serve-host.js'

const ARN = 'arn:aws:lambda:us-east-1:aws:function:GG-ML-INF-image-classification-imageClassification'

describe('gauntlet: limits of the Greengrass IPC listener', function () {
  this.timeout(120_000)
  let dir: string
  let host: RunningHost
  let ipcPort: number

  const closedWithin = async (payload: string, limitMs: number) => closedAt(ipcPort, payload, limitMs)

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'icc-ipc-limits-'))
    const model = await writeTinyOnnxModel(join(dir, 'model.onnx'))
    host = await startServe(
      [
        '--model',
        model,
        '--client-timeout-seconds',
        '5',
        '--timeout-seconds',
        '2',
        '--max-connections',
        '40',
        '--ipc-port',
        '0',
        '--ipc-auth-token',
        'ipc-limits-token',
        '--region',
        'us-east-1',
        '--json',
      ],
      {socket: join(dir, 'icc.sock')},
    )
    ipcPort = JSON.parse(host.stdout().split('\n')[0]).ipc.port
  })

  after(async () => {
    await host?.stop()
    await rm(dir, {force: true, recursive: true})
  })

  it('closes a silent connection and unfinished headers after --client-timeout-seconds', async () => {
    const [silent, headers] = await Promise.all([
      closedWithin('', 20_000),
      closedWithin(`POST /2016-11-01/functions/${ARN} HTTP/1.1\r\nHost: x\r\n`, 20_000),
    ])
    assert.ok(silent.ms >= 4500, `closed after ${silent.ms} ms`)
    assert.ok(headers.ms >= 4500, `closed after ${headers.ms} ms`)
  })

  it('answers 401 to a call without a token and closes the connection without waiting for its body', async () => {
    const refused = await closedWithin(
      `POST /2016-11-01/functions/${ARN} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n0123456789`,
      20_000,
    )
    assert.match(refused.reply, /^HTTP\/1\.1 401/)
    // well before the client timeout (5 s), let alone the request timeout (7 s)
    assert.ok(refused.ms < 4500, `closed after ${refused.ms} ms`)
  })

  it('closes connections beyond --max-connections at once; the native socket serves meanwhile', async () => {
    let closed = 0
    const open: Socket[] = []
    try {
      for (let i = 0; i < 60; i++) {
        const s = connect(ipcPort, '127.0.0.1')
        s.on('error', () => {})
        s.once('close', () => closed++)
        open.push(s)
      }

      // before the 5 s client timeout closes the others
      await waitFor(async () => closed >= 20, 4000, 'the 20 connections beyond the cap to be closed')
      const r = await http({socket: host.socket}, 'POST', '/invocations', await noiseImage('jpeg'), {
        'content-type': 'image/jpeg',
      })
      assert.equal(r.status, 200, r.body)
    } finally {
      for (const s of open) s.destroy()
    }
  })
})
