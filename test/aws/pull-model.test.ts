import {PutObjectCommand, S3Client} from '@aws-sdk/client-s3'
import {execa} from 'execa'
import assert from 'node:assert/strict'
import {mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile} from 'node:fs/promises'
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
    // Valid archives whose model cannot be used: params cut in half, and what the XGBoost algorithm writes.
    await truncate(join(src, 'image-classification-0001.params'), Math.floor(paramsBytes.length / 2))
    await tar.c({cwd: src, file: join(tmp, 'cut.tar.gz'), gzip: true}, [
      'image-classification-symbol.json',
      'image-classification-0001.params',
      'model-shapes.json',
    ])
    const xgb = join(tmp, 'xgb')
    await mkdir(xgb)
    await writeFile(join(xgb, 'xgboost-model'), Buffer.from('binf\u0000\u0000\u0000?'.repeat(64)))
    await tar.c({cwd: xgb, file: join(tmp, 'xgb.tar.gz'), gzip: true}, ['xgboost-model'])

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
    for (const [job, file] of [
      ['CutParams', 'cut.tar.gz'],
      ['XGBoost', 'xgb.tar.gz'],
    ]) {
      await s3.send(new PutObjectCommand({Body: await readFile(join(tmp, file)), Bucket: BUCKET, Key: keyOf(job)}))
    }

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
    // The jobs were trained as the model is (7 classes, 3x32x32), except "Mismatch", whose artifact is Good's.
    wire.on('sagemaker:DescribeTrainingJob', (req) => ({
      body: trainingJob({
        ...(req.json.TrainingJobName === 'Mismatch'
          ? {}
          : {HyperParameters: {image_shape: '3,32,32', num_classes: '7', num_layers: '20'}}),
        ModelArtifacts: {
          S3ModelArtifacts: `s3://${BUCKET}/${keyOf(req.json.TrainingJobName === 'Mismatch' ? 'Good' : req.json.TrainingJobName)}`,
        },
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
    assert.equal(r.json.model.path, dest)
    assert.deepEqual(r.json.mismatches, [])
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

  for (const [job, why] of [
    ['CutParams', /params/i],
    ['XGBoost', /symbol|MXNet|model/i],
  ] as const) {
    it(`a valid archive whose model does not load (${job}) → exit 4, the old model stays`, async () => {
      const dest = join(tmp, `dest-${job}`)
      await mkdir(dest)
      await writeFile(join(dest, 'keep.params'), 'previous model')
      const r = await pull(job, dest)
      assert.equal(r.exitCode, 4, JSON.stringify(r.json))
      assert.equal(r.json.error.code, 'MODEL_UNUSABLE')
      assert.match(r.json.error.message, why)
      assert.match(r.json.error.message, new RegExp(`s3://${BUCKET}/output/${job}/`))
      assert.doesNotMatch(r.json.error.message, /\.icc-pull-/)
      assert.match(r.json.error.suggestions[0], /left unchanged/)
      assert.deepEqual(await readdir(dest), ['keep.params'])
      assert.equal(await readFile(join(dest, 'keep.params'), 'utf8'), 'previous model')
    })
  }

  it("reports where the job's num_classes and image_shape disagree with the model", async () => {
    const r = await pull('Mismatch', join(tmp, 'dest-mismatch'))
    assert.equal(r.exitCode, 0, r.stderr)
    assert.deepEqual(r.json.mismatches, [
      "the job's num_classes is 257, the model has 7 classes",
      "the job's image_shape is 3,224,224, the model's input is 3,32,32",
    ])
    const text = await pullText('Mismatch', join(tmp, 'dest-mismatch-text'))
    assert.match(text.stderr, /does not match its job: the job's num_classes is 257/)
  })

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
