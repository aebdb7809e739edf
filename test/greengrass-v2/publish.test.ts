/**
 * `icc publish-component` and `icc deploy-component` through the real AWS SDK: S3 is s3rver behind the recording
 * loopback endpoint (test/helpers/aws-wire.ts), Greengrass V2 is answered by that endpoint. Checked on the wire:
 * the inline recipe decodes to the exported recipe with its artifact URIs rewritten, the digests match the files
 * (and the objects s3rver holds), a large artifact goes up in parts, an object already there is skipped, an existing
 * version is a clear error, a denied bucket leaves nothing half-published, and the deployment keeps the target's
 * other components.
 */
import {GetObjectCommand, S3Client} from '@aws-sdk/client-s3'
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {promisify} from 'node:util'

import {fileDigest} from '../../src/greengrass-v2/bundle.js'
import {buildDeployment} from '../../src/greengrass-v2/deployment.js'
import {buildRecipe, DEFAULT_SETTINGS, type Recipe, recipeText} from '../../src/greengrass-v2/recipe.js'
import {ACCESS_KEY_ID, AWS_ENV, SECRET_KEY} from '../aws/fixtures.js'
import {AwsWire, jsonError, type WireRequest} from '../helpers/aws-wire.js'
import {iccJson} from '../helpers/cli.js'
import {type S3Server, startS3rver} from '../helpers/s3rver.js'

const BUCKET = 'icc-artifacts'
const NAME = 'icc.imageClassification'
const TARGET = 'arn:aws:iot:us-west-2:123456789012:thing/MyCamera'
const execFileAsync = promisify(execFile)
const sha = (b: Buffer) => createHash('sha256').update(b).digest('base64')

