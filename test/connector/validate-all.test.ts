/**
 * `icc validate-connector` reports every problem of a definition at once, each once (issue 20, item 9): a known
 * connector of an unknown version still has its parameters checked, and its service name still counts.
 */
import assert from 'node:assert/strict'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {iccJson} from '../helpers/cli.js'

const JOB_COLON = 'arn:aws:sagemaker:us-west-2:123456789012:training-job:MyImageClassifier'
const params = (over: Record<string, string>) => ({
  GPUAcceleration: 'GPU',
  LocalInferenceServiceMemoryLimitKB: '500000',
  LocalInferenceServiceName: 'svc',
  LocalInferenceServiceTimeoutSeconds: '10',
  MLModelDestinationPath: '/m',
  MLModelResourceId: 'r2',
  MLModelSageMakerJobArn: JOB_COLON,
  ...over,
})
const arn = (version: number) =>
  `arn:aws:greengrass:us-west-2::/connectors/ImageClassificationx86-64/versions/${version}`

describe('validate-connector: every problem at once', function () {
  this.timeout(60_000)
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'icc-validate-'))
  })
  after(() => rm(dir, {force: true, recursive: true}))

  it('unknown version, bad resource id, training-job: ARN, GPUAcceleration on x86_64, duplicate service name', async () => {
    const file = join(dir, 'def.json')
    await writeFile(
      file,
      JSON.stringify({
        Connectors: [
          {ConnectorArn: arn(3), Id: 'A', Parameters: params({MLModelResourceId: 'bad id!'})},
          {ConnectorArn: arn(1), Id: 'B', Parameters: params({})},
        ],
      }),
    )
    const {exitCode, json} = await iccJson(['validate-connector', file])
    assert.equal(exitCode, 2)
    const problems = json.problems as {message: string; path: string}[]
    assert.equal(json.valid, false)
    const seen = problems.map((p) => `${p.path} ${p.message.slice(0, 40)}`)
    assert.equal(new Set(seen).size, seen.length, `a problem listed twice:\n${seen.join('\n')}`)
    assert.deepEqual(problems.map((p) => p.path).sort(), [
      '/Connectors/0/ConnectorArn',
      '/Connectors/0/Parameters/GPUAcceleration',
      '/Connectors/0/Parameters/MLModelResourceId',
      '/Connectors/0/Parameters/MLModelSageMakerJobArn',
      '/Connectors/1/Parameters/GPUAcceleration',
      '/Connectors/1/Parameters/LocalInferenceServiceName',
      '/Connectors/1/Parameters/MLModelSageMakerJobArn',
    ])
    assert.match(problems[0].message, /has no version 3/)
  })
})
