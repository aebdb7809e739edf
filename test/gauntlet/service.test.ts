/**
 * The reliability and security gauntlet, against the real `icc serve` (host + runner processes, unix socket, TCP and
 * the Greengrass IPC endpoint): hostile images and bodies, slow and idle clients, a model removed while serving,
 * hostile file names, planted secrets. Every case checks the specific answer the client gets, that the service
 * still answers the next good request, and that no process is left behind when the host exits.
 *
 * (Runner SIGKILL, hang past the timeout, memory cap, SIGTERM drain and crash loops are in test/serve/; IPC
 * protocol abuse in test/ipc/protocol.test.ts; hostile archives, params and symbols in test/model/.)
 */
import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import {copyFile, mkdir, mkdtemp, readdir, readFile, rm} from 'node:fs/promises'
import {request} from 'node:http'
import {connect} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {invokeInferenceService} from '../../src/client/ipc.js'
import {readRssKb} from '../../src/serve/memory.js'
import {pngBomb} from '../helpers/images.js'
import {writeTinyOnnxModel} from '../helpers/onnx-tiny.js'
import {
  alive,
  closedWithin as closedAt,
  http,
  noiseImage,
  runnerPid,
  type RunningHost,
  solidImage,
  startServe,
  waitFor,
} from '../helpers/serve-host.js'

const NAME = 'imageClassification'
const TOKEN = 'gauntlet-PLANTED-token-6f1d0c'
const SECRET = 'gauntlet+PLANTED+aws/secret0123456789abcdef'

/** Stop the host and check that it exits 0 and leaves no runner behind. */
async function stopCleanly(host: RunningHost): Promise<void> {
  const runner = await runnerPid({socket: host.socket}).catch(() => undefined)
  const r = await host.stop()
  assert.equal(r.exitCode, 0, host.stderr())
  assert.ok(!alive(host.proc.pid), 'host still running')
  if (runner) await waitFor(async () => !alive(runner), 5000, `runner ${runner} to exit`)
}

