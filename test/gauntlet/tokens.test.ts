/**
 * Tokens (issue 21, item 8), against the real `icc serve`: the IPC token from a file of the user's own (mode
 * checked; a token on the command line is warned about and the file keeps it out of /proc/PID/cmdline), the TCP
 * listener's optional Bearer token (required with a non-loopback --host), and no filesystem path on the routes a
 * loopback TCP client reaches without one.
 */
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {chmod, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {icc, unwrap} from '../helpers/cli.js'
import {writeTinyOnnxModel} from '../helpers/onnx-tiny.js'
import {http, noiseImage, type RunningHost, startServe} from '../helpers/serve-host.js'

const IPC_TOKEN = 'ipc-token-from-a-file-7c1e'
const TCP_TOKEN = 'tcp-token-from-a-file-93ab'
const ARN = 'arn:aws:lambda:us-east-1:aws:function:GG-ML-INF-image-classification-imageClassification'

describe('gauntlet: tokens of icc serve', function () {
  this.timeout(120_000)
  let dir: string
  let model: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'icc-tokens-'))
    model = await writeTinyOnnxModel(join(dir, 'model.onnx'))
  })

  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  it('refuses a token file others can read, and a non-loopback --host without a token (exit 2)', async () => {
    const loose = join(dir, 'loose.token')
    await writeFile(loose, `${IPC_TOKEN}\n`)
    await chmod(loose, 0o644)
    const r1 = await icc([
      'serve',
      '--model',
      model,
      '--socket',
      join(dir, 'a.sock'),
      '--ipc-port',
      '0',
      '--ipc-auth-token-file',
      loose,
    ])
    assert.equal(r1.exitCode, 2, r1.stderr)
    assert.match(unwrap(r1.stderr), /other users can read or write it \(mode 0644\)/)
    assert.doesNotMatch(r1.stderr + r1.stdout, new RegExp(IPC_TOKEN))

    const r2 = await icc([
      'serve',
      '--model',
      model,
      '--socket',
      join(dir, 'b.sock'),
      '--port',
      '0',
      '--host',
      '0.0.0.0',
    ])
    assert.equal(r2.exitCode, 2, r2.stderr)
    assert.match(unwrap(r2.stderr), /TCP_AUTH_REQUIRED|needs a token/)
  })

  describe('with token files', () => {
    let host: RunningHost
    let ipcPort: number

    before(async () => {
      const ipcFile = join(dir, 'ipc.token')
      const tcpFile = join(dir, 'tcp.token')
      await writeFile(ipcFile, `${IPC_TOKEN}\n`, {mode: 0o600})
      await writeFile(tcpFile, TCP_TOKEN, {mode: 0o600})
      host = await startServe(
        [
          '--model',
          model,
          '--ipc-port',
          '0',
          '--ipc-auth-token-file',
          ipcFile,
          '--port',
          '0',
          '--auth-token-file',
          tcpFile,
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
    })

    it('takes the IPC token from the file: not on the command line, no warning, calls with it accepted', async () => {
      assert.doesNotMatch(readFileSync(`/proc/${host.proc.pid}/cmdline`, 'utf8'), new RegExp(IPC_TOKEN))
      assert.doesNotMatch(host.stderr(), /other local users can read it|generated IPC auth token/)
      const image = await noiseImage('jpeg')
      const refused = await http({url: `http://127.0.0.1:${ipcPort}`}, 'POST', `/2016-11-01/functions/${ARN}`, image, {
        authorization: 'wrong',
      })
      assert.equal(refused.status, 403)
      const accepted = await http({url: `http://127.0.0.1:${ipcPort}`}, 'POST', `/2016-11-01/functions/${ARN}`, image, {
        authorization: IPC_TOKEN,
        'x-amz-invocation-type': 'RequestResponse',
      })
      assert.equal(accepted.status, 202, accepted.body)
    })

    it('asks for the Bearer token on every TCP route; the socket needs none; no model path is shown', async () => {
      const tcp = {url: host.tcpUrl!}
      for (const path of ['/ping', '/metrics', '/v2/models/imageClassification']) {
        const r = await http(tcp, 'GET', path)
        assert.equal(r.status, 401, `${path}: ${r.body}`)
        assert.equal(r.json().error.code, 'UNAUTHORIZED')
      }

      const wrong = await http(tcp, 'POST', '/invocations', await noiseImage('jpeg'), {authorization: 'Bearer nope'})
      assert.equal(wrong.status, 401)
      const ok = await http(tcp, 'POST', '/invocations', await noiseImage('jpeg'), {
        authorization: `Bearer ${TCP_TOKEN}`,
        'content-type': 'image/jpeg',
      })
      assert.equal(ok.status, 200, ok.body)
      const models = await http(tcp, 'GET', '/v2/models/imageClassification', undefined, {
        authorization: `Bearer ${TCP_TOKEN}`,
      })
      assert.equal(models.status, 200)
      assert.ok(!models.body.includes(dir), `a filesystem path in ${models.body}`)
      assert.equal((await http({socket: host.socket}, 'GET', '/ping')).status, 200)
    })
  })

  it('warns when a token is given on the command line', async () => {
    const host = await startServe(['--model', model, '--ipc-port', '0', '--ipc-auth-token', IPC_TOKEN], {
      socket: join(dir, 'c.sock'),
    })
    try {
      assert.match(unwrap(host.stderr()), /--ipc-auth-token puts the token where other local users can read it/)
    } finally {
      await host.stop()
    }
  })
})
