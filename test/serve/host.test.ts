/**
 * `icc serve` end to end: the real binary, a real runner process with ONNX Runtime, real images made with sharp,
 * over a real unix socket and TCP. One host serves the whole file (start-up is the expensive part).
 */
import assert from 'node:assert/strict'
import {readFileSync, statSync} from 'node:fs'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {request} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {icc} from '../helpers/cli.js'
import {runTinyModel, writeTinyOnnxModel} from '../helpers/onnx-tiny.js'
import {
  http,
  measureRunnerStart,
  noiseImage,
  parseConnectorBody,
  restartDeadlineSeconds,
  type RunningHost,
  startServe,
  waitFor,
  withFault,
} from '../helpers/serve-host.js'

const NAME = 'imageClassification'

describe('icc serve (one service, real runner)', function () {
  this.timeout(60_000)
  let dir: string
  let host: RunningHost
  let model: string
  let sock: {socket: string}
  let jpeg: Buffer
  let png: Buffer
  /**
   * --timeout-seconds: 3, or longer where a runner's measured start (the wasm runtime, a loaded machine) would
   * not fit twice, with a second to spare, in what a request queued late behind a hung one has left of it.
   */
  let timeoutSeconds: number

  /** The reference: the same preprocessing and model run in this process. */
  const expected = async (bytes: Buffer) => runTinyModel(model, bytes)

  const invoke = async (body: Buffer, headers: Record<string, string> = {}, path = `/services/${NAME}/invocations`) =>
    http(sock, 'POST', path, body, {'content-type': 'image/jpeg', ...headers})

  const ready = async () => (await http(sock, 'GET', '/v2/health/ready')).json().services[NAME]

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'icc-serve-'))
    model = await writeTinyOnnxModel(join(dir, 'tiny.onnx'))
    jpeg = await noiseImage('jpeg')
    png = await noiseImage('png', 30, 20, 7)
    sock = {socket: join(dir, 'run', 'icc.sock')}
    timeoutSeconds = restartDeadlineSeconds(await measureRunnerStart(model), 3)
    host = await startServe(
      [
        '--model',
        model,
        '--service-name',
        NAME,
        '--timeout-seconds',
        String(timeoutSeconds),
        '--memory-limit-kb',
        '250000',
        '--queue-limit',
        '2',
        // one request at a time in the runner, so the backpressure test can count exactly
        '--pipeline-depth',
        '1',
        '--max-body-bytes',
        '200000',
        '--port',
        '0',
        '--log-dir',
        join(dir, 'logs'),
      ],
      {faults: true, socket: sock.socket},
    )
  })

  after(async () => {
    const r = await host?.stop()
    if (r) assert.equal(r.exitCode, 0, `${JSON.stringify(r)}\n${host.stderr().split('\n').slice(-8).join('\n')}`)
    await rm(dir, {force: true, recursive: true})
  })

  it('answers with the connector body: exactly the probabilities of the model run in-process', async () => {
    const res = await invoke(jpeg)
    assert.equal(res.status, 200)
    assert.match(String(res.headers['content-type']), /^application\/json/)
    const values = parseConnectorBody(res.body)
    const want = await expected(jpeg)
    assert.equal(values.length, want.length)
    for (const [i, v] of values.entries()) assert.equal(Math.fround(v), want[i], `class ${i}`)
    assert.ok(Math.abs(values.reduce((a, b) => a + b, 0) - 1) <= 1e-5)
  })

  it('serves PNG, application/x-image and a missing Content-Type (sniffed), on /invocations too', async () => {
    const want = [...(await expected(png))]
    for (const headers of [{'content-type': 'image/png'}, {'content-type': 'application/x-image'}, {}] as Record<
      string,
      string
    >[]) {
      const res = await http(sock, 'POST', '/invocations', png, headers)
      assert.equal(res.status, 200, JSON.stringify(headers) + res.body)
      assert.deepEqual(
        parseConnectorBody(res.body).map((v) => Math.fround(v)),
        want,
      )
    }
  })

  it('serves image/jpg as image/jpeg (the host and the runner agree on the content types)', async () => {
    const res = await invoke(jpeg, {'content-type': 'image/jpg'})
    assert.equal(res.status, 200, res.body)
    assert.deepEqual(
      parseConnectorBody(res.body).map((v) => Math.fround(v)),
      [...(await expected(jpeg))],
    )
  })

  it('answers on TCP 127.0.0.1 too', async () => {
    assert.match(String(host.tcpUrl), /^http:\/\/127\.0\.0\.1:\d+$/)
    const res = await http({url: host.tcpUrl}, 'POST', '/invocations', jpeg, {'content-type': 'image/jpeg'})
    assert.equal(res.status, 200)
    assert.deepEqual(
      parseConnectorBody(res.body).map((v) => Math.fround(v)),
      [...(await expected(jpeg))],
    )
  })

  it('returns verbose JSON with Accept: application/json; verbose and with ?top_k=N', async () => {
    const want = await expected(jpeg)
    const best = [...want.keys()].sort((a, b) => want[b] - want[a])
    const verbose = await invoke(jpeg, {accept: 'application/json; verbose'})
    assert.equal(verbose.status, 200)
    const v = verbose.json()
    assert.equal(v.probabilities.length, 4)
    assert.deepEqual(
      v.top.map((t: {index: number}) => t.index),
      best,
    )
    const top2 = (await invoke(jpeg, {}, `/services/${NAME}/invocations?top_k=2`)).json()
    assert.equal(top2.top.length, 2)
    assert.equal(top2.top[0].index, best[0])
    assert.equal(Math.fround(top2.top[0].probability), want[best[0]])
  })

  it('sends a Server-Timing header with queue, decode and inference times', async () => {
    const res = await invoke(jpeg)
    assert.match(
      String(res.headers['server-timing']),
      /queue;dur=[\d.]+, decode;dur=[\d.]+, inference;dur=[\d.]+, total;dur=[\d.]+/,
    )
  })

  it('reports health, readiness, the model and Prometheus metrics', async () => {
    assert.equal((await http(sock, 'GET', '/ping')).status, 200)
    const live = await http(sock, 'GET', '/v2/health/live')
    assert.equal(live.status, 200)
    assert.deepEqual(live.json(), {live: true})
    const r = await http(sock, 'GET', '/v2/health/ready')
    assert.equal(r.status, 200)
    assert.equal(r.json().services[NAME].ready, true)
    assert.equal(r.json().services[NAME].state, 'ready')
    const m = await http(sock, 'GET', `/v2/models/${NAME}`)
    assert.equal(m.status, 200)
    const info = m.json()
    assert.deepEqual([info.classes, info.platform, info.provider], [4, 'onnxruntime', 'cpu'])
    assert.deepEqual(info.inputs[0].shape, [-1, 3, 16, 16])
    assert.deepEqual(info.preprocessing, {mode: 'exact'}, "the connector's OpenCV preprocessing by default")
    assert.match(info.hash, /^[0-9a-f]{64}$/)
    const metrics = await http(sock, 'GET', '/metrics')
    assert.equal(metrics.status, 200)
    assert.match(metrics.body, new RegExp(`icc_requests_total\\{service="${NAME}",outcome="OK"\\} \\d+`))
    for (const phase of ['queue', 'decode', 'inference']) {
      assert.ok(String(metrics.body).includes(`icc_request_duration_seconds_count{service="${NAME}",phase="${phase}"}`))
    }

    assert.match(metrics.body, new RegExp(`icc_runner_rss_bytes\\{service="${NAME}"\\} [1-9]\\d+`))
  })

  it('rejects bad input with specific JSON errors: BAD_IMAGE, UNSUPPORTED_CONTENT_TYPE, UNKNOWN_SERVICE', async () => {
    const garbage = await invoke(Buffer.from('this is not an image at all'))
    assert.equal(garbage.status, 400)
    assert.equal(garbage.json().error.code, 'BAD_IMAGE')
    const truncated = await invoke(jpeg.subarray(0, 200))
    assert.equal(truncated.status, 400)
    assert.equal(truncated.json().error.code, 'BAD_IMAGE')
    const empty = await invoke(Buffer.alloc(0))
    assert.equal(empty.status, 400)
    assert.match(empty.json().error.message, /empty/)
    const text = await invoke(jpeg, {'content-type': 'text/plain'})
    assert.equal(text.status, 415)
    assert.equal(text.json().error.code, 'UNSUPPORTED_CONTENT_TYPE')
    const invalid = await invoke(jpeg, {'content-type': '/'})
    assert.equal(invalid.status, 415)
    assert.equal(invalid.json().error.code, 'UNSUPPORTED_CONTENT_TYPE')
    const unknown = await invoke(jpeg, {}, '/services/nope/invocations')
    assert.equal(unknown.status, 404)
    assert.equal(unknown.json().error.code, 'UNKNOWN_SERVICE')
    assert.ok(String(unknown.json().error.message).includes(NAME))
    assert.equal((await http(sock, 'GET', '/v2/models/nope')).status, 404)
    // still serving
    assert.equal((await invoke(jpeg)).status, 200)
  })

  it('rejects a body over --max-body-bytes with 413 before the client has sent it all', async () => {
    const declared = 50 * 1024 * 1024
    const res = await new Promise<{body: string; status: number}>((resolve, reject) => {
      const req = request(
        {
          headers: {'content-length': String(declared), 'content-type': 'image/jpeg'},
          method: 'POST',
          path: '/invocations',
          socketPath: sock.socket,
        },
        (r) => {
          const chunks: Buffer[] = []
          r.on('data', (c: Buffer) => chunks.push(c))
          r.on('end', () => resolve({body: Buffer.concat(chunks).toString(), status: r.statusCode ?? 0}))
        },
      )
      req.on('error', reject)
      // only 64 KiB of the declared 50 MiB is ever sent: the answer must come anyway
      req.write(Buffer.alloc(64 * 1024))
    })
    assert.equal(res.status, 413)
    assert.equal(JSON.parse(res.body).error.code, 'BODY_TOO_LARGE')
  })

  it('creates the socket directory 0700 and the socket 0660', () => {
    assert.equal(statSync(join(dir, 'run')).mode & 0o777, 0o700)
    const s = statSync(sock.socket)
    assert.equal(s.isSocket(), true)
    assert.equal(s.mode & 0o777, 0o660)
  })

  it('refuses to start on a socket another server is listening on (exit 2)', async () => {
    const r = await icc(['serve', '--model', model, '--socket', sock.socket])
    assert.equal(r.exitCode, 2, r.stderr)
    assert.match(r.stderr, /already listening/)
    assert.equal((await http(sock, 'GET', '/ping')).status, 200)
  })

  it('icc invoke prints the connector body, JSON with --top-k, and exits 8 with the error code on failure', async () => {
    const img = join(dir, 'noise.jpg')
    await writeFile(img, jpeg)
    const r = await icc(['invoke', '--service-name', NAME, '--socket', sock.socket, img])
    assert.equal(r.exitCode, 0, r.stderr)
    assert.deepEqual(
      parseConnectorBody(r.stdout.trim()).map((v) => Math.fround(v)),
      [...(await expected(jpeg))],
    )
    const top = await icc(['invoke', '--socket', sock.socket, img, '--top-k', '1', '--json'])
    assert.equal(top.exitCode, 0, top.stderr)
    assert.equal(JSON.parse(top.stdout).top.length, 1)
    const bad = join(dir, 'bad.jpg')
    await writeFile(bad, 'garbage')
    const fail = await icc(['invoke', '--socket', sock.socket, bad, '--json'])
    assert.equal(fail.exitCode, 8)
    assert.equal(JSON.parse(fail.stdout).error.code, 'BAD_IMAGE')
    const down = await icc(['invoke', '--socket', join(dir, 'none.sock'), img])
    assert.equal(down.exitCode, 9)
    assert.match(down.stderr, /nothing is listening/)
  })

  it('answers 503 OVERLOADED with Retry-After beyond the queue limit, and serves the admitted requests', async () => {
    const slow = invoke(withFault(jpeg, 'sleep:1200'))
    await waitFor(async () => (await ready()).queueDepth === 1, 5000, 'the slow request to reach the runner')
    const burst = await Promise.all(Array.from({length: 5}, async () => invoke(jpeg)))
    const first = await slow
    assert.equal(first.status, 200)
    const codes = burst.map((r) => r.status)
    assert.equal(codes.length, 5, burst.map((r) => r.body).join('\n'))
    assert.equal(codes.filter((c) => c === 200).length, 2, burst.map((r) => r.body).join('\n'))
    const rejected = burst.filter((r) => r.status === 503)
    assert.equal(rejected.length, 3)
    for (const r of rejected) {
      assert.equal(r.json().error.code, 'OVERLOADED')
      assert.ok(Number(r.headers['retry-after']) > 0)
    }
  })

  it('drops a queued request whose client went away (never run, counted as CLIENT_CLOSED), and serves on', async () => {
    const slow = invoke(withFault(jpeg, 'sleep:1500'))
    await waitFor(async () => (await ready()).queueDepth === 1, 5000, 'the slow request to reach the runner')
    // a raw request that waits behind it in the host's queue (--pipeline-depth 1), then its client goes away
    const gone = request({
      headers: {'content-length': String(jpeg.length), 'content-type': 'image/jpeg'},
      method: 'POST',
      path: `/services/${NAME}/invocations`,
      socketPath: sock.socket,
    })
    const goneError = new Promise<Error>((resolve) => {
      gone.on('error', resolve)
    })
    gone.end(jpeg)
    await waitFor(async () => (await ready()).queueDepth === 2, 5000, 'the second request to be queued')
    gone.destroy()
    assert.match(String((await goneError).message), /socket hang up|aborted/)
    // out of the queue while the slow request still runs: without the drop it would wait, then run
    await waitFor(async () => (await ready()).queueDepth === 1, 1000, 'the abandoned request to leave the queue')
    assert.equal((await slow).status, 200)
    const metrics = (await http(sock, 'GET', '/metrics')).body
    assert.match(metrics, new RegExp(`icc_requests_total\\{service="${NAME}",outcome="CLIENT_CLOSED"\\} 1\\b`))
    assert.equal((await invoke(jpeg)).status, 200)
  })

  it('times out a hung runner with 504 TIMEOUT, kills and restarts it; queued requests run on the new runner', async () => {
    const before = await ready()
    const started = Date.now()
    const hung = invoke(withFault(jpeg, 'hang'))
    // a request queued behind the hung one is not lost: it runs on the new runner within its own deadline. It is
    // sent half a second before the hung one's deadline, so that its own leaves the restart the rest: at least
    // twice the measured start plus a second
    await new Promise((r) => {
      setTimeout(r, timeoutSeconds * 1000 - 500)
    })
    const queued = invoke(jpeg)
    const res = await hung
    assert.equal((await queued).status, 200)
    assert.equal(res.status, 504)
    assert.equal(res.json().error.code, 'TIMEOUT')
    assert.ok(Date.now() - started < timeoutSeconds * 1000 + 5000)
    // the hung process really is gone (SIGKILL), and a new one serves
    await waitFor(
      async () => {
        try {
          process.kill(before.runnerPid, 0)
          return false
        } catch {
          return true
        }
      },
      5000,
      'the hung runner to die',
    )
    await waitFor(async () => (await ready()).ready, 15_000, 'the runner to come back')
    const after = await ready()
    assert.notEqual(after.runnerPid, before.runnerPid)
    assert.equal(after.restarts, before.restarts + 1)
    assert.equal((await invoke(jpeg)).status, 200)
    const metrics = (await http(sock, 'GET', '/metrics')).body
    assert.match(metrics, new RegExp(`icc_runner_restarts_total\\{service="${NAME}",reason="timeout"\\} 1`))
    assert.match(metrics, new RegExp(`icc_requests_total\\{service="${NAME}",outcome="TIMEOUT"\\} 1`))
  })

  it('answers 503 RUNNER_RESTARTING when the runner is SIGKILLed mid-request, then recovers', async () => {
    const before = await ready()
    const pending = invoke(withFault(jpeg, 'sleep:2000'))
    await waitFor(async () => (await ready()).queueDepth === 1, 5000, 'the request to reach the runner')
    process.kill(before.runnerPid, 'SIGKILL')
    const res = await pending
    assert.equal(res.status, 503)
    assert.equal(res.json().error.code, 'RUNNER_RESTARTING')
    assert.match(res.json().error.message, /SIGKILL/)
    await waitFor(async () => (await ready()).ready, 15_000, 'the runner to come back')
    assert.equal((await invoke(jpeg)).status, 200)
  })

  it('kills a runner that goes over --memory-limit-kb: the request gets MEMORY_LIMIT, the service recovers', async () => {
    const res = await invoke(withFault(jpeg, 'alloc:300'))
    assert.equal(res.status, 500)
    assert.equal(res.json().error.code, 'MEMORY_LIMIT')
    assert.match(res.json().error.message, /250000 KB/)
    await waitFor(async () => (await ready()).ready, 15_000, 'the runner to come back')
    assert.equal((await invoke(jpeg)).status, 200)
  })

  it('writes <log-dir>/<ServiceName>.log as JSON lines, each tagged with the service name', async () => {
    const text = await readFile(join(dir, 'logs', `${NAME}.log`), 'utf8')
    const lines = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    assert.ok(lines.length > 2)
    for (const l of lines) assert.equal(l.service, NAME)
    const start = lines.find((l) => /service ready on/.test(l.msg))
    assert.notEqual(start, undefined)
    assert.equal(start.listen.socket, sock.socket)
    assert.equal(typeof start.loadMs, 'number')
    assert.equal(typeof start.warmupMs, 'number')
    assert.equal(start.model.classes, 4)
    assert.equal(
      // the watchdog's kill, or the kernel's (a memory cgroup)
      lines.some((l) => /killing it|\(memory\); restarting/.test(l.msg)),
      true,
    )
    assert.doesNotMatch(readFileSync(join(dir, 'logs', `${NAME}.log`), 'utf8'), /AWS_SECRET/)
  })
})