describe('gauntlet: icc serve under hostile input and faults', function () {
  this.timeout(120_000)
  let dir: string
  let model: string
  let host: RunningHost
  let good: Buffer
  let ipcPort: number
  const invoke = async (body: Buffer, headers: Record<string, string> = {}) =>
    http({socket: host.socket}, 'POST', `/services/${NAME}/invocations`, body, headers)
  const stillServing = async () => {
    const r = await invoke(good, {'content-type': 'image/jpeg'})
    assert.equal(r.status, 200, r.body)
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'icc-gauntlet-'))
    model = await writeTinyOnnxModel(join(dir, 'model.onnx'))
    good = await noiseImage('jpeg')
    host = await startServe(
      [
        '--model',
        model,
        '--service-name',
        NAME,
        '--timeout-seconds',
        '2',
        '--client-timeout-seconds',
        '1',
        '--max-body-bytes',
        String(2 * 1024 * 1024),
        '--ipc-port',
        '0',
        '--ipc-auth-token',
        TOKEN,
        '--region',
        'us-east-1',
        '--log-dir',
        join(dir, 'logs'),
        '--json',
      ],
      {env: {AWS_ACCESS_KEY_ID: 'AKIAGAUNTLET0000', AWS_SECRET_ACCESS_KEY: SECRET}, socket: join(dir, 'icc.sock')},
    )
    ipcPort = JSON.parse(host.stdout().split('\n')[0]).ipc.port
  })

  after(async () => {
    if (host) await stopCleanly(host)
    await rm(dir, {force: true, recursive: true})
  })

  it('hostile images: each gets its specific error, on the native socket and over IPC, and the next one is served', async () => {
    const jpeg = await solidImage('jpeg', {b: 200, g: 30, r: 10}, 64, 48)
    const png = await solidImage('png', {b: 10, g: 200, r: 30})
    const cases: [string, Buffer, Record<string, string>, number, string | undefined][] = [
      [
        'truncated JPEG',
        jpeg.subarray(0, Math.floor(jpeg.length / 2)),
        {'content-type': 'image/jpeg'},
        400,
        'BAD_IMAGE',
      ],
      [
        'garbage bytes',
        Buffer.from('this is not an image at all, just text'),
        {'content-type': 'image/jpeg'},
        400,
        'BAD_IMAGE',
      ],
      ['0-byte body', Buffer.alloc(0), {'content-type': 'image/png'}, 400, 'BAD_IMAGE'],
      ['PNG decompression bomb', pngBomb(), {'content-type': 'image/png'}, 400, 'BAD_IMAGE'],
      ['unsupported content type', png, {'content-type': 'image/gif'}, 415, 'UNSUPPORTED_CONTENT_TYPE'],
      ['content type that lies (PNG sent as JPEG)', png, {'content-type': 'image/jpeg'}, 200, undefined],
      ['no content type', png, {}, 200, undefined],
    ]
    for (const [what, body, headers, status, code] of cases) {
      const r = await invoke(body, headers)
      assert.equal(r.status, status, `${what}: ${r.body}`)
      if (code) {
        assert.equal(r.json().error.code, code, what)
        assert.ok(String(r.json().error.message).length > 10, `${what}: a message says what was wrong`)
      }

      await stillServing()
    }

    // The same through the Greengrass IPC endpoint: Handled errors (GreengrassInferenceException in the SDK).
    for (const [what, body, headers, status] of cases) {
      const call = invokeInferenceService(
        {AlgoType: 'image-classification', Body: body, ContentType: headers['content-type'], ServiceName: NAME},
        {port: ipcPort, region: 'us-east-1', token: TOKEN},
      )
      if (status === 200) await call
      else await assert.rejects(call, {name: 'GreengrassInferenceException'}, what)
    }

    await stillServing()
  })

  it('a 100 MB streamed body is refused with 413 at the configured limit, without being buffered', async () => {
    const hostRss = readRssKb(host.proc.pid!).rssKb!
    const chunk = Buffer.alloc(256 * 1024, 0xab)
    let sent = 0
    const answer = await new Promise<{body: string; sentBeforeAnswer: number; status: number}>((resolve, reject) => {
      let answered = false
      const req = request(
        {
          headers: {'content-type': 'image/jpeg'},
          method: 'POST',
          path: `/services/${NAME}/invocations`,
          socketPath: host.socket,
        },
        (res) => {
          answered = true
          const at = sent
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () =>
            resolve({body: Buffer.concat(chunks).toString(), sentBeforeAnswer: at, status: res.statusCode ?? 0}),
          )
        },
      )
      req.on('error', (error) => (answered ? undefined : reject(error)))
      const pump = () => {
        // `answered` is set by the response callback between drains
        while (sent < 100 * 1024 * 1024) {
          if (answered) return
          sent += chunk.length
          if (!req.write(chunk)) {
            req.once('drain', pump)
            return
          }
        }

        if (!answered) req.end()
      }

      pump()
    })
    assert.equal(answer.status, 413, answer.body)
    assert.equal(JSON.parse(answer.body).error.code, 'BODY_TOO_LARGE')
    assert.match(JSON.parse(answer.body).error.message, /2097152|2 MiB|2\.0 MiB/)
    assert.ok(answer.sentBeforeAnswer < 32 * 1024 * 1024, `answered only after ${answer.sentBeforeAnswer} bytes`)
    const grown = readRssKb(host.proc.pid!).rssKb! - hostRss
    assert.ok(grown < 64 * 1024, `host RSS grew by ${grown} KB`)
    await stillServing()
  })

  it('slow clients are cut off (headers and body timeouts); hundreds of idle connections do not block service', async () => {
    const closedWithin = async (payload: string, limitMs: number) => closedAt(host.socket, payload, limitMs)
    // headers never finished: --client-timeout-seconds 1
    const headers = await closedWithin(`POST /services/${NAME}/invocations HTTP/1.1\r\nHost: x\r\n`, 10_000)
    assert.ok(headers.ms >= 900, `closed after ${headers.ms} ms`)
    // body never finished: client timeout + service timeout (1 + 2 s)
    const body = await closedWithin(
      `POST /services/${NAME}/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n0123456789`,
      15_000,
    )
    assert.ok(body.ms >= 2900, `closed after ${body.ms} ms`)
    assert.match(body.reply, /^HTTP\/1\.1 408|^$/)

    // counted from the start: the first connections may be closed before the last ones are open. Each client
    // reads what it is sent: node:http's header-timeout check may answer an idle connection `408` before closing
    // it (when it runs before the connection's own timer), and a socket that never reads those bytes never sees
    // the end of stream nor emits 'close' (this once counted 294 of 300 closed)
    let closed = 0
    const idle = await Promise.all(
      Array.from(
        {length: 300},
        async () =>
          new Promise<ReturnType<typeof connect>>((resolve, reject) => {
            const s = connect(host.socket, () => resolve(s))
            s.resume()
            s.once('close', () => closed++)
            s.on('error', reject)
          }),
      ),
    )
    try {
      await stillServing()
      await waitFor(async () => closed === idle.length, 15_000, 'the server to close the idle connections').catch(
        (error: Error) => {
          // the count at the deadline, not when the wait began
          throw new Error(`${error.message}: ${closed} of ${idle.length} closed`)
        },
      )
    } finally {
      for (const s of idle) s.destroy()
    }

    await stillServing()
  })

  it('never writes the planted AWS secret or the IPC token to stdout, stderr, --json output or the log files', async () => {
    const logs = await Promise.all(
      (await readdir(join(dir, 'logs'))).map(async (f) => readFile(join(dir, 'logs', f), 'utf8')),
    )
    assert.ok(logs.length > 0, 'no log files')
    for (const text of [host.stdout(), host.stderr(), ...logs]) {
      assert.ok(!text.includes(SECRET), 'AWS secret leaked')
      assert.ok(!text.includes(TOKEN), 'IPC token leaked')
    }
  })
})

