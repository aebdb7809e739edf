import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {createConnector} from '../../src/connector/create.js'
import {AWS_ENV, GROUP_ID, REGION, SECRET_KEY, useFakeCredentials} from '../aws/fixtures.js'
import {AwsWire, jsonError} from '../helpers/aws-wire.js'
import {icc, iccJson, SHARED, unwrap} from '../helpers/cli.js'

interface SeedExample {
  initialVersion: {Connectors: {ConnectorArn: string; Id: string; Parameters: Record<string, string>}[]}
  /** The --initial-version JSON exactly as the documentation prints it. */
  initialVersionText: string
  name: string
}

/** The documentation's `aws greengrass create-connector-definition` examples, read from the seed document. */
function seedExamples(): SeedExample[] {
  const doc = readFileSync(join(SHARED, 'seed', 'image-classification-connector.md'), 'utf8')
  const re = /aws greengrass create-connector-definition --name (\S+) --initial-version '(\{[\s\S]*?\})'/g
  return [...doc.matchAll(re)].map((m) => ({initialVersion: JSON.parse(m[2]), initialVersionText: m[2], name: m[1]}))
}

/** What a user of the examples must change: the job ARN (training-job/) and the region placeholder. */
function corrected(example: SeedExample): SeedExample {
  const text = example.initialVersionText
    .replace(':training-job:', ':training-job/')
    .replace(':greengrass:region::', `:greengrass:${REGION}::`)
  return {initialVersion: JSON.parse(text), initialVersionText: text, name: example.name}
}

const GG_BASE = `arn:aws:greengrass:${REGION}:123456789012:/greengrass`

const PLATFORM: Record<string, string> = {
  ImageClassificationARMv7: 'armv7',
  ImageClassificationAarch64JTX2: 'jtx2',
  'ImageClassificationx86-64': 'x86_64',
}

const FLAG: Record<string, string> = {
  GPUAcceleration: '--gpu-acceleration',
  LocalInferenceServiceMemoryLimitKB: '--memory-limit-kb',
  LocalInferenceServiceName: '--service-name',
  LocalInferenceServiceTimeoutSeconds: '--timeout-seconds',
  MLModelDestinationPath: '--model-destination-path',
  MLModelResourceId: '--ml-resource-id',
  MLModelSageMakerJobArn: '--sagemaker-job-arn',
}

