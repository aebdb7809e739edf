import {PutObjectCommand, S3Client} from '@aws-sdk/client-s3'
import {execa} from 'execa'
import assert from 'node:assert/strict'
import {mkdir, mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import * as tar from 'tar'

import {AwsWire} from '../helpers/aws-wire.js'
import {BIN, icc, iccJson} from '../helpers/cli.js'
import {writeModelDir} from '../helpers/model-fixtures.js'
import {type S3Server, startS3rver} from '../helpers/s3rver.js'
import {ACCESS_KEY_ID, AWS_ENV, JOB_ARN, JOB_NAME, SECRET_KEY, trainingJob} from './fixtures.js'

const BUCKET = 'icc-models'
const keyOf = (job: string) => `output/${job}/output/model.tar.gz`
const arnOf = (job: string) => JOB_ARN.replace(JOB_NAME, job)

describe('icc pull-model against s3rver (real binary)', function () {
  this.timeout(120_000)
  let tmp: string
  let s3server: S3Server
  let wire: AwsWire
  let modelBytes: Buffer
  let paramsBytes: Buffer
  const outputs: string[] = []

  const argsFor = (job: string, destination: string) => [
    'pull-model',
    '--sagemaker-job-arn',
    arnOf(job),
    '--destination',
    destination,
    '--endpoint-url',
    wire.url,
    '--cache-dir',
    join(tmp, 'cache'),
  ]
  const pull = async (job: string, destination: string) => {
    const r = await iccJson(argsFor(job, destination), {env: AWS_ENV})
    outputs.push(JSON.stringify(r.json), r.stderr)
    return r
  }

  const pullText = async (job: string, destination: string) => {
    const r = await icc(argsFor(job, destination), {env: AWS_ENV})
    outputs.push(r.stdout, r.stderr)
    return r
  }

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'icc-pull-'))
    let port: number
    ;({port, server: s3server} = await startS3rver(join(tmp, 's3'), [BUCKET]))

    // A real model.tar.gz like the image-classification algorithm writes.
    const src = join(tmp, 'src')
    await writeModelDir(src, {numClasses: 7})
    paramsBytes = await readFile(join(src, 'image-classification-0001.params'))
    await tar.c({cwd: src, file: join(tmp, 'model.tar.gz'), gzip: true}, [
      'image-classification-symbol.json',
      'image-classification-0001.params',
      'model-shapes.json',
    ])
    modelBytes = await readFile(join(tmp, 'model.tar.gz'))

    const s3 = new S3Client({
      credentials: {accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_KEY},
      endpoint: `http://127.0.0.1:${port}`,
      forcePathStyle: true,
      region: 'us-west-2',
      requestChecksumCalculation: 'WHEN_REQUIRED',
    })
    await s3.send(new PutObjectCommand({Body: modelBytes, Bucket: BUCKET, Key: keyOf('Good')}))
    await s3.send(
      new PutObjectCommand({
        Body: modelBytes.subarray(0, Math.floor(modelBytes.length / 2)),
        Bucket: BUCKET,
        Key: keyOf('Truncated'),
      }),
    )
    await s3.send(
      new PutObjectCommand({
        Body: Buffer.from('this is not a tar.gz archive at all\n'.repeat(40)),
        Bucket: BUCKET,
        Key: keyOf('Garbage'),
      }),
    )
    s3.destroy()

    wire = await AwsWire.start()
    wire.proxyTo(`http://127.0.0.1:${port}`)
  })

  after(async () => {
    await wire?.close()
    await s3server?.close()
    await rm(tmp, {force: true, recursive: true})
  })

  beforeEach(() => {
    wire.reset()
    wire.on('sagemaker:DescribeTrainingJob', (req) => ({
      body: trainingJob({
        ModelArtifacts: {S3ModelArtifacts: `s3://${BUCKET}/${keyOf(req.json.TrainingJobName)}`},
        TrainingJobArn: arnOf(req.json.TrainingJobName),
        TrainingJobName: req.json.TrainingJobName,
      }),
    }))
  })

  it('downloads, checks and extracts the model, replacing the old content', async () => {
    const dest = join(tmp, 'dest-good')
    await mkdir(dest)
    await writeFile(join(dest, 'stale.params'), 'old')
    const r = await pull('Good', dest)
    assert.equal(r.exitCode, 0, r.stderr)
    assert.equal(r.json.bytes, modelBytes.length)
    assert.equal(r.json.source, `s3://${BUCKET}/${keyOf('Good')}`)
    assert.deepEqual(r.json.files, [
      'image-classification-0001.params',
      'image-classification-symbol.json',
      'model-shapes.json',
    ])
    assert.equal(r.json.symbol, 'image-classification-symbol.json')
    assert.deepEqual(r.json.params, ['image-classification-0001.params'])
    assert.deepEqual((await readdir(dest)).sort(), r.json.files)
    assert.deepEqual(await readFile(join(dest, 'image-classification-0001.params')), paramsBytes)
    // The pulled model was inspected (and converted into the cache).
    assert.equal(r.json.model.architecture, 'ResNet-20')
    assert.equal(r.json.model.classes, 7)
    assert.deepEqual(r.json.model.inputShape, [3, 32, 32])
    assert.equal(r.json.model.converts, true)
    // S3 went through path-style addressing, signed with our key.
    const get = wire.requests.find((q) => q.protocol === 'other')!
    assert.equal(get.method, 'GET')
    assert.equal(get.path, `/${BUCKET}/${keyOf('Good')}`)
    // No progress bar when not on a TTY / with --json.
    assert.doesNotMatch(r.stderr, /ETA/)
    // No temporary directories left next to the destination.
    assert.deepEqual(
      (await readdir(tmp)).filter((f) => f.includes('icc-pull')),
      [],
    )
  })

  it('prints a summary without --json', async () => {
    const r = await pullText('Good', join(tmp, 'dest-human'))
    assert.equal(r.exitCode, 0, r.stderr)
    assert.match(r.stdout, /Symbol: image-classification-symbol.json/)
    assert.match(r.stdout, /Params: image-classification-0001.params/)
    assert.match(r.stdout, /Model: ResNet-20, 7 classes, input 3x32x32, converts to ONNX/)
  })

  it('shows a progress bar (bytes, rate, ETA) on a terminal', async function () {
    // `script` runs the binary on a pseudo-terminal; every argument here is a plain path or ARN.
    const probe = await execa('script', ['--version'], {reject: false}).catch(() => undefined)
    if (!probe || probe.exitCode !== 0) this.skip()
    const command = [process.execPath, BIN, ...argsFor('Good', join(tmp, 'dest-tty'))].join(' ')
    const r = await execa('script', ['-qefc', command, '/dev/null'], {
      env: {...AWS_ENV, NO_COLOR: '1'},
      reject: false,
      timeout: 60_000,
    })
    assert.equal(r.exitCode, 0, r.stdout)
    assert.match(r.stdout, /model\.tar\.gz \d+(\.\d)? (B|KiB) \/ \d+(\.\d)? (B|KiB) \[#+\] 100% .*\/s {2}ETA \d+s/)
    assert.ok(!r.stdout.includes(SECRET_KEY))
  })

  for (const job of ['Truncated', 'Garbage']) {
    it(`a corrupt archive (${job}) → exit 4, destination unchanged`, async () => {
      const dest = join(tmp, `dest-${job}`)
      await mkdir(dest)
      await writeFile(join(dest, 'keep.params'), 'previous model')
      const r = await pull(job, dest)
      assert.equal(r.exitCode, 4, JSON.stringify(r.json))
      assert.match(r.json.error.message, /model archive|holds no files/)
      assert.deepEqual(await readdir(dest), ['keep.params'])
      assert.equal(await readFile(join(dest, 'keep.params'), 'utf8'), 'previous model')
    })
  }

  it('an interrupted download (connection closed before Content-Length) → exit 3, destination unchanged', async () => {
    const dest = join(tmp, 'dest-interrupted')
    await mkdir(dest)
    await writeFile(join(dest, 'keep.params'), 'previous model')
    wire.on('other', (req) =>
      req.method === 'GET'
        ? {
            raw(res) {
              res.writeHead(200, {
                'content-length': String(modelBytes.length),
                'content-type': 'application/octet-stream',
                etag: '"abc"',
              })
              res.write(modelBytes.subarray(0, 100))
              setTimeout(() => res.socket?.destroy(), 50)
            },
          }
        : undefined,
    )
    const r = await pull('Good', dest)
    assert.equal(r.exitCode, 3, JSON.stringify(r.json))
    assert.match(r.json.error.code, /DOWNLOAD_(INTERRUPTED|INCOMPLETE)/)
    assert.match(r.json.error.message, /100 of \d+ bytes|interrupted/)
    assert.deepEqual(await readdir(dest), ['keep.params'])
  })

  it('a job without a model artifact → exit 3 with the next step', async () => {
    wire.on('sagemaker:DescribeTrainingJob', {
      body: trainingJob({ModelArtifacts: undefined, TrainingJobStatus: 'InProgress'}),
    })
    const r = await pull(JOB_NAME, join(tmp, 'dest-none'))
    assert.equal(r.exitCode, 3)
    assert.equal(r.json.error.code, 'NO_MODEL_ARTIFACT')
  })

  it('never prints the secret access key', () => {
    assert.ok(outputs.length >= 6)
    for (const out of outputs) assert.ok(!out.includes(SECRET_KEY))
  })
})
