/**
 * `icc export-component`: the recipe against the JSON Schema of the recipe format (schemas/greengrass-v2/), the
 * same parameter errors as create-connector, and the exported folder run as the nucleus runs a component: laid out
 * in a component store, its variables interpolated, its Install and Run steps executed by `sh -c` on this machine
 * (amd64 manifest, the real bundle), the seed's Lambda example (Python SDK) answered through the IPC port with the
 * environment the deployment document gives it, then the Run process stopped with SIGTERM. The installed bundle
 * also runs `icc predict` on the WebAssembly runtime, whose browser builds it leaves out.
 */
import {execa} from 'execa'
import assert from 'node:assert/strict'
import {chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parse as parseYaml} from 'yaml'

import {buildRecipe, DEFAULT_SETTINGS, type Recipe, recipeText, validateRecipe} from '../../src/greengrass-v2/recipe.js'
import {icc, iccJson, unwrap} from '../helpers/cli.js'
import {solidJpeg} from '../helpers/images.js'
import {requirePythonNumpy, runSeedLambda} from '../helpers/lambda.js'
import {packTarGz, writeModelDir} from '../helpers/model-fixtures.js'
import {interpolate, layOut, scriptEnv, startStep, type Step} from '../helpers/nucleus.js'
import {assertSameParameterError} from '../helpers/same-error.js'

/** Bundles are cached by content: the first run of the suite builds the amd64 one, later runs reuse it. */
const BUNDLE_CACHE = join(tmpdir(), 'icc-test-bundle-cache')
const MODEL_URI = 's3://my-model-bucket/MyImageClassifier/output/model.tar.gz'
const TARGET = 'arn:aws:iot:us-west-2:123456789012:thinggroup/cameras'
const PARAMS = {
  LocalInferenceServiceMemoryLimitKB: '500000',
  LocalInferenceServiceName: 'imageClassification',
  LocalInferenceServiceTimeoutSeconds: '10',
  MLModelDestinationPath: '/ml/model',
  MLModelResourceId: 'my-ml-resource',
  MLModelSageMakerJobArn: 'arn:aws:sagemaker:us-west-2:123456789012:training-job/MyImageClassifier',
}
const CLASSES = 5

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => {
    server.listen(0, '127.0.0.1', resolve)
  })
  const {port} = server.address() as {port: number}
  await new Promise((resolve) => {
    server.close(resolve)
  })
  return port
}

function fakeRecipe(): Recipe {
  return buildRecipe({
    artifactPrefix: 's3://my-bucket/icc.imageClassification/1.0.0',
    bundles: (['amd64', 'aarch64', 'arm'] as const).map((architecture) => ({
      architecture,
      digest: Buffer.alloc(32, architecture.length).toString('base64'),
      fileName: `icc-0.1.0-linux-${architecture}.tar.gz`,
    })),
    componentName: 'icc.imageClassification',
    componentVersion: '1.0.0',
    modelUri: MODEL_URI,
    parameters: {...PARAMS, GPUAcceleration: 'GPU'},
    settings: DEFAULT_SETTINGS,
  })
}