/** create-connector flags that reproduce an example (one flag per parameter). */
function flagsFor(example: SeedExample): string[] {
  const [c] = example.initialVersion.Connectors
  const platform = PLATFORM[/connectors\/([^/]+)\//.exec(c.ConnectorArn)![1]]
  return [
    '--platform',
    platform,
    '--name',
    example.name,
    '--id',
    c.Id,
    ...Object.entries(c.Parameters).flatMap(([k, v]) => [FLAG[k], v]),
  ]
}

describe('icc create-connector / validate-connector (real binary, loopback Greengrass)', function () {
  this.timeout(120_000)
  let wire: AwsWire
  let tmp: string
  let seed: SeedExample[] = []
  const outputs: string[] = []
  const run = async (args: string[], env: Record<string, string> = AWS_ENV) => {
    const r = await icc([...args, '--endpoint-url', wire.url], {env})
    outputs.push(r.stdout, r.stderr)
    return r
  }

  before(async () => {
    seed = seedExamples() // read here, not at load: a missing ../shared is the root hook's one message
    wire = await AwsWire.start()
    tmp = await mkdtemp(join(tmpdir(), 'icc-create-'))
  })
  after(async () => {
    await wire.close()
    await rm(tmp, {force: true, recursive: true})
  })
  beforeEach(() => wire.reset())

  /** A group (latest version `g1` with this definition) that create-connector --with-ml-resource can deploy to. */
  const deployableGroup = (definition: Record<string, string>) =>
    wire
      .on('greengrass:CreateConnectorDefinition', {
        body: {Id: 'cd', LatestVersion: 'cv', LatestVersionArn: `${GG_BASE}/definition/connectors/cd/versions/cv`},
      })
      .on('greengrass:CreateResourceDefinition', {
        body: {Id: 'rd', LatestVersion: 'rv', LatestVersionArn: `${GG_BASE}/definition/resources/rd/versions/rv`},
      })
      .on('greengrass:GetGroup', {body: {Id: GROUP_ID, LatestVersion: 'g1'}})
      .on('greengrass:GetGroupVersion', {body: {Definition: definition}})
      .on('greengrass:CreateGroupVersion', {body: {Version: 'g2'}})
      .on('greengrass:CreateDeployment', {body: {DeploymentId: 'dep-1'}})

  it('finds the two CLI examples in the documentation (CPU on ARMv7, GPU on JTX2)', () => {
    assert.equal(seed.length, 2)
    assert.match(seed[0].initialVersion.Connectors[0].ConnectorArn, /ImageClassificationARMv7/)
    assert.equal(seed[1].initialVersion.Connectors[0].Parameters.GPUAcceleration, 'GPU')
  })

  for (const [index, label] of [
    [0, 'CPU on ARMv7'],
    [1, 'GPU on JTX2'],
  ] as const) {
    it(`sends the documentation's ${label} request byte for byte (job ARN corrected) and prints the reply`, async () => {
      const example = corrected(seed[index])
      wire.on('greengrass:CreateConnectorDefinition', {
        body: {
          Arn: `arn:aws:greengrass:${REGION}:123456789012:/greengrass/definition/connectors/def-${index}`,
          CreationTimestamp: '2026-11-25T10:00:00.000Z',
          Id: `def-${index}`,
          LastUpdatedTimestamp: '2026-11-25T10:00:00.000Z',
          LatestVersion: `ver-${index}`,
          LatestVersionArn: `arn:aws:greengrass:${REGION}:123456789012:/greengrass/definition/connectors/def-${index}/versions/ver-${index}`,
          Name: example.name,
        },
      })
      const r = await run(['create-connector', ...flagsFor(example), '--json'])
      assert.equal(r.exitCode, 0, r.stderr)
      const [call] = wire.calls('greengrass:CreateConnectorDefinition')
      assert.equal(call.method, 'POST')
      assert.equal(call.path, '/greengrass/definition/connectors')
      assert.deepEqual(call.json, {InitialVersion: example.initialVersion, Name: example.name})
      // Byte for byte: the connector entry is serialised exactly as the documentation writes it (key order too).
      const minified = JSON.stringify(example.initialVersion)
      assert.ok(call.body.includes(minified), `${call.body}\n does not contain\n${minified}`)
      assert.match(String(call.headers.authorization), /^AWS4-HMAC-SHA256 Credential=AKIA/)
      // idempotent: the client token travels as a header, derived from the request
      assert.match(String(call.headers['x-amzn-client-token']), /^[0-9a-f]{32}$/)
      const json = JSON.parse(r.stdout)
      assert.equal(json.definitionId, `def-${index}`)
      assert.equal(json.latestVersion, `ver-${index}`)
      assert.match(json.latestVersionArn, new RegExp(`def-${index}/versions/ver-${index}$`))
      assert.equal(json.connectorArn, example.initialVersion.Connectors[0].ConnectorArn)

      const human = await run(['create-connector', ...flagsFor(example)])
      assert.equal(human.exitCode, 0, human.stderr)
      assert.match(human.stdout, new RegExp(`Created connector definition def-${index}`))
      assert.match(human.stdout, /Latest version ARN: arn:aws:greengrass:.*\/versions\/ver-/)
    })
  }

  it('--dry-run --json prints exactly the planned request and sends nothing', async () => {
    const example = corrected(seed[0])
    const r = await run(['create-connector', ...flagsFor(example), '--dry-run', '--json'])
    assert.equal(r.exitCode, 0, r.stderr)
    assert.equal(wire.requests.length, 0)
    const token = JSON.parse(r.stdout).requests[0].input.AmznClientToken
    assert.match(token, /^[0-9a-f]{32}$/)
    assert.equal(
      r.stdout.trim(),
      JSON.stringify(
        {
          requests: [
            {
              input: {Name: example.name, InitialVersion: example.initialVersion, AmznClientToken: token},
              operation: 'CreateConnectorDefinition',
            },
          ],
        },
        null,
        2,
      ),
    )
  })

  it('--parameters FILE with flags winning; --definition-id adds a version keeping the other connectors', async () => {
    const example = corrected(seed[0])
    const params = {...example.initialVersion.Connectors[0].Parameters, LocalInferenceServiceTimeoutSeconds: '99'}
    const file = join(tmp, 'params.json')
    await writeFile(file, JSON.stringify({Parameters: params}))
    const sns = {
      ConnectorArn: `arn:aws:greengrass:${REGION}::/connectors/SNS/versions/1`,
      Id: 'sns',
      Parameters: {DefaultSNSArn: 'arn:aws:sns:us-west-2:123456789012:alerts'},
    }
    wire
      .on('greengrass:GetConnectorDefinition', {body: {Id: 'def-1', LatestVersion: 'v1'}})
      .on('greengrass:GetConnectorDefinitionVersion', {
        body: {Definition: {Connectors: [sns, {...example.initialVersion.Connectors[0], Parameters: params}]}},
      })
      .on('greengrass:CreateConnectorDefinitionVersion', (req) => ({
        body: {
          Arn: `arn:aws:greengrass:${REGION}:123456789012:/greengrass/definition/connectors/${req.params.ConnectorDefinitionId}/versions/v2`,
          Id: req.params.ConnectorDefinitionId,
          Version: 'v2',
        },
      }))
    const j = await iccJson(
      [
        'create-connector',
        '--platform',
        'armv7',
        '--id',
        example.initialVersion.Connectors[0].Id,
        '--parameters',
        file,
        '--timeout-seconds',
        '15',
        '--definition-id',
        'def-1',
        '--endpoint-url',
        wire.url,
      ],
      {env: AWS_ENV},
    )
    assert.equal(j.exitCode, 0, j.stderr)
    const [call] = wire.calls('greengrass:CreateConnectorDefinitionVersion')
    assert.equal(call.path, '/greengrass/definition/connectors/def-1/versions')
    assert.deepEqual(call.json.Connectors[0], sns)
    assert.equal(call.json.Connectors.length, 2)
    assert.equal(call.json.Connectors[1].Parameters.LocalInferenceServiceTimeoutSeconds, '15')
    assert.deepEqual(j.json.keptConnectors, ['sns'])
    assert.equal(j.json.latestVersion, 'v2')
  })

  it('--with-ml-resource --group-id --deploy: connector, ML resource, group version, deployment', async () => {
    const example = corrected(seed[1])
    const base = GG_BASE
    deployableGroup({CoreDefinitionVersionArn: `${base}/definition/cores/core/versions/1`})
    const r = await run([
      'create-connector',
      ...flagsFor(example),
      '--with-ml-resource',
      '--ml-resource-owner',
      'ggc_group',
      '--group-id',
      GROUP_ID,
      '--deploy',
      '--json',
    ])
    assert.equal(r.exitCode, 0, r.stderr)
    const resource = wire.calls('greengrass:CreateResourceDefinition')[0].json
    const [{Id, ResourceDataContainer}] = resource.InitialVersion.Resources
    const parameters = example.initialVersion.Connectors[0].Parameters
    assert.equal(Id, parameters.MLModelResourceId)
    assert.deepEqual(ResourceDataContainer.SageMakerMachineLearningModelResourceData, {
      DestinationPath: parameters.MLModelDestinationPath,
      OwnerSetting: {GroupOwner: 'ggc_group', GroupPermission: 'ro'},
      SageMakerJobArn: parameters.MLModelSageMakerJobArn,
    })
    const version = wire.calls('greengrass:CreateGroupVersion')[0].json
    assert.equal(version.ConnectorDefinitionVersionArn, `${base}/definition/connectors/cd/versions/cv`)
    assert.equal(version.ResourceDefinitionVersionArn, `${base}/definition/resources/rd/versions/rv`)
    assert.equal(version.CoreDefinitionVersionArn, `${base}/definition/cores/core/versions/1`)
    const json = JSON.parse(r.stdout)
    assert.equal(json.deployment.deploymentId, 'dep-1')
    assert.equal(json.mlResource.id, 'rd')
  })

  it("--with-ml-resource --deploy keeps the group's other resources, and warns before deploying", async () => {
    const example = corrected(seed[1])
    const parameters = example.initialVersion.Connectors[0].Parameters
    const base = GG_BASE
    const camera = {
      Id: 'camera',
      Name: 'camera',
      ResourceDataContainer: {
        LocalDeviceResourceData: {GroupOwnerSetting: {AutoAddGroupOwner: true}, SourcePath: '/dev/video0'},
      },
    }
    const volume = {
      Id: 'images',
      Name: 'images',
      ResourceDataContainer: {
        LocalVolumeResourceData: {DestinationPath: '/images', SourcePath: '/var/images'},
      },
    }
    // The group already has the ML resource (an older model path), a device and a volume.
    const oldModel = {
      Id: parameters.MLModelResourceId,
      Name: parameters.MLModelResourceId,
      ResourceDataContainer: {
        SageMakerMachineLearningModelResourceData: {DestinationPath: '/old', SageMakerJobArn: 'arn:old'},
      },
    }
    const group = () =>
      deployableGroup({ResourceDefinitionVersionArn: `${base}/definition/resources/old/versions/ov`}).on(
        'greengrass:GetResourceDefinitionVersion',
        {body: {Definition: {Resources: [camera, oldModel, volume]}, Id: 'old', Version: 'ov'}},
      )
    group()
    const r = await run([
      'create-connector',
      ...flagsFor(example),
      '--with-ml-resource',
      '--group-id',
      GROUP_ID,
      '--deploy',
    ])
    assert.equal(r.exitCode, 0, r.stderr)
    assert.equal(
      wire.calls('greengrass:GetResourceDefinitionVersion')[0].path,
      '/greengrass/definition/resources/old/versions/ov',
    )
    const resources = wire.calls('greengrass:CreateResourceDefinition')[0].json.InitialVersion.Resources
    assert.deepEqual(
      resources.map((x: {Id: string}) => x.Id),
      ['camera', 'images', parameters.MLModelResourceId],
    )
    assert.deepEqual(resources[0], camera)
    assert.deepEqual(resources[1], volume)
    assert.equal(
      resources[2].ResourceDataContainer.SageMakerMachineLearningModelResourceData.DestinationPath,
      parameters.MLModelDestinationPath,
    )
    assert.equal(
      wire.calls('greengrass:CreateGroupVersion')[0].json.ResourceDefinitionVersionArn,
      `${base}/definition/resources/rd/versions/rv`,
    )
    assert.match(r.stdout, /Kept resources: +camera, images/)
    assert.doesNotMatch(r.stderr, /resources\) of other definitions/)

    // The warning about the connector definition comes before the deployment is created.
    wire.reset()
    group()
    useFakeCredentials()
    const deploymentsAtWarning: number[] = []
    const [c] = example.initialVersion.Connectors
    await createConnector({
      deploy: true,
      endpointUrl: wire.url,
      groupId: GROUP_ID,
      id: c.Id,
      parameters: c.Parameters,
      platform: 'jtx2',
      region: REGION,
      warn: () => deploymentsAtWarning.push(wire.calls('greengrass:CreateDeployment').length),
      withMlResource: true,
    })
    assert.deepEqual(deploymentsAtWarning, [0])
    assert.equal(wire.calls('greengrass:CreateDeployment').length, 1)
  })

  it('--group-id of a group that does not exist --deploy: the group is read first, nothing is created', async () => {
    const example = corrected(seed[1])
    deployableGroup({}).on('greengrass:GetGroup', {
      ...jsonError('NotFoundException', 'That group definition does not exist.', 404),
    })
    const r = await run([
      'create-connector',
      ...flagsFor(example),
      '--with-ml-resource',
      '--group-id',
      'does-not-exist',
      '--deploy',
      '--json',
    ])
    assert.equal(r.exitCode, 3, r.stderr)
    assert.equal(JSON.parse(r.stdout).error.code, 'NOT_FOUND')
    assert.deepEqual(
      wire.requests.map((x) => x.operation),
      ['greengrass:GetGroup'],
    )
    assert.equal(wire.calls('greengrass:GetGroup')[0].path, '/greengrass/groups/does-not-exist')
  })

  it('the executor sends the steps --dry-run prints, in the same order, reads first', async () => {
    const [c] = corrected(seed[1]).initialVersion.Connectors
    useFakeCredentials()
    const options = {
      definitionId: 'def-1',
      deploy: true,
      endpointUrl: wire.url,
      groupId: GROUP_ID,
      id: c.Id,
      parameters: c.Parameters,
      platform: 'jtx2' as const,
      region: REGION,
      wait: true,
      withMlResource: true,
    }
    const plan = await createConnector({...options, dryRun: true})
    assert.ok('requests' in plan)
    assert.equal(wire.requests.length, 0)
    const planned = plan.requests.map((x) => x.operation)
    assert.deepEqual(planned, [
      'GetConnectorDefinition',
      'GetConnectorDefinitionVersion',
      'GetGroup',
      'GetGroupVersion',
      'GetResourceDefinitionVersion',
      'CreateConnectorDefinitionVersion',
      'CreateResourceDefinition',
      'CreateGroupVersion',
      'CreateDeployment',
      'GetDeploymentStatus',
    ])
    const base = GG_BASE
    deployableGroup({ResourceDefinitionVersionArn: `${base}/definition/resources/old/versions/ov`})
      .on('greengrass:GetConnectorDefinition', {body: {Id: 'def-1', LatestVersion: 'v1'}})
      .on('greengrass:GetConnectorDefinitionVersion', {body: {Definition: {Connectors: []}}})
      .on('greengrass:CreateConnectorDefinitionVersion', {
        body: {Arn: `${base}/definition/connectors/def-1/versions/v2`, Id: 'def-1', Version: 'v2'},
      })
      .on('greengrass:GetResourceDefinitionVersion', {body: {Definition: {Resources: []}}})
      .on('greengrass:GetDeploymentStatus', {body: {DeploymentStatus: 'Success'}})
    const result = await createConnector(options)
    assert.ok(!('requests' in result))
    assert.equal(result.deployment?.status, 'Success')
    assert.deepEqual(
      wire.requests.map((x) => x.operation),
      planned.map((op) => `greengrass:${op}`),
    )
    const sent = wire.calls('greengrass:CreateConnectorDefinitionVersion')[0].json
    const shown = plan.requests.find((x) => x.operation === 'CreateConnectorDefinitionVersion')
    assert.deepEqual(sent, {Connectors: shown?.input.Connectors})
  })

  it('403 from Greengrass → one clear line, exit 3; no secret printed', async () => {
    wire.on('greengrass:CreateConnectorDefinition', {
      ...jsonError(
        'ForbiddenException',
        'User is not authorized to perform: greengrass:CreateConnectorDefinition',
        403,
      ),
    })
    const r = await run(['create-connector', ...flagsFor(corrected(seed[0]))])
    assert.equal(r.exitCode, 3)
    assert.match(unwrap(r.stderr), /greengrass:CreateConnectorDefinition was denied: User is not authorized/)
    const j = await iccJson(['create-connector', ...flagsFor(corrected(seed[0])), '--endpoint-url', wire.url], {
      env: AWS_ENV,
    })
    assert.equal(j.exitCode, 3)
    assert.equal(j.json.error.code, 'ACCESS_DENIED')
  })

  it('throttling is retried by the SDK (standard mode); still throttled → exit 3 THROTTLED', async () => {
    wire.throttle('greengrass:CreateConnectorDefinition', 1).on('greengrass:CreateConnectorDefinition', {
      body: {Id: 'after-retry', LatestVersionArn: 'arn:x'},
    })
    const ok = await run(['create-connector', ...flagsFor(corrected(seed[0])), '--json'])
    assert.equal(ok.exitCode, 0, ok.stderr)
    assert.equal(wire.calls('greengrass:CreateConnectorDefinition').length, 2)
    assert.equal(JSON.parse(ok.stdout).definitionId, 'after-retry')
    wire.reset()
    wire.throttle('greengrass:CreateConnectorDefinition', 10)
    const r = await run(['create-connector', ...flagsFor(corrected(seed[0])), '--json'])
    assert.equal(r.exitCode, 3)
    assert.equal(JSON.parse(r.stdout).error.code, 'THROTTLED')
    assert.equal(wire.calls('greengrass:CreateConnectorDefinition').length, 3)
  })

  it('no credentials → exit 3 with how to configure them; nothing is sent', async () => {
    const env = {...AWS_ENV, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: ''}
    const r = await run(['create-connector', ...flagsFor(corrected(seed[0])), '--json'], env)
    assert.equal(r.exitCode, 3, r.stdout + r.stderr)
    assert.equal(JSON.parse(r.stdout).error.code, 'NO_CREDENTIALS')
    assert.equal(wire.requests.length, 0)
  })

  it("the documentation's example as given: every problem at once, with the fix, exit 2, nothing sent", async () => {
    const r = await run(['create-connector', ...flagsFor(seed[0])])
    assert.equal(r.exitCode, 2)
    assert.match(
      unwrap(r.stderr),
      /Did you mean "arn:aws:sagemaker:us-west-2:123456789012:training-job\/MyImageClassifier"/,
    )
    assert.match(r.stderr, /--sagemaker-job-arn/)
    assert.equal(wire.requests.length, 0)

    const jtx = flagsFor(corrected(seed[1]))
    const onArm = [...jtx.slice(0, 1), 'armv7', ...jtx.slice(2)]
    const gpu = await iccJson(['create-connector', ...onArm, '--dry-run'], {env: AWS_ENV})
    assert.equal(gpu.exitCode, 2)
    assert.match(
      gpu.json.error.details.problems[0].message,
      /GPUAcceleration applies only to the Image Classification Aarch64 JTX2/,
    )
  })

  it('validate-connector: the documentation example as a file → the job ARN and region fixes; corrected → valid', async () => {
    const file = join(tmp, 'seed-initial-version.json')
    await writeFile(file, seed[0].initialVersionText)
    const bad = await iccJson(['validate-connector', file])
    assert.equal(bad.exitCode, 2)
    assert.equal(bad.json.kind, 'definition')
    const problems = bad.json.problems as {message: string; path: string; suggestion?: string}[]
    assert.deepEqual(problems.map((p) => p.path).sort(), [
      '/Connectors/0/ConnectorArn',
      '/Connectors/0/Parameters/MLModelSageMakerJobArn',
    ])
    assert.ok(problems.some((p) => /training-job\/MyImageClassifier/.test(p.suggestion ?? '')))
    const human = await icc(['validate-connector', file])
    assert.equal(human.exitCode, 2)
    assert.match(human.stdout, /2 problems/)
    assert.match(human.stdout, /fix: Did you mean/)

    const good = join(tmp, 'corrected.json')
    await writeFile(good, corrected(seed[1]).initialVersionText)
    const ok = await iccJson(['validate-connector', good])
    assert.equal(ok.exitCode, 0, JSON.stringify(ok.json))
    assert.deepEqual(ok.json.connectors, [
      {
        at: '/Connectors/0',
        connector: 'ImageClassificationAarch64JTX2',
        serviceName: 'imageClassification',
        version: 1,
      },
    ])
  })

  it('validate-connector: a Parameters file (inferred or --platform), JSON numbers, unreadable files', async () => {
    const params = corrected(seed[1]).initialVersion.Connectors[0].Parameters
    const file = join(tmp, 'p.json')
    await writeFile(file, JSON.stringify({...params, LocalInferenceServiceMemoryLimitKB: 500_000}))
    const r = await iccJson(['validate-connector', file])
    assert.equal(r.exitCode, 2)
    assert.equal(r.json.kind, 'parameters')
    assert.equal(r.json.connectors[0].connector, 'ImageClassificationAarch64JTX2')
    assert.match(r.json.problems[0].suggestion, /Quote it/)
    const onX86 = await iccJson(['validate-connector', file, '--platform', 'x86_64'])
    assert.equal(onX86.json.problems.length, 2)
    const missing = await iccJson(['validate-connector', join(tmp, 'nope.json')])
    assert.equal(missing.exitCode, 2)
    assert.equal(missing.json.error.code, 'FILE_NOT_READABLE')
    await writeFile(join(tmp, 'broken.json'), '{"MLModelDestinationPath": "/x",}')
    const broken = await iccJson(['validate-connector', join(tmp, 'broken.json')])
    assert.equal(broken.json.error.code, 'INVALID_JSON')
  })

  it('never prints the secret key', () => {
    for (const text of outputs) assert.ok(!text.includes(SECRET_KEY))
  })
})
