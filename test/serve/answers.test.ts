/**
 * One answer per request, and every answer counted (issue 21, item 12; issue 20, item 10), against the real
 * `icc serve`: a client that half-closes its connection after sending its request gets the answer (unix socket and
 * TCP), and `icc_requests_total` counts each answer the host gives: the service's, OVERLOADED, UNKNOWN_SERVICE,
 * 415, 400, 413, the empty body and the 404 of a path that is no route.
 */
import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {writeTinyOnnxModel} from '../helpers/onnx-tiny.js'
import {
  closedWithin,
  http,
  type HttpResult,
  noiseImage,
  parseConnectorBody,
  type RunningHost,
  startServe,
  waitFor,
  withFault,
} from '../helpers/serve-host.js'

const NAME = 'imageClassification'

/** icc_requests_total by outcome, summed over services. */
function outcomes(metrics: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const m of metrics.matchAll(/^icc_requests_total\{service="[^"]*",outcome="([^"]+)"\} (\d+)$/gm)) {
    out.set(m[1], (out.get(m[1]) ?? 0) + Number(m[2]))
  }

  return out
}

describe('icc serve: one answer per request, every answer counted', function () {
  this.timeout(120_000)
  let dir: string
  let host: RunningHost
  let jpeg: Buffer

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'icc-answers-'))
    const model = await writeTinyOnnxModel(join(dir, 'model.onnx'))
    jpeg = await noiseImage('jpeg')
    host = await startServe(
      [
        '--model',
        model,
        '--service-name',
        NAME,
        '--port',
        '0',
        '--queue-limit',
        '1',
        '--pipeline-depth',
        '1',
        '--max-batch',
        '1',
        '--max-body-bytes',
        '100000',
      ],
      {faults: true, socket: join(dir, 'icc.sock')},
    )
  })

  after(async () => {
    await host?.stop()
    await rm(dir, {force: true, recursive: true})
  })

  it('answers a client that half-closed its connection after sending the request (unix socket and TCP)', async () => {
    // the fault keeps the request running for a while after the client's end arrived
    const body = withFault(jpeg, 'sleep:300')
    const request = () =>
      `POST /services/${NAME}/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n` +
      `Content-Length: ${body.length}\r\n\r\n${body.toString('latin1')}`
    const port = Number(new URL(host.tcpUrl!).port)
    for (const to of [host.socket, port]) {
      const r = await closedWithin(to, request(), 30_000, {halfClose: true})
      assert.match(r.reply, /^(HTTP\/1\.1 102 Processing\r\n\r\n)*HTTP\/1\.1 200 OK\r\n/, `${to}: ${r.reply}`)
      parseConnectorBody(r.reply.slice(r.reply.lastIndexOf('\r\n\r\n') + 4))
    }
  })

  it('counts every answer in icc_requests_total: OK, OVERLOADED, UNKNOWN_SERVICE, 415, 400, 413, empty body, 404', async () => {
    const before = outcomes((await http({socket: host.socket}, 'GET', '/metrics')).body)
    const sock = {socket: host.socket}
    const post = async (path: string, body?: Buffer, headers: Record<string, string> = {}) =>
      http(sock, 'POST', path, body, {'content-type': 'image/jpeg', ...headers})
    const answers: HttpResult[] = []
    // one request running (pipeline depth 1), one queued (queue limit 1): the third is OVERLOADED
    const running = post(`/services/${NAME}/invocations`, withFault(jpeg, 'sleep:1500'))
    await waitFor(async () => /icc_queue_depth\{[^}]*\} 1$/m.test((await http(sock, 'GET', '/metrics')).body))
    const queued = post(`/services/${NAME}/invocations`, jpeg)
    await waitFor(async () => /icc_queue_depth\{[^}]*\} 2$/m.test((await http(sock, 'GET', '/metrics')).body))
    answers.push(
      await post(`/services/${NAME}/invocations`, jpeg),
      await post('/services/nope/invocations', jpeg),
      // names that are no service, however odd, are 404 UNKNOWN_SERVICE (docs/serve.md): ../../x, NUL, U+202E
      await post('/services/..%2F..%2Fx/invocations', jpeg),
      await post('/services/a%00b/invocations', jpeg),
      await post('/services/%E2%80%AEx/invocations', jpeg),
      await post(`/services/${NAME}/invocations`, jpeg, {'content-type': 'text/plain'}),
      await post(`/services/${NAME}/invocations?top_k=x`, jpeg),
      await post('/services/%E0%A4%A/invocations', jpeg),
      await post(`/services/${NAME}/invocations`, Buffer.alloc(200_000)),
      await post(`/services/${NAME}/invocations`, Buffer.alloc(0)),
      await post('/services/a/b/invocations', jpeg),
      await running,
      await queued,
    )
    const codes = answers.map((a) => (a.status === 200 ? 'OK' : (a.json().error.code as string)))
    assert.deepEqual(codes, [
      'OVERLOADED',
      'UNKNOWN_SERVICE',
      'UNKNOWN_SERVICE',
      'UNKNOWN_SERVICE',
      'UNKNOWN_SERVICE',
      'UNSUPPORTED_CONTENT_TYPE',
      'BAD_REQUEST',
      'BAD_REQUEST',
      'BODY_TOO_LARGE',
      'BAD_IMAGE',
      'NOT_FOUND',
      'OK',
      'OK',
    ])
    // the OK count is updated just after the answer leaves
    await waitFor(
      async () => {
        const after = outcomes((await http(sock, 'GET', '/metrics')).body)
        const expected = new Map<string, number>()
        for (const c of codes) expected.set(c, (expected.get(c) ?? 0) + 1)
        return [...expected].every(([code, n]) => (after.get(code) ?? 0) - (before.get(code) ?? 0) === n)
      },
      5000,
      'every answer to be counted',
    )
  })
})
