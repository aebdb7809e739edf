/**
 * The hard memory cap of `icc serve` with the kernel's memory cgroup (v1 on these machines, v2 where delegated),
 * the real binary and a real runner: a request that makes the runner allocate twice its cap in one step is
 * answered MEMORY_LIMIT after the kernel's OOM kill (the group's usage never over the cap), and the next request is
 * served by the restarted runner. The cap is the runner's measured load on this runtime plus 50 MB (native: about
 * 160 MB, wasm: about 190 MB; `npm run test:wasm`). Skipped, with the reason printed, where no memory controller is
 * writable.
 */
import assert from 'node:assert/strict'
import {existsSync, readFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {CGROUP_V1_MEMORY} from '../../src/serve/cgroup.js'
import {memoryMode} from '../../src/serve/memory-mode.js'
import {writeTinyOnnxModel} from '../helpers/onnx-tiny.js'
import {http, measureRunnerStart, noiseImage, runnerPid, startServe, waitFor, withFault} from '../helpers/serve-host.js'

/** What the cap leaves the runner above its measured load. */
const HEADROOM_KB = 50_000

/** The memory group of a runner (cgroup v1): under this process's own group or the root. */
function groupOf(pid: number): string | undefined {
  const own = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => /:memory(,|:)/.test(l))
    ?.split(':')[2]
  const leaf = `icc-imageClassification-${pid}`
  return [join(CGROUP_V1_MEMORY, own ?? '/', leaf), join(CGROUP_V1_MEMORY, leaf)].find((d) => existsSync(d))
}

describe('icc serve hard memory cap (kernel memory cgroup)', function () {
  this.timeout(120_000)

  it('the kernel kills a runner that allocates twice its cap in one step: MEMORY_LIMIT, then served again', async function () {
    const mode = await memoryMode()
    if (!mode.hard) {
      console.log(`    skipped: no writable memory cgroup here (${mode.reason})`)
      this.skip()
    }

    const dir = await mkdtemp(join(tmpdir(), 'icc-cgroup-'))
    const model = await writeTinyOnnxModel(join(dir, 'm.onnx'))
    const jpeg = await noiseImage('jpeg')
    const socket = join(dir, 'icc.sock')
    const capKb = Math.ceil(((await measureRunnerStart(model)).peakKb + HEADROOM_KB) / 10_000) * 10_000
    const host = await startServe(['--model', model, '--memory-limit-kb', String(capKb)], {faults: true, socket})
    try {
      const sock = {socket}
      const info = (await http(sock, 'GET', '/v2/models/imageClassification')).json()
      assert.equal(info.memoryMode, mode.mode)
      const pid = (await runnerPid(sock))!
      // what the kernel saw: the group's peak usage, sampled until the group is gone
      const peaks: number[] = []
      const group = mode.mode === 'cgroup-v1' ? groupOf(pid) : undefined
      if (mode.mode === 'cgroup-v1') assert.ok(group, 'the runner is in its own memory group')
      const sampling = {on: true}
      const sampler = (async () => {
        if (!group) return
        while (sampling.on) {
          try {
            peaks.push(Number(readFileSync(join(group, 'memory.max_usage_in_bytes'), 'utf8')))
          } catch {
            return
          }

          await new Promise((r) => {
            setTimeout(r, 5)
          })
        }
      })()
      const res = await http(sock, 'POST', '/invocations', withFault(jpeg, `alloc:${Math.ceil((2 * capKb) / 1000)}`), {
        'content-type': 'image/jpeg',
      })
      sampling.on = false
      await sampler
      assert.equal(res.status, 500, res.body)
      assert.equal(res.json().error.code, 'MEMORY_LIMIT')
      assert.match(res.json().error.message, new RegExp(`${capKb} KB`))
      if (group) {
        assert.ok(peaks.length > 0)
        assert.ok(Math.max(...peaks) <= capKb * 1024, `peak ${Math.max(...peaks)} over the cap`)
      }

      assert.match(host.stderr(), /"reason":"memory"/)
      await waitFor(async () => (await http(sock, 'GET', '/v2/health/ready')).status === 200, 30_000, 'the restart')
      const next = await http(sock, 'POST', '/invocations', jpeg, {'content-type': 'image/jpeg'})
      assert.equal(next.status, 200)
      assert.notEqual(await runnerPid(sock), pid)
    } finally {
      await host.stop()
      await rm(dir, {force: true, recursive: true})
    }
  })
})
