/**
 * Test helpers for the connector's Lambda contract: the seed document's usage-example Lambda (cut out of the
 * connector documentation, with only the allowed edits), a harness that records what the example parses, and
 * Debian's python3 with PYTHONPATH=sdk/python.
 */
import {execa} from 'execa'
import assert from 'node:assert/strict'
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {REPO_ROOT, SHARED} from './cli.js'

export const PYTHON = '/usr/bin/python3'
const SEED = join(SHARED, 'seed', 'image-classification-connector.md')

/** Fail early, with the fix, when python3 + numpy are missing. */
export async function requirePythonNumpy(): Promise<void> {
  const numpy = await execa(PYTHON, ['-c', 'import numpy'], {reject: false})
  if (numpy.exitCode !== 0) throw new Error(`${PYTHON} with numpy is required (apt-get install python3-numpy)`)
}

/** The seed's usage example, cut out of the connector documentation (the first code block after its heading). */
export async function seedExample(): Promise<string> {
  const doc = await readFile(SEED, 'utf8')
  const section = doc.slice(doc.indexOf('## Usage Example'))
  const m = /```\n(import logging[\s\S]*?)```/.exec(section)
  assert.ok(m, 'usage example not found in the seed document')
  return m[1]
}

/**
 * Write the example Lambda (image path changed, one call only, the body decoded for Python 3: nothing else) and
 * a harness that runs its handler once and prints, as JSON, the arrays the example's own `np.fromstring` parsed.
 * Returns the harness path and the Lambda path (its two arguments, in order).
 */
export async function writeSeedLambda(dir: string, imagePath: string): Promise<[string, string]> {
  const edits: Array<[string, string]> = [
    ["'/test_img/test.jpg'", JSON.stringify(imagePath)],
    // Python 3: the body is bytes; decode it before split(',').
    ["predictions = resp['Body'].read()", "predictions = resp['Body'].read().decode('utf-8')"],
    // Stop after one call.
    ['    Timer(1, infer).start()', '    # Timer(1, infer).start()  (icc test: one call only)'],
  ]
  let lambda = await seedExample()
  for (const [from, to] of edits) {
    assert.equal(lambda.split(from).length, 2, `expected exactly one "${from}" in the example`)
    lambda = lambda.replace(from, to)
  }

  const lambdaPath = join(dir, 'lambda_function.py')
  await writeFile(lambdaPath, lambda)
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
  return [harness, lambdaPath]
}

/** Run a Python script under Debian's python3 with only `env` (plus PYTHONPATH=sdk/python). */
export async function python(script: string, env: Record<string, string>, args: string[] = []) {
  return execa(PYTHON, [script, ...args], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      ...env,
      PYTHONDONTWRITEBYTECODE: '1',
      PYTHONPATH: join(REPO_ROOT, 'sdk', 'python'),
    },
    extendEnv: false,
    reject: false,
    timeout: 30_000,
  })
}

/**
 * The start of a Python script that calls the SDK once per case: `attempt(env_changes, **kwargs)` returns
 * {ok: body} or {error: class name, message}; `good` is a valid call for `service` with the JPEG at argv[1]
 * (when given), `args(**over)` a variation of it (None removes an argument).
 */
export const sdkCasesScript = (service: string) => `
import json, os, sys
import greengrass_machine_learning_sdk as ml

jpeg = b''
if len(sys.argv) > 1:
    with open(sys.argv[1], 'rb') as f:
        jpeg = f.read()

good = dict(AlgoType='image-classification', ServiceName='${service}', ContentType='image/jpeg', Body=jpeg)
def args(**over):
    a = dict(good)
    a.update(over)
    return dict((k, v) for k, v in a.items() if v is not None)

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
`

/**
 * Run the seed Lambda (see {@link writeSeedLambda}) once with `env`; check that it logged its predictions without
 * an exception and that it parsed one array of `classes` probabilities summing to 1 ± 1e-4. Returns that array.
 */
export async function runSeedLambda(
  dir: string,
  imagePath: string,
  env: Record<string, string>,
  classes: number,
): Promise<number[]> {
  const [harness, lambdaPath] = await writeSeedLambda(dir, imagePath)
  const r = await python(harness, env, [lambdaPath])
  assert.equal(r.exitCode, 0, String(r.stderr))
  assert.doesNotMatch(String(r.stderr), /exception/i, String(r.stderr))
  assert.match(String(r.stderr), /INFO invoking Greengrass ML Inference service/)
  assert.match(String(r.stderr), /INFO predictions: \[/)
  const parsed = JSON.parse(String(r.stdout)) as number[][]
  assert.equal(parsed.length, 1)
  assert.equal(parsed[0].length, classes)
  const sum = parsed[0].reduce((a, b) => a + b, 0)
  assert.ok(Math.abs(sum - 1) <= 1e-4, `sum ${sum}`)
  return parsed[0]
}