describe('icc publish-component / deploy-component (real SDK, loopback wire + s3rver)', function () {
  this.timeout(180_000)
  let tmp: string
  let dir: string
  let wire: AwsWire
  let s3server: S3Server
  let s3url: string
  let exported: Recipe
  const files: Record<string, Buffer> = {}
  const published: Array<Recipe> = []

  const greengrass = (req: WireRequest) => {
    if (req.method === 'POST' && req.path === '/greengrass/v2/createComponentVersion') {
      const recipe = JSON.parse(Buffer.from(JSON.parse(req.body).inlineRecipe, 'base64').toString('utf8')) as Recipe
      const exists = published.some(
        (r) => r.ComponentName === recipe.ComponentName && r.ComponentVersion === recipe.ComponentVersion,
      )
      if (exists) return jsonError('ConflictException', 'Component version already exists', 409)
      published.push(recipe)
      return {
        body: {
          arn: `arn:aws:greengrass:us-west-2:123456789012:components:${recipe.ComponentName}:versions:${recipe.ComponentVersion}`,
          componentName: recipe.ComponentName,
          componentVersion: recipe.ComponentVersion,
          creationTimestamp: 1_700_000_000,
          status: {componentState: 'REQUESTED'},
        },
      }
    }

    if (req.method === 'GET' && req.path === '/greengrass/v2/deployments') {
      return {body: {deployments: [{deploymentId: 'old-deployment', targetArn: req.query.targetArn}]}}
    }

    if (req.method === 'GET' && req.path === '/greengrass/v2/deployments/old-deployment') {
      return {
        body: {
          components: {
            'aws.greengrass.Nucleus': {componentVersion: '2.12.0'},
            MyImageLambda: {componentVersion: '1.0.0'},
            [NAME]: {componentVersion: '0.9.0'},
          },
          deploymentId: 'old-deployment',
          targetArn: TARGET,
        },
      }
    }

    if (req.method === 'POST' && req.path === '/greengrass/v2/deployments') {
      return {body: {deploymentId: 'new-deployment', iotJobId: 'job'}}
    }

    if (/^\/denied-bucket(\/|$)/.test(req.path)) return {status: 403}
    return undefined
  }

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'icc-publish-'))
    let port: number
    ;({port, server: s3server} = await startS3rver(join(tmp, 's3'), [BUCKET]))
    s3url = `http://127.0.0.1:${port}`
    wire = (await AwsWire.start()).proxyTo(s3url)

    // an exported folder: a large (multipart) and a small artifact, with their digests in the recipe
    dir = join(tmp, 'component')
    const artifactDir = join(dir, 'artifacts', NAME, '1.0.0')
    await mkdir(artifactDir, {recursive: true})
    await mkdir(join(dir, 'recipes'))
    files['icc-0.1.0-linux-x64.tar.gz'] = randomBytes(11 * 1024 * 1024)
    files['icc-0.1.0-linux-arm64.tar.gz'] = randomBytes(4096)
    const bundles = []
    for (const [[file, bytes], architecture] of Object.entries(files).map(
      (e, i) => [e, i ? 'aarch64' : 'amd64'] as const,
    )) {
      await writeFile(join(artifactDir, file), bytes)
      bundles.push({architecture, digest: await fileDigest(join(artifactDir, file)), fileName: file})
    }

    exported = buildRecipe({
      artifactPrefix: `s3://replace-with-your-artifact-bucket/${NAME}/1.0.0`,
      bundles,
      componentName: NAME,
      componentVersion: '1.0.0',
      modelUri: 's3://my-models/MyJob/output/model.tar.gz',
      parameters: {
        LocalInferenceServiceMemoryLimitKB: '500000',
        LocalInferenceServiceName: 'imageClassification',
        LocalInferenceServiceTimeoutSeconds: '10',
      },
      settings: DEFAULT_SETTINGS,
    })
    await writeFile(join(dir, 'recipes', `${NAME}-1.0.0.json`), recipeText(exported, 'json'))
    const deployment = buildDeployment({
      components: [{componentName: NAME, componentVersion: '1.0.0', ipcPort: 8000, memoryLimitKb: 500_000}],
      targetArn: TARGET,
      token: 'token-for-the-test',
    })
    await writeFile(join(dir, 'deployment.json'), JSON.stringify(deployment))
  })

  after(async () => {
    await wire?.close()
    await s3server?.close()
    if (tmp) await rm(tmp, {force: true, recursive: true})
  })

  beforeEach(() => {
    wire.reset()
    wire.on('other', greengrass)
  })

  const run = (args: string[]) => iccJson([...args, '--endpoint-url', wire.url], {env: AWS_ENV})

  it('--dry-run prints the exact requests and sends nothing', async () => {
    const r = await run(['publish-component', dir, '--artifact-bucket', BUCKET, '--dry-run'])
    assert.equal(r.exitCode, 0, r.stderr)
    assert.deepEqual(
      r.json.requests.map((q: {operation: string}) => q.operation),
      [
        'HeadBucket',
        'HeadObject',
        'CreateMultipartUpload+UploadPart+CompleteMultipartUpload',
        'HeadObject',
        'PutObject',
        'CreateComponentVersion',
      ],
    )
    assert.equal(wire.requests.length, 0)
  })

  it('uploads (multipart for the large one), rewrites the URIs and creates the version with the recipe inline', async () => {
    const r = await run(['publish-component', dir, '--artifact-bucket', BUCKET])
    assert.equal(r.exitCode, 0, r.stderr)
    const sent = published.at(-1)!
    const expected = structuredClone(exported)
    for (const m of expected.Manifests) {
      m.Artifacts[0].Uri = `s3://${BUCKET}/${NAME}/1.0.0/${m.Artifacts[0].Uri.split('/').pop()}`
    }

    assert.deepEqual(sent, expected, 'the inline recipe is the exported one, URIs rewritten')
    const s3 = new S3Client({
      credentials: {accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_KEY},
      endpoint: s3url,
      forcePathStyle: true,
      region: 'us-west-2',
    })
    for (const m of sent.Manifests) {
      const file = m.Artifacts[0].Uri.split('/').pop()!
      assert.equal(m.Artifacts[0].Digest, sha(files[file]), `${file}: digest of the file`)
      const object = await s3.send(new GetObjectCommand({Bucket: BUCKET, Key: `${NAME}/1.0.0/${file}`}))
      assert.equal(
        sha(Buffer.from(await object.Body!.transformToByteArray())),
        sha(files[file]),
        `${file}: bytes in S3`,
      )
    }

    s3.destroy()
    assert.ok(
      wire.requests.some((q) => q.method === 'POST' && 'uploads' in q.query),
      'a multipart upload was started',
    )
    assert.ok(wire.requests.filter((q) => q.method === 'PUT' && 'partNumber' in q.query).length >= 2, 'in parts')
    assert.match(await readFile(join(dir, 'recipes', `${NAME}-1.0.0.json`), 'utf8'), new RegExp(`s3://${BUCKET}/`))
  })

  it('sends the CreateComponentVersion body that `aws greengrassv2 create-component-version` sends', async function () {
    const aws = await execFileAsync('aws', ['--version']).catch((error: Error) => error)
    if (aws instanceof Error) {
      console.log(`      (skipped: the aws CLI is not installed here: ${aws.message.split('\n')[0]})`)
      this.skip()
    }

    // Both send the published recipe (1.0.0 exists by now, so both get 409; the requests are what counts).
    const recipeFile = join(dir, 'recipes', `${NAME}-1.0.0.json`)
    await run(['publish-component', dir, '--artifact-bucket', BUCKET])
    const cli = await execFileAsync(
      'aws',
      [
        'greengrassv2',
        'create-component-version',
        '--inline-recipe',
        `fileb://${recipeFile}`,
        '--endpoint-url',
        wire.url,
      ],
      {env: {...process.env, ...AWS_ENV, AWS_DEFAULT_REGION: 'us-west-2'}},
    ).catch((error: {stderr?: string}) => error)
    const sent = wire.requests.filter((q) => q.path === '/greengrass/v2/createComponentVersion')
    assert.equal(sent.length, 2, `icc and the aws CLI each sent one request (aws: ${JSON.stringify(cli)})`)
    const [icc, awsCli] = sent.map((q) => JSON.parse(q.body) as Record<string, string>)
    // Both fill the idempotency token themselves (a fresh UUID each time); everything else is byte-for-byte.
    for (const body of [icc, awsCli]) assert.match(body.clientToken ?? '', /^[\da-f-]{36}$/)
    assert.deepEqual({...icc, clientToken: 'uuid'}, {...awsCli, clientToken: 'uuid'})
    assert.equal(Buffer.from(icc.inlineRecipe, 'base64').toString('utf8'), await readFile(recipeFile, 'utf8'))
  })

  it('skips artifacts already there and refuses to replace an existing version (exit 3)', async () => {
    const r = await run(['publish-component', dir, '--artifact-bucket', BUCKET])
    assert.equal(r.exitCode, 3)
    assert.equal(r.json.error.code, 'COMPONENT_VERSION_EXISTS')
    assert.match(r.json.error.message, /already exists .* never replaces a component version/)
    assert.equal(
      wire.requests.filter((q) => q.method === 'PUT' || (q.method === 'POST' && 'uploads' in q.query)).length,
      0,
    )
  })

  it('a denied bucket leaves nothing half-published (exit 3, no upload, no version)', async () => {
    const before = published.length
    const r = await run(['publish-component', dir, '--artifact-bucket', 'denied-bucket'])
    assert.equal(r.exitCode, 3)
    assert.equal(r.json.error.code, 'ACCESS_DENIED')
    assert.equal(published.length, before)
    assert.deepEqual(
      wire.requests.map((q) => `${q.method} ${q.path.replace(/\/$/, '')}`),
      ['HEAD /denied-bucket'],
    )
  })

  it('deploys, keeping the target latest deployment components and replacing ours', async () => {
    const r = await run(['deploy-component', dir])
    assert.equal(r.exitCode, 0, r.stderr)
    assert.deepEqual(r.json.keptComponents, ['aws.greengrass.Nucleus', 'MyImageLambda'])
    const create = wire.requests.find((q) => q.method === 'POST' && q.path === '/greengrass/v2/deployments')
    const body = JSON.parse(create!.body)
    assert.equal(body.targetArn, TARGET)
    assert.deepEqual(Object.keys(body.components).sort(), ['MyImageLambda', 'aws.greengrass.Nucleus', NAME].sort())
    assert.equal(body.components[NAME].componentVersion, '1.0.0')
    assert.equal(body.components[NAME].runWith.systemResourceLimits.memory, 500_000)
    assert.equal(JSON.parse(body.components[NAME].configurationUpdate.merge).IpcAuthToken, 'token-for-the-test')
    const list = wire.requests.find((q) => q.method === 'GET' && q.path === '/greengrass/v2/deployments')!
    assert.equal(list.query.targetArn, TARGET)
    assert.equal(list.query.historyFilter, 'LATEST_ONLY')
  })
})
