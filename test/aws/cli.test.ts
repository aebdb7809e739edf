import {execa} from 'execa'
import assert from 'node:assert/strict'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {describeTrainingJobPolicy, grantPolicy} from '../../src/check-role/policy.js'
import {AwsWire, iamError, iamResult, jsonError, s3ObjectHead} from '../helpers/aws-wire.js'
import {BIN, icc, iccJson} from '../helpers/cli.js'
import {AWS_ENV, GROUP_ID, JOB_ARN, ROLE_ARN, SECRET_KEY, simulateReply, trainingJob} from './fixtures.js'

describe('icc check-role / check-job (real binary, loopback AWS)', function () {
  this.timeout(120_000)
  let wire: AwsWire
  let tmp: string
  const env = AWS_ENV
  const outputs: string[] = []
  const run = async (args: string[]) => {
    const r = await icc([...args, '--endpoint-url', wire.url], {env})
    outputs.push(r.stdout, r.stderr)
    return r
  }

  const runJson = async (args: string[]) => {
    const r = await iccJson([...args, '--endpoint-url', wire.url], {env})
    outputs.push(JSON.stringify(r.json), r.stderr)
    return r
  }

  before(async () => {
    wire = await AwsWire.start()
    tmp = await mkdtemp(join(tmpdir(), 'icc-aws-cli-'))
  })
  after(async () => {
    await wire.close()
    await rm(tmp, {force: true, recursive: true})
  })
  beforeEach(() => {
    wire.reset()
    // The model artifact exists (check-job's HeadObject); a role has no icc policy yet (check-role --fix).
    wire
      .on('other', (req) => (req.method === 'HEAD' ? s3ObjectHead(48_213_774) : undefined))
      .on('iam:GetRolePolicy', iamError('NoSuchEntity', 'The role policy cannot be found.', 404))
  })

  it('check-role --group-id: allowed → exit 0, JSON printed exactly once', async () => {
    wire
      .on('greengrass:GetAssociatedRole', {body: {AssociatedAt: '2024-05-01T10:00:00.000Z', RoleArn: ROLE_ARN}})
      .on('iam:SimulatePrincipalPolicy', {body: simulateReply('allowed', [{id: 'GreengrassDescribeJob'}])})
    const r = await run(['check-role', '--group-id', GROUP_ID, '--sagemaker-job-arn', JOB_ARN, '--json'])
    assert.equal(r.exitCode, 0, r.stderr)
    const json = JSON.parse(r.stdout)
    assert.equal(json.decision, 'allowed')
    assert.equal(json.roleArn, ROLE_ARN)
    assert.equal(
      r.stdout
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('{')).length,
      1,
    )
  })

  it('check-role: explicit deny → exit 6 with the result as JSON; human output names the statement', async () => {
    wire.on('iam:SimulatePrincipalPolicy', {body: simulateReply('explicitDeny', [{id: 'DenySageMaker'}])})
    const j = await runJson(['check-role', '--role-arn', ROLE_ARN, '--sagemaker-job-arn', JOB_ARN])
    assert.equal(j.exitCode, 6)
    assert.equal(j.json.decision, 'explicitDeny')
    assert.equal(j.json.statements[0].policy, 'DenySageMaker')
    const h = await run(['check-role', '--role-arn', ROLE_ARN, '--sagemaker-job-arn', JOB_ARN])
    assert.equal(h.exitCode, 6)
    assert.match(h.stdout, /DENIED \(explicit deny\)/)
    assert.match(h.stdout, /DenySageMaker/)
  })

  it('check-role: simulation denied → local evaluation with a Condition → exit 7', async () => {
    const conditional = {
      Statement: [
        {
          Action: 'sagemaker:DescribeTrainingJob',
          Condition: {IpAddress: {'aws:SourceIp': '10.0.0.0/8'}},
          Effect: 'Allow',
          Resource: '*',
          Sid: 'OnlyFromVpc',
        },
      ],
      Version: '2012-10-17',
    }
    wire
      .on(
        'iam:SimulatePrincipalPolicy',
        iamError('AccessDenied', 'not authorized to perform iam:SimulatePrincipalPolicy'),
      )
      .on('iam:ListAttachedRolePolicies', {
        body: iamResult('ListAttachedRolePolicies', '<IsTruncated>false</IsTruncated><AttachedPolicies/>'),
      })
      .on('iam:ListRolePolicies', {
        body: iamResult(
          'ListRolePolicies',
          '<IsTruncated>false</IsTruncated><PolicyNames><member>vpc-only</member></PolicyNames>',
        ),
      })
      .on('iam:GetRolePolicy', {
        body: iamResult(
          'GetRolePolicy',
          `<RoleName>GreengrassGroupRole</RoleName><PolicyName>vpc-only</PolicyName><PolicyDocument>${encodeURIComponent(JSON.stringify(conditional))}</PolicyDocument>`,
        ),
      })
    const j = await runJson(['check-role', '--role-arn', ROLE_ARN, '--sagemaker-job-arn', JOB_ARN])
    assert.equal(j.exitCode, 7)
    assert.equal(j.json.decision, 'undecided')
    assert.equal(j.json.method, 'local-evaluation')
    assert.match(j.json.reason, /OnlyFromVpc/)
  })

  it('check-role --fix: not on a TTY without --yes → exit 2 telling to pass --yes; with --yes → PutRolePolicy', async () => {
    wire
      .on('iam:SimulatePrincipalPolicy', {body: simulateReply('implicitDeny')})
      .on('iam:PutRolePolicy', {body: iamResult('PutRolePolicy', '')})
    const refused = await run(['check-role', '--role-arn', ROLE_ARN, '--sagemaker-job-arn', JOB_ARN, '--fix'])
    assert.equal(refused.exitCode, 2)
    assert.match(refused.stderr, /--yes/)
    assert.equal(wire.calls('iam:PutRolePolicy').length, 0)

    const fixed = await run(['check-role', '--role-arn', ROLE_ARN, '--sagemaker-job-arn', JOB_ARN, '--fix', '--yes'])
    assert.equal(fixed.exitCode, 0, fixed.stderr)
    assert.match(fixed.stderr, /"sagemaker:DescribeTrainingJob"/)
    const [put] = wire.calls('iam:PutRolePolicy')
    assert.deepEqual(JSON.parse(put.params.PolicyDocument), describeTrainingJobPolicy(JOB_ARN))
  })

  it('check-role --fix on a terminal asks first, and applies on "y"', async function () {
    const probe = await execa('script', ['--version'], {reject: false}).catch(() => undefined)
    if (!probe || probe.exitCode !== 0) this.skip()
    wire
      .on('iam:SimulatePrincipalPolicy', {body: simulateReply('implicitDeny')})
      .on('iam:PutRolePolicy', {body: iamResult('PutRolePolicy', '')})
    const command = [
      process.execPath,
      BIN,
      'check-role',
      '--role-arn',
      ROLE_ARN,
      '--sagemaker-job-arn',
      JOB_ARN,
      '--fix',
      '--endpoint-url',
      wire.url,
    ].join(' ')
    const declined = await execa('script', ['-qefc', command, '/dev/null'], {
      env: {...env, NO_COLOR: '1'},
      input: 'n\n',
      reject: false,
      timeout: 60_000,
    })
    assert.match(
      declined.stdout,
      /Add inline policy icc-sagemaker-describe-training-job to role GreengrassGroupRole\? \[y\/N\]/,
    )
    assert.equal(declined.exitCode, 6, declined.stdout)
    assert.equal(wire.calls('iam:PutRolePolicy').length, 0)
    const accepted = await execa('script', ['-qefc', command, '/dev/null'], {
      env: {...env, NO_COLOR: '1'},
      input: 'y\n',
      reject: false,
      timeout: 60_000,
    })
    assert.equal(accepted.exitCode, 0, accepted.stdout)
    assert.equal(wire.calls('iam:PutRolePolicy').length, 1)
    outputs.push(declined.stdout, accepted.stdout)
  })

  it('check-role --policy-file works offline (no credentials, no endpoint)', async () => {
    const file = join(tmp, 'policies.json')
    await writeFile(
      file,
      JSON.stringify([
        describeTrainingJobPolicy(JOB_ARN),
        {Statement: [{Action: '*', Effect: 'Deny', NotResource: JOB_ARN}], Version: '2012-10-17'},
      ]),
    )
    const ok = await iccJson(['check-role', '--policy-file', file, '--sagemaker-job-arn', JOB_ARN], {
      env: {AWS_EC2_METADATA_DISABLED: 'true'},
    })
    assert.equal(ok.exitCode, 0)
    assert.equal(ok.json.method, 'policy-file')
    assert.deepEqual(ok.json.statements, [{effect: 'Allow', policy: 'policies.json[0]', statement: 'statement[0]'}])
    const other = await iccJson(
      ['check-role', '--policy-file', file, '--sagemaker-job-arn', JOB_ARN.replace('MyImageClassifier', 'Other')],
      {env: {}},
    )
    assert.equal(other.exitCode, 6)
    assert.equal(other.json.decision, 'explicitDeny')
  })

  it('check-role --policy-file: an implicit deny suggests what works there, not --fix', async () => {
    const file = join(tmp, 'other-job.json')
    await writeFile(file, JSON.stringify(describeTrainingJobPolicy(JOB_ARN.replace('MyImageClassifier', 'Other'))))
    const r = await icc(['check-role', '--policy-file', file, '--sagemaker-job-arn', JOB_ARN], {env: {}})
    assert.equal(r.exitCode, 6)
    assert.match(r.stdout, /DENIED \(no statement allows it\)/)
    assert.doesNotMatch(r.stdout, /--fix to add/)
    assert.match(
      r.stdout,
      /Add a statement allowing sagemaker:DescribeTrainingJob on .*MyImageClassifier to the policy/,
    )
    assert.match(r.stdout, /--role-arn ROLE_ARN --fix/)
  })

  it('check-role --s3-uri (repeatable) checks s3:GetObject on each artifact, one line each; exit 6 if one is denied', async () => {
    const file = join(tmp, 'artifacts.json')
    await writeFile(file, JSON.stringify(grantPolicy('s3:GetObject', 'arn:aws:s3:::my-artifacts/icc/*')))
    const args = ['check-role', '--policy-file', file, '--s3-uri', 's3://my-artifacts/icc/1.0.0/a.tar.gz']
    const ok = await icc(args, {env: {}})
    assert.equal(ok.exitCode, 0, ok.stderr)
    assert.match(ok.stdout, /ALLOWED: s3:GetObject on arn:aws:s3:::my-artifacts\/icc\/1.0.0\/a.tar.gz/)
    const r = await icc([...args, '--s3-uri', 's3://my-models/job/model.tar.gz'], {env: {}})
    assert.equal(r.exitCode, 6)
    assert.match(
      r.stdout,
      /DENIED \(no statement allows it\): s3:GetObject on arn:aws:s3:::my-models\/job\/model.tar.gz/,
    )
    const both = await icc([...args, '--sagemaker-job-arn', JOB_ARN], {env: {}})
    assert.equal(both.exitCode, 2, both.stderr)
  })

  it('every AWS command refuses an --endpoint-url without a scheme (exit 2, as the aws CLI words it)', async () => {
    const commands = [
      ['check-job', '--sagemaker-job-arn', JOB_ARN],
      ['check-role', '--role-arn', ROLE_ARN, '--sagemaker-job-arn', JOB_ARN],
      ['check-role', '--policy-file', join(tmp, 'absent.json'), '--sagemaker-job-arn', JOB_ARN],
      ['pull-model', '--sagemaker-job-arn', JOB_ARN, '--destination', join(tmp, 'never')],
      ['create-connector', '--platform', 'x86_64', '--dry-run'],
    ]
    for (const args of commands) {
      const r = await iccJson([...args, '--endpoint-url', 'localhost:4566'], {env})
      outputs.push(JSON.stringify(r.json))
      assert.equal(r.exitCode, 2, `${args[0]}: ${JSON.stringify(r.json)}`)
      assert.equal(r.json.error.code, 'INVALID_ENDPOINT_URL', args[0])
      assert.match(r.json.error.message, /--endpoint-url "localhost:4566": scheme is missing/)
    }

    assert.equal(wire.requests.length, 0)
  })

  it('check-role: AccessDenied on GetAssociatedRole → exit 3; bad flags → exit 2', async () => {
    wire.on('greengrass:GetAssociatedRole', {...jsonError('ForbiddenException', 'not authorized', 403)})
    const denied = await runJson(['check-role', '--group-id', GROUP_ID, '--sagemaker-job-arn', JOB_ARN])
    assert.equal(denied.exitCode, 3)
    assert.equal(denied.json.error.code, 'ACCESS_DENIED')
    const both = await run([
      'check-role',
      '--group-id',
      GROUP_ID,
      '--role-arn',
      ROLE_ARN,
      '--sagemaker-job-arn',
      JOB_ARN,
    ])
    assert.equal(both.exitCode, 2)
    const typo = await run([
      'check-role',
      '--role-arn',
      ROLE_ARN,
      '--sagemaker-job-arn',
      JOB_ARN.replace('training-job/', 'training-job:'),
    ])
    assert.equal(typo.exitCode, 2)
    assert.match(typo.stderr, /training-job\/MyImageClassifier/)
  })

  it('check-job: a good job → exit 0 with the hyperparameters; problems → exit 1 with fixes', async () => {
    wire.on('sagemaker:DescribeTrainingJob', {body: trainingJob()})
    const ok = await run(['check-job', '--sagemaker-job-arn', JOB_ARN])
    assert.equal(ok.exitCode, 0, ok.stderr)
    assert.match(ok.stdout, /num_classes: +257/)
    assert.match(ok.stdout, /image_shape: +3,224,224/)
    assert.match(ok.stdout, /OK: the connector can serve this job/)
    assert.match(ok.stdout, /Model artifact: s3:\/\/icc-models\/.*model\.tar\.gz \(46\.0 MiB\)/)

    wire.on('sagemaker:DescribeTrainingJob', {
      body: trainingJob({
        ModelArtifacts: {},
        TrainingJobStatus: 'Failed',
        FailureReason: 'ClientError: Data download failed',
      }),
    })
    const bad = await runJson(['check-job', '--sagemaker-job-arn', JOB_ARN])
    assert.equal(bad.exitCode, 1)
    assert.deepEqual(
      bad.json.problems.map((p: {code: string}) => p.code),
      ['JOB_NOT_COMPLETED', 'NO_MODEL_ARTIFACT'],
    )
    assert.match(bad.json.problems[0].message, /Data download failed/)
  })

  it('check-job: the documentation typo is rejected with the corrected ARN (exit 2)', async () => {
    const r = await runJson([
      'check-job',
      '--sagemaker-job-arn',
      'arn:aws:sagemaker:us-west-2:123456789012:training-job:MyImageClassifier',
    ])
    assert.equal(r.exitCode, 2)
    assert.equal(r.json.error.code, 'INVALID_JOB_ARN')
    assert.match(
      r.json.error.suggestions[0],
      /arn:aws:sagemaker:us-west-2:123456789012:training-job\/MyImageClassifier/,
    )
    assert.equal(wire.requests.length, 0)
  })

  it('check-job: without any region configured, uses the region of the ARN', async () => {
    wire.on('sagemaker:DescribeTrainingJob', {body: trainingJob()})
    const noRegion: Record<string, string> = {...env}
    delete noRegion.AWS_REGION
    const r = await iccJson(['check-job', '--sagemaker-job-arn', JOB_ARN, '--endpoint-url', wire.url], {env: noRegion})
    assert.equal(r.exitCode, 0, JSON.stringify(r.json))
    assert.equal(r.json.clientRegion, 'us-west-2')
    assert.match(
      String(wire.calls('sagemaker:DescribeTrainingJob')[0].headers.authorization),
      /\/us-west-2\/sagemaker\//,
    )
  })

  it('explains an unreachable endpoint and an invalid job name', async () => {
    const down = await iccJson(['check-job', '--sagemaker-job-arn', JOB_ARN, '--endpoint-url', 'http://127.0.0.1:1'], {
      env,
    })
    assert.equal(down.exitCode, 3)
    assert.equal(down.json.error.code, 'ENDPOINT_UNREACHABLE')
    const bad = await iccJson(['check-job', '--sagemaker-job-arn', `${JOB_ARN.replace('MyImageClassifier', '_x')}`], {
      env,
    })
    assert.equal(bad.exitCode, 2)
    assert.match(bad.json.error.suggestions[0], /job name "_x"/)
  })

  it('never prints the secret access key', () => {
    assert.ok(outputs.length > 10)
    for (const out of outputs) assert.ok(!out.includes(SECRET_KEY), 'the planted secret key leaked into the output')
  })
})
