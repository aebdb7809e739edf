/**
 * The connector contract end to end: the real `icc serve --ipc-port` (host, runner, ONNX Runtime, a SageMaker-format
 * model written by the project's MXNet writer) answers the documentation's usage-example Lambda under Debian's
 * python3 + numpy through sdk/python, and the Python SDK and the TypeScript client map failures to the SDK's two
 * exceptions.
 */
import assert from 'node:assert/strict'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {
  GreengrassDependencyException,
  GreengrassInferenceException,
  invokeInferenceService,
  parsePredictions,
} from '../../src/client/index.js'
import {icc} from '../helpers/cli.js'
import {python, requirePythonNumpy, runSeedLambda, sdkCasesScript} from '../helpers/lambda.js'
import {writeModelDir} from '../helpers/model-fixtures.js'
import {type RunningHost, solidImage, startServe} from '../helpers/serve-host.js'

const CLASSES = 7
const REGION = 'us-west-2'
const SERVICE = 'imageClassification'

describe('icc serve --ipc-port: the seed Lambda and the SDK error mapping against the real host', function () {
  this.timeout(120_000)
  let dir: string
  let host: RunningHost
  let env: Record<string, string>
  let jpegPath: string
  let ready: {ipc: {env: Record<string, string>; port: number; tokenGenerated: boolean; url: string}}

  before(async () => {
    await requirePythonNumpy()
    dir = await mkdtemp(join(tmpdir(), 'icc-ipc-e2e-'))
    const model = await writeModelDir(join(dir, 'model'), {numClasses: CLASSES})
    jpegPath = join(dir, 'test.jpg')
    await writeFile(jpegPath, await solidImage('jpeg', {b: 40, g: 160, r: 220}))
    host = await startServe(
      [
        '--model',
        model.dir,
        '--service-name',
        SERVICE,
        '--cache-dir',
        join(dir, 'cache'),
        '--ipc-port',
        '0',
        '--region',
        REGION,
        '--print-env',
        '--json',
      ],
      {env: {PATH: process.env.PATH ?? ''}, socket: join(dir, 'icc.sock')},
    )
    ready = JSON.parse(host.stdout().split('\n')[0])
    env = ready.ipc.env
  })

  after(async () => {
    await host?.stop()
    if (dir) await rm(dir, {force: true, recursive: true})
  })

  it('announces the IPC endpoint and the Lambda environment (--print-env); a generated token is not logged', () => {
    assert.equal(ready.ipc.url, `http://127.0.0.1:${ready.ipc.port}`)
    assert.deepEqual(Object.keys(env).sort(), [
      'AWS_CONTAINER_AUTHORIZATION_TOKEN',
      'AWS_REGION',
      'GGC_MAX_INTERFACE_VERSION',
      'GG_DAEMON_PORT',
    ])
    assert.equal(env.GG_DAEMON_PORT, String(ready.ipc.port))
    assert.equal(env.AWS_REGION, REGION)
    assert.match(env.GGC_MAX_INTERFACE_VERSION, /^1\.([2-9]|\d\d+)$/)
    assert.equal(ready.ipc.tokenGenerated, true)
    assert.ok(env.AWS_CONTAINER_AUTHORIZATION_TOKEN.length >= 24)
    assert.ok(!host.stderr().includes(env.AWS_CONTAINER_AUTHORIZATION_TOKEN), 'token printed twice')
  })

  it("runs the documentation's usage-example Lambda and parses its predictions exactly as the example does", async () => {
    const parsed = await runSeedLambda(dir, jpegPath, env, CLASSES)

    // The same image through the native socket gives the same probabilities.
    const native = await icc(['invoke', jpegPath, '--socket', host.socket, '--service-name', SERVICE])
    assert.equal(native.exitCode, 0, native.stderr)
    const direct = JSON.parse(native.stdout.trim()) as number[]
    assert.equal(direct.length, CLASSES)
    for (const [i, p] of direct.entries()) assert.ok(Math.abs(p - parsed[i]) < 1e-6, `class ${i}`)
  })

  it('Python SDK: corrupt image → inference exception; unknown service, wrong token → dependency exception', async () => {
    const script = join(dir, 'cases.py')
    await writeFile(
      script,
      `${sdkCasesScript(SERVICE)}
print(json.dumps({
    'ok': attempt({}, **good),
    'corrupt': attempt({}, **args(Body=b'\\xff\\xd8 not really a jpeg')),
    'gif': attempt({}, **args(ContentType='image/gif')),
    'unknown_service': attempt({}, **args(ServiceName='noSuchService')),
    'wrong_token': attempt({'AWS_CONTAINER_AUTHORIZATION_TOKEN': 'wrong'}, **good),
    'other_region': attempt({'AWS_REGION': 'eu-west-1'}, **good),
}))
`,
    )
    const r = await python(script, env, [jpegPath])
    assert.equal(r.exitCode, 0, String(r.stderr))
    const results = JSON.parse(String(r.stdout)) as Record<string, {error?: string; message?: string; ok?: string}>
    assert.equal((JSON.parse(results.ok.ok!) as number[]).length, CLASSES)
    const expect: Array<[string, string, RegExp]> = [
      ['corrupt', 'GreengrassInferenceException', /not a (valid )?JPEG|cannot be decoded|corrupt/i],
      ['gif', 'GreengrassInferenceException', /"image\/gif" is not supported/],
      ['unknown_service', 'GreengrassDependencyException', /noSuchService/],
      ['wrong_token', 'GreengrassDependencyException', /HTTP 403/],
      ['other_region', 'GreengrassDependencyException', /region|eu-west-1/],
    ]
    for (const [name, error, message] of expect) {
      assert.equal(results[name].error, error, `${name}: ${JSON.stringify(results[name])}`)
      assert.match(results[name].message!, message, `${name}: ${results[name].message}`)
    }
  })

  it('TypeScript client: predictions, corrupt image, unknown service, wrong token', async () => {
    const options = {port: ready.ipc.port, region: REGION, token: env.AWS_CONTAINER_AUTHORIZATION_TOKEN}
    const Body = await readFile(jpegPath)
    const ok = await invokeInferenceService(
      {AlgoType: 'image-classification', Body, ContentType: 'image/jpeg', ServiceName: SERVICE},
      options,
    )
    assert.equal(parsePredictions(ok.Body).length, CLASSES)
    await assert.rejects(
      invokeInferenceService(
        {
          AlgoType: 'image-classification',
          Body: Buffer.from('garbage'),
          ContentType: 'image/jpeg',
          ServiceName: SERVICE,
        },
        options,
      ),
      GreengrassInferenceException,
    )
    await assert.rejects(
      invokeInferenceService(
        {AlgoType: 'image-classification', Body, ContentType: 'image/jpeg', ServiceName: 'noSuchService'},
        options,
      ),
      GreengrassDependencyException,
    )
    await assert.rejects(
      invokeInferenceService(
        {AlgoType: 'image-classification', Body, ContentType: 'image/jpeg', ServiceName: SERVICE},
        {...options, token: 'wrong'},
      ),
      (error: unknown) => error instanceof GreengrassDependencyException && error.status === 403,
    )
  })

  it('server down: Python SDK and TypeScript client raise the dependency exception', async () => {
    const stopped = await host.stop()
    assert.equal(stopped.exitCode, 0, host.stderr())
    const script = join(dir, 'down.py')
    await writeFile(
      script,
      `${sdkCasesScript(SERVICE)}
print(json.dumps(attempt({}, **args(Body=b'x'))))
`,
    )
    const r = await python(script, env)
    assert.equal(r.exitCode, 0, String(r.stderr))
    assert.equal(JSON.parse(String(r.stdout)).error, 'GreengrassDependencyException')
    await assert.rejects(
      invokeInferenceService(
        {AlgoType: 'image-classification', Body: Buffer.from('x'), ContentType: 'image/jpeg', ServiceName: SERVICE},
        {port: ready.ipc.port, region: REGION, token: env.AWS_CONTAINER_AUTHORIZATION_TOKEN},
      ),
      GreengrassDependencyException,
    )
  })
})
