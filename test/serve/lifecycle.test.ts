/**
 * `icc serve` life cycle with the real binary: several services from one connector definition, start-up failures
 * (memory cap too small, GPU without CUDA, bad configuration), crash loops, and SIGTERM with requests in flight.
 */
import assert from 'node:assert/strict'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {icc, unwrap} from '../helpers/cli.js'
import {runTinyModel, writeTinyOnnxModel} from '../helpers/onnx-tiny.js'
import {
  alive,
  connector,
  FAULT_RUNNER,
  http,
  measureRunnerStart,
  noiseImage,
  parseConnectorBody,
  restartDeadlineSeconds,
  startServe,
  waitFor,
  withFault,
} from '../helpers/serve-host.js'

describe('icc serve life cycle', function () {
  this.timeout(60_000)
  let dir: string
  let modelA: string
  let modelB: string
  let jpeg: Buffer

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'icc-life-'))
    modelA = await writeTinyOnnxModel(join(dir, 'a.onnx'))
    modelB = await writeTinyOnnxModel(join(dir, 'b.onnx'), {classes: 6, height: 8, width: 8})
    jpeg = await noiseImage('jpeg')
  })

  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  it('runs every Image Classification connector of a definition as its own service; a crash loop stops only one', async () => {
    const def = join(dir, 'definition.json')
    // the request sent behind a killed one waits for the restart: 5 s, or more where a runner's measured start
    // (the wasm runtime, a loaded machine) needs it
    const seconds = restartDeadlineSeconds(await measureRunnerStart(modelA), 5)
    const deadline = {LocalInferenceServiceTimeoutSeconds: String(seconds)}
    await writeFile(
      def,
      JSON.stringify({
        Connectors: [
          connector('A', 'serviceA', modelA, deadline),
          {
            ConnectorArn: 'arn:aws:greengrass:us-west-2::/connectors/TwilioNotifications/versions/5',
            Id: 'other',
            Parameters: {},
          },
          connector('B', 'serviceB', modelB, deadline),
        ],
      }),
    )
    const socket = join(dir, 'def', 'icc.sock')
    const host = await startServe(['--definition', def, '--pipeline-depth', '2'], {faults: true, socket})
    try {
      const sock = {socket}
      const a = await http(sock, 'POST', '/services/serviceA/invocations', jpeg, {'content-type': 'image/jpeg'})
      const b = await http(sock, 'POST', '/services/serviceB/invocations', jpeg, {'content-type': 'image/jpeg'})
      assert.equal(parseConnectorBody(a.body).length, 4)
      assert.equal(parseConnectorBody(b.body).length, 6)
      const ready = (await http(sock, 'GET', '/v2/health/ready')).json().services
      assert.notEqual(ready.serviceA.runnerPid, ready.serviceB.runnerPid)

      // a burst of concurrent requests to both services: every one gets exactly one, correct answer
      const burst = await Promise.all(
        Array.from({length: 40}, async (_, i) =>
          http(sock, 'POST', `/services/service${i % 2 ? 'B' : 'A'}/invocations`, jpeg, {'content-type': 'image/jpeg'}),
        ),
      )
      for (const [i, r] of burst.entries()) {
        assert.equal(r.status, 200, r.body)
        assert.equal(r.body, i % 2 ? b.body : a.body)
      }

      // A busy (sleeping) does not hold B up
      const slowA = http(sock, 'POST', '/services/serviceA/invocations', withFault(jpeg, 'sleep:1500'), {
        'content-type': 'image/jpeg',
      })
      let aDone = false
      slowA.then(() => {
        aDone = true
      })
      const fastB = await http(sock, 'POST', '/services/serviceB/invocations', jpeg, {'content-type': 'image/jpeg'})
      assert.equal(fastB.status, 200)
      assert.equal(aDone, false, 'B answered while A was still busy')
      assert.equal((await slowA).status, 200)

      // pipelining: a request sent behind the one that was running when the runner died is not lost
      const pidA = (await http(sock, 'GET', '/v2/health/ready')).json().services.serviceA.runnerPid
      const running = http(sock, 'POST', '/services/serviceA/invocations', withFault(jpeg, 'sleep:1500'), {
        'content-type': 'image/jpeg',
      })
      await waitFor(
        async () => (await http(sock, 'GET', '/v2/health/ready')).json().services.serviceA.queueDepth === 1,
        5000,
        'the slow request to be admitted',
      )
      const behind = http(sock, 'POST', '/services/serviceA/invocations', jpeg, {'content-type': 'image/jpeg'})
      await waitFor(
        async () => (await http(sock, 'GET', '/v2/health/ready')).json().services.serviceA.queueDepth === 2,
        5000,
        'the second request to be admitted',
      )
      process.kill(pidA, 'SIGKILL')
      assert.equal((await running).json().error.code, 'RUNNER_RESTARTING')
      const second = await behind
      assert.equal(second.status, 200, second.body)
      assert.equal(second.body, a.body)

      // crash A four more times (the SIGKILL above was the first crash): five crashes within a minute make it
      // not ready, the host stays up and B keeps answering
      for (let i = 0; i < 4; i++) {
        await waitFor(
          async () => {
            const s = (await http(sock, 'GET', '/v2/health/ready')).json().services.serviceA
            return s.ready || s.state === 'failed'
          },
          20_000,
          'serviceA to restart',
        )

        const r = await http(sock, 'POST', '/services/serviceA/invocations', withFault(jpeg, 'crash'), {
          'content-type': 'image/jpeg',
        })
        assert.equal(r.status, 503)
        assert.equal(r.json().error.code, 'RUNNER_RESTARTING')
        assert.match(r.json().error.message, /exited with code 70/)
      }

      await waitFor(async () => (await http(sock, 'GET', '/v2/health/ready')).status === 503, 10_000, 'not ready')
      const r = await http(sock, 'GET', '/v2/health/ready')
      assert.equal(r.json().services.serviceA.ready, false)
      assert.match(r.json().services.serviceA.reason, /crashed 5 times/)
      assert.equal(r.json().services.serviceB.ready, true)
      assert.equal((await http(sock, 'GET', '/ping')).status, 503)
      assert.equal((await http(sock, 'GET', '/v2/health/live')).status, 200)
      const refused = await http(sock, 'POST', '/services/serviceA/invocations', jpeg, {'content-type': 'image/jpeg'})
      assert.equal(refused.status, 503)
      assert.equal(refused.json().error.code, 'SERVICE_NOT_READY')
      assert.ok(Number(refused.headers['retry-after']) > 0)
      const stillB = await http(sock, 'POST', '/services/serviceB/invocations', jpeg, {'content-type': 'image/jpeg'})
      assert.equal(stillB.status, 200)
    } finally {
      const r = await host.stop()
      assert.equal(r.exitCode, 0, host.stderr())
    }
  })

  it('serves a --parameters file; on SIGTERM finishes the requests in flight, stops the runner and exits 0', async () => {
    const socket = join(dir, 'term', 'icc.sock')
    const params = join(dir, 'term-params.json')
    await writeFile(
      params,
      JSON.stringify(connector('T', 'fromParams', modelA, {LocalInferenceServiceTimeoutSeconds: '10'}).Parameters),
    )
    const host = await startServe(['--parameters', params, '--json'], {faults: true, socket})
    const readyLine = JSON.parse(host.stdout().split('\n')[0])
    assert.equal(readyLine.event, 'ready')
    assert.equal(readyLine.addresses.socket, socket)
    assert.equal(readyLine.services[0].name, 'fromParams')
    const sock = {socket}
    const {runnerPid} = (await http(sock, 'GET', '/v2/health/ready')).json().services.fromParams
    const inflight = [1, 2].map(async () =>
      http(sock, 'POST', '/invocations', withFault(jpeg, 'sleep:700'), {'content-type': 'image/jpeg'}),
    )
    await waitFor(
      async () => (await http(sock, 'GET', '/v2/health/ready')).json().services.fromParams.queueDepth === 2,
      5000,
      'both requests admitted',
    )
    host.proc.kill('SIGTERM')
    const answers = await Promise.all(inflight)
    for (const a of answers) {
      assert.equal(a.status, 200, a.body)
      assert.equal(parseConnectorBody(a.body).length, 4)
    }

    const r = await host.exited
    assert.equal(r.exitCode, 0, host.stderr())
    assert.equal(alive(runnerPid), false, 'runner stopped')
    assert.match(host.stderr(), /shutting down/)
    // NDJSON: one JSON value per line, the ready event, then the result
    const values = host
      .stdout()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line))
    assert.equal(values.length, 2, host.stdout())
    assert.equal(values[1].stoppedBy, 'SIGTERM')
  })

  it('fails start-up with the measured need when the model cannot load within --memory-limit-kb (exit 4)', async () => {
    const r = await icc(
      [
        'serve',
        '--model',
        modelA,
        '--memory-limit-kb',
        '60000',
        '--socket',
        join(dir, 'mem', 'icc.sock'),
        '--runner-entry',
        FAULT_RUNNER,
      ],
      {
        // 150 MB touched while loading: over the cap in RSS (watchdog) and in a memory cgroup's own count alike
        env: {ICC_TEST_LOAD_ALLOC_MB: '150'},
      },
    )
    assert.equal(r.exitCode, 4, r.stderr)
    assert.match(r.stderr, /MEMORY_LIMIT_TOO_SMALL/)
    const measured = Number(/needed (?:at least )?(\d+) KB/.exec(unwrap(r.stderr))?.[1])
    assert.ok(measured > 60_000, r.stderr)
    // the lever that makes a model fit when the limit cannot be raised, as a command for this model
    assert.ok(
      unwrap(r.stderr).includes(`icc convert-model ${modelA} --output model.int8.onnx --quantize int8`),
      r.stderr,
    )
  })

  it('fails start-up with a dependency error naming what is missing for GPU; --allow-cpu-fallback runs on the CPU', async () => {
    const r = await icc([
      'serve',
      '--model',
      modelA,
      '--gpu-acceleration',
      'GPU',
      '--socket',
      join(dir, 'gpu', 'icc.sock'),
      // onnxruntime-node's CUDA provider (the wasm runtime's GPU error: ../model/runtimes.test.ts)
      '--runtime',
      'native',
      '--json',
    ])
    assert.equal(r.exitCode, 5, r.stderr)
    const err = JSON.parse(r.stdout).error
    assert.equal(err.code, 'CUDA_UNAVAILABLE')
    assert.match(err.message, /CUDA execution provider/)
    assert.match(err.message, /libonnxruntime_providers_cuda\.so|libcudart|libcublas/)
    assert.ok(err.suggestions.some((s: string) => /allow-cpu-fallback/.test(s)))

    const socket = join(dir, 'gpu2', 'icc.sock')
    // (this host also takes the fast preprocessing: the runner gets the mode, /v2/models shows it)
    const flags = ['--model', modelA, '--gpu-acceleration', 'GPU', '--allow-cpu-fallback', '--resize', 'fast']
    const host = await startServe(flags, {socket})
    try {
      assert.match(host.stderr(), /running on the CPU \(--allow-cpu-fallback\)/)
      const m = (await http({socket}, 'GET', '/v2/models/imageClassification')).json()
      assert.equal(m.provider, 'cpu')
      assert.deepEqual(m.preprocessing, {mode: 'fast'})
      const photo = await noiseImage('jpeg', 90, 70, 5)
      const res = await http({socket}, 'POST', '/invocations', photo, {'content-type': 'image/jpeg'})
      assert.equal(res.status, 200)
      const fast = [...(await runTinyModel(modelA, photo, 16, 'fast'))]
      assert.deepEqual(
        parseConnectorBody(res.body).map((v) => Math.fround(v)),
        fast,
      )
      assert.notDeepEqual(fast, [...(await runTinyModel(modelA, photo, 16, 'exact'))], 'the modes differ on it')
    } finally {
      await host.stop()
    }
  })

  it('refuses bad configuration (exit 2) and a model that cannot be loaded (exit 4)', async () => {
    const badName = await icc([
      'serve',
      '--model',
      modelA,
      '--service-name',
      'bad name!',
      '--socket',
      join(dir, 'x.sock'),
    ])
    assert.equal(badName.exitCode, 2)
    assert.match(badName.stderr, /--service-name/)
    const noModel = await icc(['serve', '--model', join(dir, 'missing.onnx'), '--socket', join(dir, 'x.sock')])
    assert.equal(noModel.exitCode, 2)
    assert.match(noModel.stderr, /does not exist/)
    const def = join(dir, 'empty-def.json')
    await writeFile(
      def,
      JSON.stringify({
        Connectors: [{ConnectorArn: 'arn:aws:greengrass:us-west-2::/connectors/Other/versions/1', Id: 'x'}],
      }),
    )
    const noIc = await icc(['serve', '--definition', def, '--socket', join(dir, 'x.sock')])
    assert.equal(noIc.exitCode, 2)
    assert.match(noIc.stderr, /no connector has an Image Classification ConnectorArn/)
    const corrupt = join(dir, 'corrupt.onnx')
    await writeFile(corrupt, 'definitely not protobuf')
    const badModel = await icc(['serve', '--model', corrupt, '--socket', join(dir, 'x.sock'), '--json'])
    assert.equal(badModel.exitCode, 4, badModel.stderr)
    assert.match(JSON.parse(badModel.stdout).error.message, /could not be loaded/)
    const params = join(dir, 'params.json')
    await writeFile(params, JSON.stringify({LocalInferenceServiceTimeoutSeconds: '0', MLModelDestinationPath: modelA}))
    const badParams = await icc(['serve', '--parameters', params, '--socket', join(dir, 'x.sock')])
    assert.equal(badParams.exitCode, 2)
    assert.match(badParams.stderr, /LocalInferenceServiceTimeoutSeconds/)
  })
})
