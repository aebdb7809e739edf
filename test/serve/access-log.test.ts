/**
 * The logs of `icc serve` with the real binary: one access line per request (native HTTP and the Greengrass IPC
 * endpoint) with its service, transport, status, error code, bytes in, timings and batch; `--access-log off`;
 * `--log-format pretty` (short human lines, no JSON); a short ready line; the warm-ups at start (the runner's
 * decodes, the host's own request to its listener) are no requests: nothing logs or counts them.
 */
import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {invokeInferenceService} from '../../src/client/ipc.js'
import {writeTinyOnnxModel} from '../helpers/onnx-tiny.js'
import {http, noiseImage, startServe, waitFor} from '../helpers/serve-host.js'

const NAME = 'imageClassification'

function jsonLines(text: string): any[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
}

describe('icc serve logs', function () {
  this.timeout(90_000)
  let dir: string
  let model: string
  let jpeg: Buffer

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'icc-logs-'))
    model = await writeTinyOnnxModel(join(dir, 'm.onnx'), {classes: 5})
    jpeg = await noiseImage('jpeg')
  })

  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  it('writes one JSON access line per request, over HTTP and the IPC endpoint, and a short ready line', async () => {
    const socket = join(dir, 'json', 'icc.sock')
    const host = await startServe(['--model', model, '--ipc-port', '0', '--print-env', '--json'], {socket})
    try {
      const {env} = JSON.parse(
        host
          .stdout()
          .split('\n')
          .find((l) => l.includes('"event":"ready"'))!,
      ).ipc
      const sock = {socket}
      assert.equal((await http(sock, 'POST', '/invocations', jpeg, {'content-type': 'image/jpeg'})).status, 200)
      const garbage = Buffer.from('not an image at all')
      assert.equal((await http(sock, 'POST', '/invocations', garbage, {'content-type': 'image/jpeg'})).status, 400)
      assert.equal((await http(sock, 'POST', '/invocations', jpeg, {'content-type': 'text/plain'})).status, 415)
      const ipc = await invokeInferenceService(
        {AlgoType: 'image-classification', Body: jpeg, ContentType: 'image/jpeg', ServiceName: NAME},
        {port: Number(env.GG_DAEMON_PORT), region: env.AWS_REGION, token: env.AWS_CONTAINER_AUTHORIZATION_TOKEN},
      )
      assert.ok(ipc.Body.length > 0)
      await waitFor(async () => jsonLines(host.stderr()).filter((l) => l.transport).length >= 4, 10_000, 'the lines')
      const access = jsonLines(host.stderr()).filter((l) => l.transport)
      assert.equal(access.length, 4)
      const [ok, bad, type, viaIpc] = access
      for (const l of access) {
        assert.equal(l.service, NAME)
        assert.equal(l.level, 30)
      }

      assert.deepEqual([ok.transport, ok.status, ok.code, ok.bytesIn, ok.batch], ['http', 200, 'OK', jpeg.length, 1])
      for (const k of ['queueMs', 'decodeMs', 'inferenceMs', 'totalMs']) assert.equal(typeof ok[k], 'number', k)
      assert.ok(ok.totalMs >= ok.inferenceMs)
      assert.deepEqual([bad.status, bad.code, bad.bytesIn], [400, 'BAD_IMAGE', garbage.length])
      assert.deepEqual([type.status, type.code], [415, 'UNSUPPORTED_CONTENT_TYPE'])
      assert.deepEqual([viaIpc.transport, viaIpc.status, viaIpc.code, viaIpc.bytesIn], ['ipc', 200, 'OK', jpeg.length])
      const ready = jsonLines(host.stderr()).find((l) => /service ready on/.test(l.msg))
      assert.equal(ready.model.summary, undefined)
      assert.ok(JSON.stringify(ready).length < 600, JSON.stringify(ready))
    } finally {
      await host.stop()
    }
  })

  it('--access-log off writes none; --log-format pretty writes short human lines', async () => {
    const quiet = await startServe(['--model', model, '--access-log', 'off'], {socket: join(dir, 'q', 'icc.sock')})
    try {
      await http({socket: quiet.socket}, 'POST', '/invocations', jpeg, {'content-type': 'image/jpeg'})
      await quiet.stop()
      assert.ok(jsonLines(quiet.stderr()).some((l) => /service ready/.test(l.msg)))
      assert.equal(jsonLines(quiet.stderr()).filter((l) => l.transport).length, 0)
    } finally {
      await quiet.stop()
    }

    const pretty = await startServe(['--model', model, '--log-format', 'pretty'], {socket: join(dir, 'p', 'icc.sock')})
    try {
      await http({socket: pretty.socket}, 'POST', '/invocations', jpeg, {'content-type': 'image/jpeg'})
      await waitFor(async () => / http 200 OK /.test(pretty.stderr()), 10_000, 'the access line')
      const lines = pretty.stderr().trim().split('\n')
      assert.equal(lines.filter((l) => l.startsWith('{')).length, 0, pretty.stderr())
      const line = lines.find((l) => / http 200 OK /.test(l))!
      assert.match(line, /^\[\d\d:\d\d:\d\d\.\d{3}] INFO: imageClassification: http 200 OK [\d.]+ ms /)
      assert.match(line, /"bytesIn":\d+/)
    } finally {
      await pretty.stop()
    }
  })
  it('logs and counts none of the warm-ups at start: the first request is the first counted', async () => {
    const socket = join(dir, 'warm', 'icc.sock')
    const host = await startServe(['--model', model], {socket})
    try {
      const counted = async () => {
        const metrics = (await http({socket}, 'GET', '/metrics')).body
        return [...metrics.matchAll(/^icc_requests_total\{[^}]*\} (\d+)$/gm)].map((m) => Number(m[1]))
      }

      assert.deepEqual(await counted(), [])
      assert.equal(jsonLines(host.stderr()).filter((l) => l.transport).length, 0, host.stderr())
      assert.doesNotMatch(host.stderr(), /warm-up failed/)
      assert.equal((await http({socket}, 'POST', '/invocations', jpeg, {'content-type': 'image/jpeg'})).status, 200)
      await waitFor(async () => jsonLines(host.stderr()).some((l) => l.transport), 10_000, 'the access line')
      assert.deepEqual(await counted(), [1])
      assert.equal(jsonLines(host.stderr()).filter((l) => l.transport).length, 1)
    } finally {
      await host.stop()
    }
  })
})
