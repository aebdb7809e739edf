/**
 * Dynamic batching (`icc serve --max-batch N`, 2 by default) end to end: the real binary and runner, ONNX Runtime, real images.
 * A fault (the tests' fault runner) holds the first request in its decode stage, so the requests behind it are decoded and waiting
 * when ONNX Runtime becomes free: which requests share a run is then known, and the Server-Timing header and the
 * metrics must show it. Every answer must equal the model run in-process on that image alone.
 */
import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {runTinyModel, writeTinyOnnxModel} from '../helpers/onnx-tiny.js'
import {http, noiseImage, parseConnectorBody, type RunningHost, startServe, withFault} from '../helpers/serve-host.js'

const NAME = 'batched'

describe('icc serve --max-batch (dynamic batching, real runner)', function () {
  this.timeout(60_000)
  let dir: string
  let host: RunningHost
  let model: string
  let sock: {socket: string}
  let images: Buffer[]

  const expected = async (bytes: Buffer) => runTinyModel(model, bytes)

  const invoke = async (body: Buffer, headers: Record<string, string> = {}, target = sock) =>
    http(target, 'POST', '/invocations', body, {'content-type': 'image/jpeg', ...headers})

  const batchOf = (res: {headers: Record<string, unknown>}) => {
    const m = /batch;desc=(\d+)/.exec(String(res.headers['server-timing']))
    assert.ok(m, `no batch in Server-Timing: ${String(res.headers['server-timing'])}`)
    return Number(m[1])
  }

  /** Send `bodies` in order, the first one held in its decode stage for `holdMs`. */
  async function burst(bodies: Buffer[], target = sock, holdMs = 700) {
    const first = invoke(withFault(bodies[0], `sleep:${holdMs}`), {}, target)
    // the held request reaches the runner first; the others queue behind it in arrival order
    await new Promise((r) => {
      setTimeout(r, 100)
    })
    const rest = bodies.slice(1).map(async (b) => invoke(b, {}, target))
    return Promise.all([first, ...rest])
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'icc-batch-'))
    model = await writeTinyOnnxModel(join(dir, 'tiny.onnx'))
    images = await Promise.all(Array.from({length: 5}, async (_, i) => noiseImage('jpeg', 40 + i * 8, 30, i + 3)))
    sock = {socket: join(dir, 'icc.sock')}
    host = await startServe(['--model', model, '--service-name', NAME, '--max-batch', '3'], {
      faults: true,
      socket: sock.socket,
    })
  })

  after(async () => {
    const r = await host?.stop()
    if (r) assert.equal(r.exitCode, 0, host.stderr())
    await rm(dir, {force: true, recursive: true})
  })

  it('serves a lone request at once, in a batch of one', async () => {
    const res = await invoke(images[0])
    assert.equal(res.status, 200, res.body)
    assert.equal(batchOf(res), 1)
  })

  it('runs the requests waiting behind a busy runner together, up to --max-batch, each answer its own', async () => {
    const answers = await burst(images)
    for (const [i, res] of answers.entries()) {
      assert.equal(res.status, 200, res.body)
      const want = await expected(images[i])
      const got = parseConnectorBody(res.body)
      assert.equal(got.length, want.length)
      // the same numbers as the image run alone (a batched run may differ in the last bit of a float)
      for (const [k, v] of got.entries()) assert.ok(Math.abs(v - want[k]) <= 1e-6, `image ${i} class ${k}`)
    }

    // arrival order is kept: the held image and the two behind it make one run of 3, the last two a run of 2
    assert.deepEqual(
      answers.map((r) => batchOf(r)),
      [3, 3, 3, 2, 2],
    )
    const metrics = (await http(sock, 'GET', '/metrics')).body
    assert.match(metrics, new RegExp(`icc_batched_requests_total\\{service="${NAME}",batch_size="3"\\} 3`))
    assert.match(metrics, new RegExp(`icc_batched_requests_total\\{service="${NAME}",batch_size="2"\\} 2`))
  })

  it('serves a model whose batch dimension is fixed one image at a time, and says so at start-up', async () => {
    const fixed = await writeTinyOnnxModel(join(dir, 'fixed.onnx'), {batch: 1})
    const socket = join(dir, 'fixed.sock')
    const other = await startServe(['--model', fixed, '--service-name', 'fixed', '--max-batch', '4'], {
      faults: true,
      socket,
    })
    try {
      assert.match(other.stderr() + other.stdout(), /--max-batch 4 is ignored: the model does not run a batch of 4/)
      const answers = await Promise.all(
        images.map(async (b) => http({socket}, 'POST', '/invocations', b, {'content-type': 'image/jpeg'})),
      )
      for (const [i, res] of answers.entries()) {
        assert.equal(res.status, 200, res.body)
        assert.equal(batchOf(res), 1)
        assert.deepEqual(
          parseConnectorBody(res.body).map((v) => Math.fround(v)),
          [...(await expected(images[i]))],
        )
      }
    } finally {
      await other.stop()
    }
  })

  it('batches up to 2 images by default; a model with a fixed batch size then runs one at a time, unannounced', async () => {
    const socket = join(dir, 'default.sock')
    /** Batch sizes of a held burst of 3 at a host started with default settings (no --max-batch). */
    const defaultBatches = async (modelPath: string, check?: (output: string) => void) => {
      const other = await startServe(['--model', modelPath, '--service-name', 'plain'], {faults: true, socket})
      try {
        check?.(other.stderr() + other.stdout())
        const answers = await burst(images.slice(0, 3), {socket})
        for (const res of answers) assert.equal(res.status, 200, res.body)
        return answers.map((r) => batchOf(r))
      } finally {
        await other.stop()
      }
    }

    assert.deepEqual(await defaultBatches(model), [2, 2, 1])
    const fixed = await writeTinyOnnxModel(join(dir, 'fixed-default.onnx'), {batch: 1})
    const batches = await defaultBatches(fixed, (output) => assert.doesNotMatch(output, /max-batch/))
    assert.deepEqual(batches, [1, 1, 1])
  })

  it('answers a bad image in the middle of a batch with its own error; the others are served', async () => {
    const garbage = Buffer.from('not an image at all, just text')
    const answers = await burst([images[1], garbage, images[2]])
    assert.equal(answers[0].status, 200)
    assert.equal(answers[1].status, 400)
    assert.equal(answers[1].json().error.code, 'BAD_IMAGE')
    assert.equal(answers[2].status, 200)
    assert.deepEqual([batchOf(answers[0]), batchOf(answers[2])], [2, 2])
  })
})