describe('recipe format (schemas/greengrass-v2)', () => {
  it('accepts the recipe for all three platforms, in JSON and YAML alike', () => {
    const recipe = fakeRecipe()
    validateRecipe(recipe)
    assert.deepEqual(
      recipe.Manifests.map((m) => m.Platform),
      ['amd64', 'aarch64', 'arm'].map((architecture) => ({architecture, os: 'linux'})),
    )
    assert.deepEqual(parseYaml(recipeText(recipe, 'yaml')), recipe)
    assert.deepEqual(JSON.parse(recipeText(recipe, 'json')), recipe)
    for (const v of Object.values(recipe.ComponentConfiguration.DefaultConfiguration)) assert.equal(typeof v, 'string')
  })

  it('rejects what the recipe reference does not allow', () => {
    const cases: Array<[string, (r: Record<string, any>) => void, RegExp]> = [
      [
        'an AWS name',
        (r) => {
          r.ComponentName = 'aws.greengrass.Mine'
        },
        /ComponentName/,
      ],
      [
        'a version that is not semver',
        (r) => {
          r.ComponentVersion = '1.0'
        },
        /ComponentVersion/,
      ],
      [
        'a misspelt lifecycle step',
        (r) => {
          r.Manifests[0].Lifecycle.Instal = 'x'
        },
        /Lifecycle/,
      ],
      [
        'a digest without its algorithm',
        (r) => {
          delete r.Manifests[0].Artifacts[0].Algorithm
        },
        /Artifacts\/0/,
      ],
      [
        'an artifact that is not on S3',
        (r) => {
          r.Manifests[0].Artifacts[1].Uri = 'http://x/y'
        },
        /Uri/,
      ],
      [
        'Run and Startup together',
        (r) => {
          r.Manifests[0].Lifecycle.Startup = 'x'
        },
        /Lifecycle/,
      ],
    ]
    for (const [what, spoil, where] of cases) {
      const recipe = structuredClone(fakeRecipe()) as unknown as Record<string, any>
      spoil(recipe)
      assert.throws(() => validateRecipe(recipe), where, what)
    }
  })
})

/** The installed bundle keeps of onnxruntime-web only what Node loads, and icc predicts on it as natively. */
async function assertWasmRunsFrom(home: string, dir: string): Promise<void> {
  const web = join(home, 'node_modules', 'onnxruntime-web', 'dist')
  assert.deepEqual((await readdir(web)).sort(), [
    'ort-wasm-simd-threaded.mjs',
    'ort-wasm-simd-threaded.wasm',
    'ort.node.min.js',
    'ort.node.min.mjs',
  ])
  const modelDir = join(dir, 'wasm-model')
  await writeModelDir(modelDir, {numClasses: CLASSES})
  const jpeg = join(dir, 'wasm.jpg')
  await writeFile(jpeg, await solidJpeg(40, 30, {b: 200, g: 60, r: 30}))
  const args = ['predict', '--model', modelDir, jpeg, '--cache-dir', join(dir, 'wasm-cache')]
  const fromBundle = await execa(process.execPath, [
    join(home, 'bin', 'run.js'),
    ...args,
    '--runtime',
    'wasm',
    '--json',
  ])
  const native = await iccJson([...args, '--runtime', 'native'])
  const wasm = JSON.parse(fromBundle.stdout).results[0].probabilities as number[]
  const expected = native.json.results[0].probabilities as number[]
  assert.equal(wasm.length, CLASSES)
  for (const [i, p] of wasm.entries())
    assert.ok(Math.abs(p - expected[i]) <= 1e-5, `class ${i}: ${p} vs ${expected[i]}`)
}

