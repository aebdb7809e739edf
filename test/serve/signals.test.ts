/**
 * Signals other than SIGTERM/SIGINT (issue 21, item 7), against the real `icc serve` host and runner: SIGUSR1 never
 * opens Node's inspector (no TCP listener appears in either process), SIGUSR2 and SIGHUP do not end either one (the
 * host logs them and keeps its socket), and the service answers after all of them.
 */
import assert from 'node:assert/strict'
import {existsSync, readdirSync, readFileSync, readlinkSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {writeTinyOnnxModel} from '../helpers/onnx-tiny.js'
import {alive, http, noiseImage, runnerPid, type RunningHost, startServe, waitFor} from '../helpers/serve-host.js'

/** TCP ports this process listens on (its socket inodes matched against /proc/net/tcp{,6} LISTEN rows). */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (m) inodes.add(m[1])
    } catch {
      // closed meanwhile
    }
  }

  const ports: number[] = []
  for (const table of [`/proc/${pid}/net/tcp`, `/proc/${pid}/net/tcp6`]) {
    if (!existsSync(table)) continue
    for (const row of readFileSync(table, 'utf8').trim().split('\n').slice(1)) {
      const f = row.trim().split(/\s+/)
      if (f[3] === '0A' && inodes.has(f[9])) ports.push(Number.parseInt(f[1].split(':')[1], 16))
    }
  }

  return ports
}

describe('icc serve: SIGUSR1, SIGUSR2 and SIGHUP', function () {
  this.timeout(120_000)
  let dir: string
  let host: RunningHost

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'icc-signals-'))
    const model = await writeTinyOnnxModel(join(dir, 'model.onnx'))
    host = await startServe(['--model', model], {socket: join(dir, 'icc.sock')})
  })

  after(async () => {
    await host?.stop()
    await rm(dir, {force: true, recursive: true})
  })

  it('never opens the inspector on SIGUSR1; survives SIGUSR2 and SIGHUP (host and runner), logs them, and serves on', async () => {
    const hostPid = host.proc.pid!
    const runner = await runnerPid({socket: host.socket})
    assert.ok(runner)
    const before = {host: listeningPorts(hostPid), runner: listeningPorts(runner)}
    // SIGHUP to the host reloads the models (test/serve/reload.test.ts): here only the runner gets it
    for (const signal of ['SIGUSR1', 'SIGUSR2', 'SIGHUP'] as const) {
      process.kill(runner, signal)
      if (signal !== 'SIGHUP') process.kill(hostPid, signal)
    }

    // the host logs each signal, and relays the runner's lines: two of SIGUSR1/2 once both have handled them
    for (const [signal, count] of [
      ['SIGUSR1', 2],
      ['SIGUSR2', 2],
      ['SIGHUP', 1],
    ] as const) {
      await waitFor(
        async () => (host.stderr().match(new RegExp(`${signal} received; ignored`, 'g')) ?? []).length >= count,
        15_000,
        `host and runner to log ${signal}`,
      )
    }

    const r = await http({socket: host.socket}, 'POST', '/invocations', await noiseImage('jpeg'), {
      'content-type': 'image/jpeg',
    })
    assert.equal(r.status, 200, r.body)
    assert.ok(alive(hostPid) && alive(runner), 'host or runner ended')
    assert.equal(await runnerPid({socket: host.socket}), runner, 'the runner was replaced')
    assert.doesNotMatch(host.stderr(), /Debugger listening|Starting inspector/i)
    assert.deepEqual(listeningPorts(hostPid), before.host, 'the host opened a TCP listener (the inspector)')
    assert.deepEqual(listeningPorts(runner), before.runner, 'the runner opened a TCP listener (the inspector)')
    assert.ok(existsSync(host.socket))

    const exit = await host.stop()
    assert.equal(exit.exitCode, 0, host.stderr())
  })
})
