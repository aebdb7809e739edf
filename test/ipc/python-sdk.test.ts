/**
 * The Python Greengrass Machine Learning SDK (sdk/python) against the IPC endpoint: the connector documentation's
 * usage example Lambda runs under Debian's python3 + numpy with only the allowed changes, and the SDK maps every
 * failure to the documented exception. Real python3 processes, real HTTP on loopback; the host is the
 * FakeDispatcher stand-in.
 */
import {execa} from 'execa'
import assert from 'node:assert/strict'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import sharp from 'sharp'

import {type IpcServer, lambdaEnvironment, startIpcServer} from '../../src/serve/ipc.js'
import {REPO_ROOT} from '../helpers/cli.js'
import {FakeDispatcher} from '../helpers/fake-dispatcher.js'

const PYTHON = '/usr/bin/python3'
const TOKEN = 'py-token-0123456789'
const REGION = 'us-east-1'
const SEED = join(REPO_ROOT, '..', 'shared', 'seed', 'image-classification-connector.md')
const CLASSES = 11

/** The seed's usage example, cut out of the connector documentation (the first code block after its heading). */
async function seedExample(): Promise<string> {
  const doc = await readFile(SEED, 'utf8')
  const section = doc.slice(doc.indexOf('## Usage Example'))
  const m = /```\n(import logging[\s\S]*?)```/.exec(section)
  assert.ok(m, 'usage example not found in the seed document')
  return m[1]
}

/** Runs a Python script with the Lambda environment of the server on `port`. */
async function python(script: string, env: Record<string, string>, args: string[] = []) {
  return execa(PYTHON, [script, ...args], {
    cwd: REPO_ROOT,
    env: {...env, PYTHONDONTWRITEBYTECODE: '1', PYTHONPATH: join(REPO_ROOT, 'sdk', 'python')},
    extendEnv: false,
    reject: false,
    timeout: 30_000,
  })
}

describe('Python Greengrass ML SDK over the IPC endpoint', () => {
  let dir: string
  let server: IpcServer
  let dispatcher: FakeDispatcher
  let env: Record<string, string>
  let jpegPath: string

  before(async () => {
    const numpy = await execa(PYTHON, ['-c', 'import numpy'], {reject: false})
    if (numpy.exitCode !== 0) throw new Error(`${PYTHON} with numpy is required (apt-get install python3-numpy)`)
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
    const original = await seedExample()
    const edits: Array<[string, string]> = [
      ["'/test_img/test.jpg'", JSON.stringify(jpegPath)],
      // Python 3: the body is bytes; decode it before split(',').
      ["predictions = resp['Body'].read()", "predictions = resp['Body'].read().decode('utf-8')"],
      // Stop after one call.
      ['    Timer(1, infer).start()', '    # Timer(1, infer).start()  (icc test: one call only)'],
    ]
    let lambda = original
    for (const [from, to] of edits) {
      assert.equal(lambda.split(from).length, 2, `expected exactly one "${from}" in the example`)
      lambda = lambda.replace(from, to)
    }

    const lambdaPath = join(dir, 'lambda_function.py')
    await writeFile(lambdaPath, lambda)
    // The harness configures logging and records what np.fromstring parses inside the example's own infer().
    const harness = join(dir, 'harness.py')
    await writeFile(
      harness,
      [
        'import json, logging, sys',
        'import numpy as np',
        'logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")',
        'parsed = []',
        '_fromstring = np.fromstring',
        'def _recording(*args, **kwargs):',
        '    result = _fromstring(*args, **kwargs)',
        '    parsed.append(result.tolist())',
        '    return result',
        'np.fromstring = _recording',
        'namespace = {"__name__": "lambda_function"}',
        'with open(sys.argv[1]) as f:',
        '    exec(compile(f.read(), sys.argv[1], "exec"), namespace)',
        'namespace["function_handler"]({}, None)',
        'print(json.dumps(parsed))',
      ].join('\n'),
    )
    const before = dispatcher.calls.length
    const r = await python(harness, env, [lambdaPath])
    assert.equal(r.exitCode, 0, String(r.stderr))
    assert.doesNotMatch(String(r.stderr), /exception/, String(r.stderr))
    assert.match(String(r.stderr), /INFO invoking Greengrass ML Inference service/)
    assert.match(String(r.stderr), /INFO predictions: \[/)
    const parsed = JSON.parse(String(r.stdout)) as number[][]
    assert.equal(parsed.length, 1)
    assert.equal(parsed[0].length, CLASSES)
    const sum = parsed[0].reduce((a, b) => a + b, 0)
    assert.ok(Math.abs(sum - 1) <= 1e-4, `sum ${sum}`)
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
      `
import json, os, sys
import greengrass_machine_learning_sdk as ml

with open(sys.argv[1], 'rb') as f:
    jpeg = f.read()

def attempt(changes, **kwargs):
    saved = dict(os.environ)
    os.environ.update(changes)
    try:
        resp = ml.client('inference').invoke_inference_service(**kwargs)
        return {'ok': resp['Body'].read().decode('utf-8')}
    except Exception as e:
        return {'error': e.__class__.__name__, 'message': str(e)}
    finally:
        os.environ.clear()
        os.environ.update(saved)

good = dict(AlgoType='image-classification', ServiceName='imageClassification', ContentType='image/jpeg', Body=jpeg)
def args(**over):
    a = dict(good)
    a.update(over)
    return dict((k, v) for k, v in a.items() if v is not None)

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
