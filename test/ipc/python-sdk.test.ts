/**
 * The Python Greengrass Machine Learning SDK (sdk/python) against the IPC endpoint: the connector documentation's
 * usage example Lambda runs under Debian's python3 + numpy with only the allowed changes, and the SDK maps every
 * failure to the documented exception. Real python3 processes, real HTTP on loopback; the host is the
 * FakeDispatcher stand-in.
 */
import assert from 'node:assert/strict'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import sharp from 'sharp'

import {type IpcServer, lambdaEnvironment, startIpcServer} from '../../src/serve/ipc.js'
import {FakeDispatcher} from '../helpers/fake-dispatcher.js'
import {python, requirePythonNumpy, runSeedLambda, sdkCasesScript} from '../helpers/lambda.js'

const TOKEN = 'py-token-0123456789'
const REGION = 'us-east-1'
const CLASSES = 11

describe('Python Greengrass ML SDK over the IPC endpoint', () => {
  let dir: string
  let server: IpcServer
  let dispatcher: FakeDispatcher
  let env: Record<string, string>
  let jpegPath: string

  before(async () => {
    await requirePythonNumpy()
    dir = await mkdtemp(join(tmpdir(), 'icc-ipc-py-'))
    jpegPath = join(dir, 'test.jpg')
    await sharp({create: {background: {b: 40, g: 160, r: 220}, channels: 3, height: 32, width: 32}})
      .jpeg()
      .toFile(jpegPath)
    dispatcher = new FakeDispatcher({imageClassification: {classes: CLASSES}})
    server = await startIpcServer({authToken: TOKEN, dispatcher, region: REGION})
    env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      ...lambdaEnvironment({port: server.port, region: REGION, token: TOKEN}),
    }
  })

  after(async () => {
    await server?.close()
    if (dir) await rm(dir, {force: true, recursive: true})
  })

  it('runs the documentation usage example Lambda and parses its predictions', async () => {
    const before = dispatcher.calls.length
    await runSeedLambda(dir, jpegPath, env, CLASSES)
    assert.equal(dispatcher.calls.length, before + 1)
    assert.equal(dispatcher.calls.at(-1)!.request.contentType, 'image/jpeg')
    assert.ok(dispatcher.calls.at(-1)!.request.body.equals(await readFile(jpegPath)))
  })

  it('maps failures to GreengrassInferenceException / GreengrassDependencyException and validates arguments', async () => {
    const {port: downPort} = await startIpcServer({authToken: TOKEN, dispatcher}).then(async (s) => {
      await s.close()
      return s
    })
    const script = join(dir, 'cases.py')
    await writeFile(
      script,
      `${sdkCasesScript('imageClassification')}
default = {}
results = {
    'ok': attempt(default, **good),
    'corrupt': attempt(default, **args(Body=b'not an image')),
    'gif': attempt(default, **args(ContentType='image/gif')),
    'unknown_service': attempt(default, **args(ServiceName='nope')),
    'bad_algo': attempt(default, **args(AlgoType='object-detection')),
    'wrong_token': attempt({'AWS_CONTAINER_AUTHORIZATION_TOKEN': 'wrong'}, **good),
    'no_token': attempt({'AWS_CONTAINER_AUTHORIZATION_TOKEN': ''}, **good),
    'server_down': attempt({'GG_DAEMON_PORT': sys.argv[2]}, **good),
    'missing_service': attempt(default, **args(ServiceName=None)),
    'missing_body': attempt(default, **args(Body=None)),
    'missing_algo': attempt(default, **args(AlgoType=None)),
    'bad_service_name': attempt(default, **args(ServiceName='-x')),
    'bad_algo_name': attempt(default, **args(AlgoType='a' * 64)),
    'str_body': attempt(default, **args(Body='text')),
    'iv_old': attempt({'GGC_MAX_INTERFACE_VERSION': '1.1'}, **good),
    'iv_major': attempt({'GGC_MAX_INTERFACE_VERSION': '2.0'}, **good),
    'iv_missing': attempt({'GGC_MAX_INTERFACE_VERSION': ''}, **good),
    'bad_port': attempt({'GG_DAEMON_PORT': 'http'}, **good),
    'no_region': attempt({'AWS_REGION': ''}, **good),
}
try:
    ml.client('iot-data')
    results['client_type'] = {'ok': ''}
except ValueError as e:
    results['client_type'] = {'error': 'ValueError', 'message': str(e)}
print(json.dumps(results))
`,
    )
    const r = await python(script, env, [jpegPath, String(downPort)])
    assert.equal(r.exitCode, 0, String(r.stderr))
    const results = JSON.parse(String(r.stdout)) as Record<string, {error?: string; message?: string; ok?: string}>
    assert.equal((JSON.parse(results.ok.ok!) as number[]).length, CLASSES)
    const expect: Array<[string, string, RegExp]> = [
      ['corrupt', 'GreengrassInferenceException', /not a JPEG or PNG image/],
      ['gif', 'GreengrassInferenceException', /image\/gif is not supported/],
      ['unknown_service', 'GreengrassDependencyException', /HTTP 404.*no local inference service named "nope"/],
      ['bad_algo', 'GreengrassDependencyException', /AlgoType "object-detection" is not supported/],
      ['wrong_token', 'GreengrassDependencyException', /HTTP 403/],
      ['no_token', 'GreengrassDependencyException', /HTTP 401.*AWS_CONTAINER_AUTHORIZATION_TOKEN/],
      ['server_down', 'GreengrassDependencyException', /cannot reach the Greengrass IPC endpoint at localhost/],
      ['missing_service', 'ValueError', /ServiceName argument .* is a required argument/],
      ['missing_body', 'ValueError', /Body argument .* is a required argument/],
      ['missing_algo', 'ValueError', /AlgoType argument .* is a required argument/],
      ['bad_service_name', 'ValueError', /service_name must match the regex \^\[a-zA-Z0-9\]\[a-zA-Z0-9-\]\{1,62\}\$/],
      ['bad_algo_name', 'ValueError', /algo_type must match the regex/],
      ['str_body', 'ValueError', /Body argument .* must be bytes/],
      ['iv_old', 'ValueError', /version incompatibility.*GGC_MAX_INTERFACE_VERSION=1\.1/],
      ['iv_major', 'ValueError', /version incompatibility.*GGC_MAX_INTERFACE_VERSION=2\.0/],
      ['iv_missing', 'ValueError', /GGC_MAX_INTERFACE_VERSION is not set/],
      ['bad_port', 'ValueError', /GG_DAEMON_PORT='http' is not a TCP port/],
      ['no_region', 'GreengrassDependencyException', /AWS_REGION is not set/],
      ['client_type', 'ValueError', /'iot-data' is not supported.*inference/],
    ]
    for (const [name, error, message] of expect) {
      assert.equal(results[name].error, error, `${name}: ${JSON.stringify(results[name])}`)
      assert.match(results[name].message!, message, name)
    }
  })
})
