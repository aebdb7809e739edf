/**
 * `icc serve --definition` when one service cannot start, with the real binary and real sockets: the others serve
 * and that one is reported not ready with the reason (unless `--strict`); a TCP port in use fails start-up before
 * any model is loaded.
 */
import assert from 'node:assert/strict'
import {mkdtemp, rm, stat, writeFile} from 'node:fs/promises'
import {createServer, type Server} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {icc} from '../helpers/cli.js'
import {writeTinyOnnxModel} from '../helpers/onnx-tiny.js'
import {connector, http, noiseImage, startServe} from '../helpers/serve-host.js'

async function listenAnywhere(): Promise<{port: number; server: Server}> {
  const server = createServer()
  await new Promise<void>((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve())
  })
  return {port: (server.address() as {port: number}).port, server}
}

describe('icc serve with a service that cannot start', function () {
  this.timeout(60_000)
  let dir: string
  let good: string
  let missing: string
  let corrupt: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'icc-partial-'))
    good = await writeTinyOnnxModel(join(dir, 'good.onnx'))
    missing = join(dir, 'missing.onnx')
    corrupt = join(dir, 'corrupt.onnx')
    await writeFile(corrupt, 'definitely not protobuf')
  })

  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  async function definition(file: string, ...connectors: ReturnType<typeof connector>[]) {
    const path = join(dir, file)
    await writeFile(path, JSON.stringify({Connectors: connectors}))
    return path
  }

  it('serves the others and reports a missing or unloadable model as not ready, with the reason', async () => {
    const def = await definition(
      'three.json',
      connector('A', 'good', good),
      connector('B', 'noModel', missing),
      connector('C', 'badModel', corrupt),
    )
    const socket = join(dir, 'three', 'icc.sock')
    const host = await startServe(['--definition', def], {socket})
    try {
      const sock = {socket}
      const jpeg = await noiseImage('jpeg')
      const ok = await http(sock, 'POST', '/services/good/invocations', jpeg, {'content-type': 'image/jpeg'})
      assert.equal(ok.status, 200, ok.body)
      const noModel = await http(sock, 'POST', '/services/noModel/invocations', jpeg, {'content-type': 'image/jpeg'})
      assert.equal(noModel.status, 503)
      assert.equal(noModel.json().error.code, 'SERVICE_NOT_READY')
      assert.ok(noModel.json().error.message.includes(missing), noModel.body)
      const badModel = await http(sock, 'POST', '/services/badModel/invocations', jpeg, {'content-type': 'image/jpeg'})
      assert.equal(badModel.status, 503)
      assert.equal(badModel.json().error.code, 'SERVICE_NOT_READY')
      assert.match(badModel.json().error.message, /could not be loaded/)

      const ready = await http(sock, 'GET', '/v2/health/ready')
      assert.equal(ready.status, 503)
      const {services} = ready.json()
      assert.deepEqual(Object.keys(services).sort(), ['badModel', 'good', 'noModel'])
      assert.equal(services.good.ready, true)
      assert.equal(services.noModel.ready, false)
      assert.match(services.noModel.reason, /does not exist/)
      assert.match(services.badModel.reason, /could not be loaded/)

      const meta = await http(sock, 'GET', '/v2/models/noModel')
      assert.equal(meta.status, 503)
      assert.match(meta.json().error.message, /not ready: .*does not exist/)
      assert.equal((await http(sock, 'GET', '/v2/models/good')).status, 200)
      await host.stop()
      assert.match(host.stderr(), /noModel: not ready/)
      assert.match(host.stderr(), /badModel: not ready/)
    } finally {
      await host.stop()
    }
  })

  it('with --strict fails start-up with the model error and its exit code, listening on nothing', async () => {
    const socket = join(dir, 'strict', 'icc.sock')
    // a missing model is a usage error (exit 2), one that does not load a model error (exit 4)
    const cases = [
      {exitCode: 2, message: /does not exist/, model: missing},
      {exitCode: 4, message: /could not be loaded/, model: corrupt},
    ]
    for (const [i, c] of cases.entries()) {
      const def = await definition(`strict${i}.json`, connector('A', 'good', good), connector('B', 'bad', c.model))
      const r = await icc(['serve', '--definition', def, '--strict', '--socket', socket])
      assert.equal(r.exitCode, c.exitCode, r.stderr)
      assert.match(r.stderr, c.message)
      await assert.rejects(stat(socket), {code: 'ENOENT'})
    }
  })

  it('fails at once (exit 2, the port named) when --port or --ipc-port is in use, before any model loads', async () => {
    const {port, server} = await listenAnywhere()
    try {
      // the corrupt model would fail start-up with exit 4 if its runner were started before the port check
      for (const flag of ['--port', '--ipc-port']) {
        const r = await icc([
          'serve',
          '--model',
          corrupt,
          flag,
          String(port),
          '--socket',
          join(dir, 'p.sock'),
          '--json',
        ])
        assert.equal(r.exitCode, 2, r.stderr)
        const {error} = JSON.parse(r.stdout)
        assert.equal(error.code, 'PORT_IN_USE')
        assert.ok(error.message.includes(String(port)) && error.message.includes(flag), error.message)
        assert.doesNotMatch(r.stdout + r.stderr, /could not be loaded/)
      }
    } finally {
      server.close()
    }
  })
})