describe('icc export-component', function () {
  this.timeout(20 * 60_000)
  let dir: string
  let out: string
  let paramsFile: string
  let result: {components: {artifacts: string[]; componentName: string; recipe: string}[]; deployment: string}

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'icc-export-'))
    paramsFile = join(dir, 'params.json')
    await writeFile(paramsFile, JSON.stringify({Parameters: PARAMS}))
    out = join(dir, 'component')
    const r = await iccJson(
      [
        'export-component',
        '--parameters',
        paramsFile,
        '--model-uri',
        MODEL_URI,
        '--output',
        out,
        '--target-arn',
        TARGET,
        '--architectures',
        'amd64',
        '--bundle-source',
        'local',
        '--cache-dir',
        BUNDLE_CACHE,
        '--lambda-component',
        'MyLambda=1.0.0',
        '--region',
        'us-west-2',
      ],
      {timeoutMs: 19 * 60_000},
    )
    assert.equal(r.exitCode, 0, r.stderr)
    result = r.json
  })

  after(async () => {
    if (dir) await rm(dir, {force: true, recursive: true})
  })

  it('writes a valid recipe, the bundle with its digest, and a private deployment document', async () => {
    const recipe = JSON.parse(await readFile(result.components[0].recipe, 'utf8')) as Recipe
    validateRecipe(recipe)
    assert.equal(recipe.ComponentName, 'icc.imageClassification')
    const {createHash} = await import('node:crypto')
    const bundle = await readFile(result.components[0].artifacts[0])
    assert.equal(recipe.Manifests[0].Artifacts[0].Digest, createHash('sha256').update(bundle).digest('base64'))
    assert.equal(recipe.Manifests[0].Artifacts[1].Uri, MODEL_URI)
    const deployment = JSON.parse(await readFile(result.deployment, 'utf8'))
    assert.equal(deployment.targetArn, TARGET)
    assert.equal(deployment.components['icc.imageClassification'].runWith.systemResourceLimits.memory, 500_000)
    assert.equal((await stat(result.deployment)).mode & 0o077, 0, 'deployment.json holds the token: owner only')
  })

  it('runs as the nucleus runs it: Install, Run, the seed Lambda answered over IPC, a clean stop', async () => {
    await requirePythonNumpy()
    const recipe = JSON.parse(await readFile(result.components[0].recipe, 'utf8')) as Recipe
    const deployment = JSON.parse(await readFile(result.deployment, 'utf8'))
    const modelDir = join(dir, 'model')
    await writeModelDir(modelDir, {numClasses: CLASSES})
    const modelTar = await packTarGz(
      modelDir,
      ['image-classification-symbol.json', 'image-classification-0001.params', 'model-shapes.json'],
      join(dir, 'model.tar.gz'),
    )
    const name = recipe.ComponentName
    const laid = await layOut(join(dir, 'greengrass'), out, name, recipe.ComponentVersion, {'model.tar.gz': modelTar})
    // the deployment's merge, then a port of our own (a second merge, as a later deployment would send)
    const port = await freePort()
    const config = {
      ...recipe.ComponentConfiguration.DefaultConfiguration,
      ...JSON.parse(deployment.components[name].configurationUpdate.merge),
      IpcPort: String(port),
    }
    const manifest = recipe.Manifests.find((m) => m.Platform.architecture === 'amd64')!
    const lifecycle = interpolate(manifest.Lifecycle, laid, config) as {
      Install: Step
      Run: Step
      Setenv: Record<string, string>
    }
    assert.doesNotMatch(JSON.stringify(lifecycle), /\{(configuration|artifacts|work):/, 'every variable interpolated')

    const install = await startStep(
      lifecycle.Install,
      scriptEnv(lifecycle, lifecycle.Install, process.env.PATH!),
      laid.workPath,
    )
    assert.equal(install.exitCode, 0, String(install.stderr))
    await assertWasmRunsFrom(lifecycle.Setenv.ICC_HOME, dir)

    const run = startStep(lifecycle.Run, scriptEnv(lifecycle, lifecycle.Run, process.env.PATH!), laid.workPath)
    try {
      await new Promise<void>((resolve, reject) => {
        let seen = ''
        run.stdout!.on('data', (chunk: Buffer) => {
          seen += chunk.toString()
          if (/icc serve: ready on/.test(seen)) resolve()
        })
        run.once('exit', (code) => reject(new Error(`Run exited (${code}) before it was ready: ${seen}`)))
      })

      const lambdaEnv = JSON.parse(deployment.components.MyLambda.configurationUpdate.merge).lambdaExecutionParameters
        .EnvironmentVariables as Record<string, string>
      assert.equal(lambdaEnv.AWS_CONTAINER_AUTHORIZATION_TOKEN, config.IpcAuthToken)
      const jpeg = join(dir, 'test.jpg')
      await writeFile(jpeg, await solidJpeg(64, 48, {b: 30, g: 60, r: 200}))
      const probabilities = await runSeedLambda(
        dir,
        jpeg,
        {PATH: process.env.PATH!, ...lambdaEnv, GG_DAEMON_PORT: String(port)},
        CLASSES,
      )
      assert.equal(probabilities.length, CLASSES)

      // the loopback + token protection holds: the nucleus's per-component token is not icc's
      const denied = await fetch(
        `http://127.0.0.1:${port}/2016-11-01/functions/arn:aws:lambda:us-west-2:aws:function:GG-ML-INF-image-classification-imageClassification/invocations`,
        {body: 'x', headers: {Authorization: 'some-other-svcuid'}, method: 'POST'},
      )
      assert.ok(denied.status >= 400, `a wrong token got ${denied.status}`)
    } finally {
      run.kill('SIGTERM')
    }

    const stopped = await run
    assert.equal(
      stopped.exitCode,
      0,
      `Run did not stop cleanly: ${stopped.signal ?? ''} ${String(stopped.stderr).slice(-2000)}`,
    )
  })

  it('fails Install with a clear message when Node.js is missing or too old', async () => {
    const recipe = JSON.parse(await readFile(result.components[0].recipe, 'utf8')) as Recipe
    const laid = await layOut(join(dir, 'gg-node'), out, recipe.ComponentName, recipe.ComponentVersion)
    const lifecycle = interpolate(recipe.Manifests[0].Lifecycle, laid, {}) as {
      Install: Step
      Setenv?: Record<string, string>
    }
    const empty = join(dir, 'no-node-bin')
    await mkdir(empty, {recursive: true})
    const missing = await startStep(lifecycle.Install, scriptEnv(lifecycle, lifecycle.Install, empty), laid.workPath)
    assert.equal(missing.exitCode, 1)
    assert.match(
      String(missing.stderr),
      /icc: Node\.js is not installed on this device .* needs Node\.js 20\.11 or later/,
    )

    const old = join(dir, 'old-node-bin')
    await mkdir(old, {recursive: true})
    await writeFile(
      join(old, 'fake-version.cjs'),
      "Object.defineProperty(process.versions, 'node', {value: '18.20.4'}); Object.defineProperty(process, 'version', {value: 'v18.20.4'})\n",
    )
    await writeFile(
      join(old, 'node'),
      `#!/bin/sh\nexec ${process.execPath} --require ${join(old, 'fake-version.cjs')} "$@"\n`,
    )
    await chmod(join(old, 'node'), 0o755)
    const tooOld = await startStep(
      lifecycle.Install,
      scriptEnv(lifecycle, lifecycle.Install, `${old}:/usr/bin:/bin`),
      laid.workPath,
    )
    assert.equal(tooOld.exitCode, 1)
    assert.match(String(tooOld.stderr), /icc: Node\.js v18\.20\.4 is too old: icc needs 20\.11 or later/)
  })

  it('rejects a parameters file create-connector rejects, with the same message', async () => {
    const bad = join(dir, 'bad.json')
    await writeFile(bad, JSON.stringify({...PARAMS, LocalInferenceServiceTimeoutSeconds: 10, MLModelResourceId: 'a b'}))
    const message = await assertSameParameterError('export-component', bad, ['--output', join(dir, 'never')])
    assert.match(message, /LocalInferenceServiceTimeoutSeconds must be a string/)
    await assert.rejects(stat(join(dir, 'never')), /ENOENT/)
  })

  it("refuses AWS's aws.greengrass namespace and a non-empty output folder", async () => {
    const reserved = await icc([
      'export-component',
      '--parameters',
      paramsFile,
      '--model-uri',
      MODEL_URI,
      '--component-name',
      'aws.greengrass.ImageClassification',
      '--output',
      join(dir, 'x'),
    ])
    assert.equal(reserved.exitCode, 2)
    assert.match(unwrap(reserved.stderr), /in AWS's own aws\.greengrass namespace/)
    const again = await icc(['export-component', '--parameters', paramsFile, '--model-uri', MODEL_URI, '--output', out])
    assert.equal(again.exitCode, 2)
    assert.match(unwrap(again.stderr), /is not empty/)
  })
})
