/**
 * Model reload of `icc serve` with the real binary, under a steady stream of requests from 4 clients: SIGHUP, the
 * model-repository route (socket; TCP with the admin token) and --watch each switch a 10-class model to a 7-class
 * one with no failed request; a broken model, or one that would not fit the memory budget, leaves the old one
 * answering and readiness green.
 */
import assert from 'node:assert/strict'
import {copyFile, mkdtemp, open, readFile, rename, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {writeTinyOnnxModel} from '../helpers/onnx-tiny.js'
import {http, noiseImage, parseConnectorBody, type RunningHost, startServe, waitFor} from '../helpers/serve-host.js'

interface Stream {
  /** Per client: the number of values of each answer, in order. */
  answers: number[][]
  failures: string[]
  stop(): Promise<void>
}

/** 4 clients, each sending one request after the other until stopped. */
function steadyStream(socket: string, image: Buffer): Stream {
  const answers: number[][] = [[], [], [], []]
  const failures: string[] = []
  const state = {running: true}
  const clients = answers.map(async (mine) => {
    while (state.running) {
      try {
        const r = await http({socket}, 'POST', '/invocations', image, {'content-type': 'image/jpeg'})
        if (r.status === 200) mine.push(parseConnectorBody(r.body).length)
        else failures.push(`${r.status} ${r.body}`)
      } catch (error) {
        failures.push((error as Error).message)
      }
    }
  })
  return {
    answers,
    failures,
    async stop() {
      state.running = false
      await Promise.all(clients)
    },
  }
}

/** Every client saw 10-value answers, then 7-value ones, and never a 10 after its first 7. */
function assertSwitched(s: Stream): void {
  assert.deepEqual(s.failures, [])
  for (const mine of s.answers) {
    const first7 = mine.indexOf(7)
    assert.ok(mine[0] === 10 && first7 > 0, `a client's answers: ${mine.join(',')}`)
    assert.ok(
      mine.slice(first7).every((n) => n === 7),
      `a 10-class answer after a 7-class one: ${mine.join(',')}`,
    )
  }
}

describe('icc serve model reload', function () {
  this.timeout(120_000)
  let dir: string
  let model10: string
  let model7: string
  let jpeg: Buffer

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'icc-reload-'))
    model10 = await writeTinyOnnxModel(join(dir, 'ten.onnx'), {classes: 10})
    model7 = await writeTinyOnnxModel(join(dir, 'seven.onnx'), {classes: 7, height: 8, width: 8})
    jpeg = await noiseImage('jpeg')
  })

  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  /** A fresh model file (10 classes) for one host, and a way to replace it atomically. */
  async function modelFile(name: string): Promise<{path: string; replace(from: string): Promise<void>}> {
    const path = join(dir, `${name}.onnx`)
    await copyFile(model10, path)
    return {
      path,
      async replace(from) {
        await copyFile(from, `${path}.tmp`)
        await rename(`${path}.tmp`, path)
      },
    }
  }

  async function streamThroughReload(host: RunningHost, trigger: () => Promise<void>): Promise<Stream> {
    const s = steadyStream(host.socket, jpeg)
    try {
      await waitFor(async () => s.answers.every((a) => a.length >= 3), 30_000, 'answers from the first model')
      await trigger()
      await waitFor(async () => s.answers.every((a) => a.includes(7)), 60_000, 'answers from the new model')
      // a few more after the switch
      const seen = s.answers.map((a) => a.length)
      await waitFor(async () => s.answers.every((a, i) => a.length >= seen[i] + 3), 30_000, 'answers after the switch')
    } finally {
      await s.stop()
    }

    return s
  }

  it('SIGHUP reloads every service with no failed request; the old runner stops; SIGTERM still drains', async () => {
    const m = await modelFile('hup')
    const socket = join(dir, 'hup', 'icc.sock')
    const host = await startServe(['--model', m.path], {socket})
    try {
      const before = (await http({socket}, 'GET', '/v2/models/imageClassification')).json()
      assert.equal(before.classes, 10)
      assert.equal(before.source, m.path)
      const oldPid = (await http({socket}, 'GET', '/ping')).json().services.imageClassification.runnerPid
      const s = await streamThroughReload(host, async () => {
        await m.replace(model7)
        host.proc.kill('SIGHUP')
      })
      assertSwitched(s)
      const after = (await http({socket}, 'GET', '/v2/models/imageClassification')).json()
      assert.equal(after.classes, 7)
      assert.notEqual(after.hash, before.hash)
      assert.equal(after.lastReload.ok, true)
      assert.equal(after.lastReload.trigger, 'SIGHUP')
      assert.ok(Date.parse(after.loadedAt) > Date.parse(before.loadedAt))
      await waitFor(
        async () => {
          try {
            process.kill(oldPid, 0)
            return false
          } catch {
            return true
          }
        },
        15_000,
        'the old runner to stop',
      )
      assert.match(host.stderr(), /model reloaded/)
    } finally {
      const r = await host.stop()
      assert.equal(r.exitCode, 0)
    }

    await assert.rejects(readFile(socket), /ENOENT/)
  })

  it('POST /v2/repository/models/{name}/load reloads on the socket, and on TCP only with the admin token', async () => {
    const m = await modelFile('route')
    const socket = join(dir, 'route', 'icc.sock')
    const host = await startServe(['--model', m.path, '--port', '0'], {
      env: {ICC_ADMIN_TOKEN: 'test-admin-token-1234'},
      socket,
    })
    try {
      const url = host.tcpUrl!
      const path = '/v2/repository/models/imageClassification/load'
      const none = await http({url}, 'POST', path)
      assert.equal(none.status, 401)
      assert.equal(none.json().error.code, 'ADMIN_TOKEN_REQUIRED')
      const wrong = await http({url}, 'POST', path, undefined, {authorization: 'Bearer test-admin-token-9999'})
      assert.equal(wrong.status, 401)
      const unknown = await http({socket}, 'POST', '/v2/repository/models/nope/load')
      assert.equal(unknown.status, 404)

      const s = await streamThroughReload(host, async () => {
        await m.replace(model7)
        const r = await http({socket}, 'POST', path)
        assert.equal(r.status, 200, r.body)
        assert.equal(r.json().classes, 7)
      })
      assertSwitched(s)

      // back to 10 classes over TCP with the token
      await m.replace(model10)
      const r = await http({url}, 'POST', path, undefined, {authorization: 'Bearer test-admin-token-1234'})
      assert.equal(r.status, 200, r.body)
      assert.equal(r.json().classes, 10)
      const answer = await http({socket}, 'POST', '/invocations', jpeg, {'content-type': 'image/jpeg'})
      assert.equal(parseConnectorBody(answer.body).length, 10)
    } finally {
      await host.stop()
    }
  })

  it('a broken model, or one that would not fit the memory budget, leaves the old one answering', async () => {
    const m = await modelFile('broken')
    const socket = join(dir, 'broken', 'icc.sock')
    const host = await startServe(['--model', m.path], {socket})
    const path = '/v2/repository/models/imageClassification/load'
    try {
      await writeFile(m.path, 'this is not an ONNX model')
      const r = await http({socket}, 'POST', path)
      assert.equal(r.status, 422, r.body)
      assert.match(r.json().error.message, /old model keeps serving/)
      const answer = await http({socket}, 'POST', '/invocations', jpeg, {'content-type': 'image/jpeg'})
      assert.equal(answer.status, 200)
      assert.equal(parseConnectorBody(answer.body).length, 10)
      assert.equal((await http({socket}, 'GET', '/v2/health/ready')).status, 200)
      const model = (await http({socket}, 'GET', '/v2/models/imageClassification')).json()
      assert.equal(model.classes, 10)
      assert.equal(model.lastReload.ok, false)
      assert.ok(model.lastReload.error.code)
      // SIGHUP with the broken file: still serving, still alive
      host.proc.kill('SIGHUP')
      await waitFor(async () => /"trigger":"SIGHUP"/.test(host.stderr()), 30_000, 'the failed SIGHUP reload')
      const again = await http({socket}, 'POST', '/invocations', jpeg, {'content-type': 'image/jpeg'})
      assert.equal(parseConnectorBody(again.body).length, 10)
    } finally {
      await host.stop()
    }

    const m2 = await modelFile('budget')
    const socket2 = join(dir, 'budget', 'icc.sock')
    const small = await startServe(['--model', m2.path, '--memory-budget-kb', '1000'], {socket: socket2})
    try {
      await m2.replace(model7)
      const r = await http({socket: socket2}, 'POST', path)
      assert.equal(r.status, 409, r.body)
      assert.equal(r.json().error.code, 'RELOAD_NO_MEMORY')
      assert.match(r.json().error.message, /--memory-budget-kb 1000/)
      const answer = await http({socket: socket2}, 'POST', '/invocations', jpeg, {'content-type': 'image/jpeg'})
      assert.equal(parseConnectorBody(answer.body).length, 10)
    } finally {
      await small.stop()
    }
  })

  it('--watch reloads once the model file has been written completely', async () => {
    const m = await modelFile('watch')
    const socket = join(dir, 'watch', 'icc.sock')
    const host = await startServe(['--model', m.path, '--watch'], {socket})
    try {
      const s = await streamThroughReload(host, async () => {
        // written in place in two halves with a pause: the half-written file is never loaded
        const bytes = await readFile(model7)
        const f = await open(m.path, 'w')
        await f.write(bytes, 0, bytes.length >> 1)
        await new Promise((r) => {
          setTimeout(r, 400)
        })
        await f.write(bytes, bytes.length >> 1)
        await f.close()
      })
      assertSwitched(s)
      const model = (await http({socket}, 'GET', '/v2/models/imageClassification')).json()
      assert.equal(model.lastReload.trigger, 'watch')
      assert.equal(model.lastReload.ok, true)
      assert.doesNotMatch(host.stderr(), /model reload failed/)
    } finally {
      await host.stop()
    }
  })
})
