/**
 * The start-up advice of `icc serve` when the model does not load within --memory-limit-kb (issue 22 item 4): the
 * runner killed part way through loading gives only a lower bound, so serve measures a complete load and warm-up
 * again without the cap and advises that peak; one retry with the advised value starts, and `icc doctor --model`
 * gives the same figure (the same measurement). Real binary, real runners, the kernel's memory cgroup where
 * writable (else the RSS watchdog).
 */
import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {icc, iccJson} from '../helpers/cli.js'
import {writeTinyOnnxModel} from '../helpers/onnx-tiny.js'
import {http, noiseImage, startServe} from '../helpers/serve-host.js'

const TOO_SMALL_KB = '20000'

/** The figure of "Raise --memory-limit-kb ... to at least N". */
function advised(suggestions: string[]): number {
  const n = Number(/to at least (\d+)/.exec(suggestions[0])?.[1])
  assert.ok(n > 0, `no advised figure in ${JSON.stringify(suggestions)}`)
  return n
}

describe('icc serve start-up memory advice', function () {
  this.timeout(180_000)
  let dir: string
  let model: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'icc-advice-'))
    model = await writeTinyOnnxModel(join(dir, 'tiny.onnx'))
  })

  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  it('advises the peak of a complete load measured without the cap; serving with it starts and answers; doctor agrees', async () => {
    const r = await icc(
      ['serve', '--model', model, '--memory-limit-kb', TOO_SMALL_KB, '--socket', join(dir, 'a.sock'), '--json'],
      {timeoutMs: 120_000},
    )
    assert.equal(r.exitCode, 4, r.stderr)
    const {error} = JSON.parse(r.stdout)
    assert.equal(error.code, 'MEMORY_LIMIT_TOO_SMALL')
    assert.match(error.message, /stopped at \d+ KB while loading it, and a complete load and warm-up measured/)
    const need = advised(error.suggestions)

    const socket = join(dir, 'b.sock')
    const host = await startServe(['--model', model, '--memory-limit-kb', String(need)], {socket})
    try {
      const res = await http({socket}, 'POST', '/invocations', await noiseImage('jpeg'), {'content-type': 'image/jpeg'})
      assert.equal(res.status, 200, res.body)
    } finally {
      await host.stop()
    }

    // doctor measures the same way (Service.measureLoad): its figure is serve's, up to the noise of two loads
    const doctor = await iccJson(['doctor', '--model', model, '--memory-limit-kb', TOO_SMALL_KB])
    const check = doctor.json.checks.find((c: {id: string}) => c.id === 'model')
    assert.equal(check.status, 'fail', JSON.stringify(check))
    const fromDoctor = advised([check.fix])
    assert.ok(Math.abs(fromDoctor - need) / need < 0.2, `doctor ${fromDoctor} KB, serve ${need} KB`)
  })
})