describe('gauntlet: a model removed while serving; hostile file names', function () {
  this.timeout(120_000)
  let dir: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'icc-gauntlet2-'))
  })
  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  it('model removed, runner killed: not ready with the reason, errors at once, host up; model back: serving again after the cool-down', async () => {
    const model = await writeTinyOnnxModel(join(dir, 'doomed.onnx'))
    const host = await startServe(['--model', model, '--service-name', NAME, '--crash-cooldown-seconds', '3'], {
      socket: join(dir, 'doomed.sock'),
    })
    try {
      const good = await noiseImage('png')
      assert.equal((await http({socket: host.socket}, 'POST', '/invocations', good)).status, 200)
      await rm(model)
      process.kill((await runnerPid({socket: host.socket}))!, 'SIGKILL')
      await waitFor(
        async () => (await http({socket: host.socket}, 'GET', '/v2/health/ready')).body.includes('crashed'),
        30_000,
        'the service to report the crash loop',
      )
      const ready = await http({socket: host.socket}, 'GET', '/v2/health/ready')
      assert.equal(ready.status, 503)
      assert.match(ready.body, /doomed\.onnx|no such file|does not exist|ENOENT/i)
      const t0 = Date.now()
      const r = await http({socket: host.socket}, 'POST', '/invocations', good)
      assert.equal(r.status, 503)
      assert.equal(r.json().error.code, 'SERVICE_NOT_READY')
      assert.ok(Date.now() - t0 < 2000, 'answered at once')
      assert.equal((await http({socket: host.socket}, 'GET', '/v2/health/live')).status, 200)
      assert.match(ready.body, /next attempt in 3 s/)

      // the model is put back (e.g. by icc pull-model): the next attempt after the cool-down succeeds
      await writeTinyOnnxModel(model)
      const back = Date.now()
      await waitFor(
        async () => (await http({socket: host.socket}, 'GET', '/v2/health/ready')).status === 200,
        15_000,
        'the service to recover',
      )
      assert.ok(Date.now() - back < 10_000)
      assert.equal((await http({socket: host.socket}, 'POST', '/invocations', good)).status, 200)
    } finally {
      await stopCleanly(host)
    }
  })

  it('paths and names with spaces, ";", "$()", quotes and newlines are data, never shell: it serves, nothing runs', async () => {
    const hostile = join(dir, `a b;touch PWNED$(touch PWNED2)'"\nx`)
    await mkdir(hostile, {recursive: true})
    const model = join(hostile, `m;$(touch PWNED3).onnx`)
    await copyFile(await writeTinyOnnxModel(join(dir, 'plain.onnx')), model)
    const host = await startServe(['--model', model, '--log-dir', join(hostile, 'logs;$(touch PWNED4)')], {
      socket: join(hostile, 's;$(x).sock'),
    })
    try {
      const r = await http({socket: host.socket}, 'POST', '/invocations', await noiseImage('jpeg'))
      assert.equal(r.status, 200, r.body)
    } finally {
      await stopCleanly(host)
    }

    for (const where of [dir, hostile, process.cwd()]) {
      for (const name of ['PWNED', 'PWNED2', 'PWNED3', 'PWNED4'])
        assert.ok(!existsSync(join(where, name)), `${where}/${name}`)
    }
  })
})
