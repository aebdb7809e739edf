// @tier unit: needs neither ../shared nor child processes (npm run test:unit)
import assert from 'node:assert/strict'

import {clientToken} from '../../src/aws/clients.js'
import {modelArtifactOf} from '../../src/aws/sagemaker.js'
import {checkJob} from '../../src/check-job/check-job.js'
import {checkRole} from '../../src/check-role/check-role.js'
import {describeTrainingJobPolicy, evaluatePolicies} from '../../src/check-role/policy.js'
import {FIX_POLICY_NAME} from '../../src/check-role/types.js'
import {createMlResource, deployGroup, planDeployGroup, planMlResource} from '../../src/connector/group.js'
import {AwsError, ExitCode, UsageError} from '../../src/errors.js'
import {AwsWire, iamError, iamResult, jsonError, s3ObjectHead, type WireRequest} from '../helpers/aws-wire.js'
import {
  GROUP_ID,
  JOB_ARN,
  JOB_NAME,
  policyVersionReply,
  ROLE_ARN,
  simulateReply,
  trainingJob,
  useFakeCredentials,
} from './fixtures.js'

/** A GetRolePolicy reply holding `document`. */
const rolePolicyReply = (name: string, document: unknown) => ({
  body: iamResult(
    'GetRolePolicy',
    `<RoleName>GreengrassGroupRole</RoleName><PolicyName>${name}</PolicyName><PolicyDocument>${encodeURIComponent(
      typeof document === 'string' ? document : JSON.stringify(document),
    )}</PolicyDocument>`,
  ),
})

/** The role's icc inline policy as IAM keeps it: GetRolePolicy answers what the last PutRolePolicy stored. */
function storedRolePolicy(wire: AwsWire, initial: unknown): {stored: string} {
  const role = {stored: JSON.stringify(initial)}
  wire
    .on('iam:GetRolePolicy', (req) => rolePolicyReply(req.params.PolicyName, role.stored))
    .on('iam:PutRolePolicy', (req) => {
      role.stored = req.params.PolicyDocument
      return {body: iamResult('PutRolePolicy', '')}
    })
  return role
}

/** The role's policies for local evaluation: no managed ones, these inline ones. */
function inlinePolicies(wire: AwsWire, inline: Record<string, unknown>): AwsWire {
  return wire
    .on('iam:ListAttachedRolePolicies', {
      body: iamResult('ListAttachedRolePolicies', '<IsTruncated>false</IsTruncated><AttachedPolicies/>'),
    })
    .on('iam:ListRolePolicies', {
      body: iamResult(
        'ListRolePolicies',
        `<IsTruncated>false</IsTruncated><PolicyNames>${Object.keys(inline)
          .map((n) => `<member>${n}</member>`)
          .join('')}</PolicyNames>`,
      ),
    })
    .on('iam:GetRolePolicy', (req) => rolePolicyReply(req.params.PolicyName, inline[req.params.PolicyName]))
}

/** S3 answers HeadObject on the model artifact with its size (undefined: 404, as S3 does for a missing key). */
function artifactHead(wire: AwsWire, bytes?: number): AwsWire {
  return wire.on('other', (req) => {
    if (req.method !== 'HEAD') return undefined
    if (bytes !== undefined) return s3ObjectHead(bytes)
    return {
      raw(res) {
        res.writeHead(404, {'x-amz-request-id': 'EXAMPLE'})
        res.end()
      },
    }
  })
}

const NO_ROLE_POLICY = iamError(
  'NoSuchEntity',
  'The role policy with name icc-sagemaker-describe-training-job cannot be found.',
  404,
)

describe('AWS wire protocols through real SDK clients', () => {
  let wire: AwsWire
  let aws: {endpointUrl: string; region: string}

  before(async () => {
    useFakeCredentials()
    wire = await AwsWire.start()
    aws = {endpointUrl: wire.url, region: 'us-west-2'}
  })
  after(async () => wire.close())
  beforeEach(() => wire.reset())

  describe('IAM query protocol (check-role)', () => {
    it('sends SimulatePrincipalPolicy as a signed form and reads an allowed XML reply', async () => {
      wire.on('iam:SimulatePrincipalPolicy', {body: simulateReply('allowed', [{id: 'GreengrassDescribeJob'}])})
      const result = await checkRole({...aws, roleArn: ROLE_ARN, sagemakerJobArn: JOB_ARN})
      assert.equal(result.decision, 'allowed')
      assert.equal(result.exitCode, 0)
      assert.equal(result.method, 'simulation')
      assert.deepEqual(result.statements, [
        {policy: 'GreengrassDescribeJob', statement: 'line 1, column 38', type: 'IAM Policy'},
      ])
      const [req] = wire.calls('iam:SimulatePrincipalPolicy')
      assert.equal(req.method, 'POST')
      assert.equal(req.params.Version, '2010-05-08')
      assert.equal(req.params.PolicySourceArn, ROLE_ARN)
      assert.equal(req.params['ActionNames.member.1'], 'sagemaker:DescribeTrainingJob')
      assert.equal(req.params['ResourceArns.member.1'], JOB_ARN)
      assert.match(
        String(req.headers.authorization),
        /^AWS4-HMAC-SHA256 Credential=AKIAICCTESTFAKE00001\/\d{8}\/us-west-2\/iam\/aws4_request/,
      )
    })

    it('reports explicit and implicit denies with their exit codes', async () => {
      wire.on('iam:SimulatePrincipalPolicy', {body: simulateReply('explicitDeny', [{id: 'DenyAllSageMaker', line: 4}])})
      const denied = await checkRole({...aws, roleArn: ROLE_ARN, sagemakerJobArn: JOB_ARN})
      assert.equal(denied.decision, 'explicitDeny')
      assert.equal(denied.exitCode, ExitCode.Denied)
      assert.match(denied.reason, /explicitly denied by DenyAllSageMaker/)

      wire.on('iam:SimulatePrincipalPolicy', {body: simulateReply('implicitDeny')})
      const implicit = await checkRole({...aws, roleArn: ROLE_ARN, sagemakerJobArn: JOB_ARN})
      assert.equal(implicit.decision, 'implicitDeny')
      assert.equal(implicit.exitCode, ExitCode.Denied)
    })

    it('is undecided when the simulator lacks context values', async () => {
      wire.on('iam:SimulatePrincipalPolicy', {body: simulateReply('implicitDeny', [], ['aws:SourceIp'])})
      const result = await checkRole({...aws, roleArn: ROLE_ARN, sagemakerJobArn: JOB_ARN})
      assert.equal(result.decision, 'undecided')
      assert.equal(result.exitCode, ExitCode.Undecided)
      assert.match(result.reason, /aws:SourceIp/)
    })

    it('succeeds after being throttled twice (standard retries)', async () => {
      wire.throttle('iam:SimulatePrincipalPolicy', 2)
      wire.on('iam:SimulatePrincipalPolicy', {body: simulateReply('allowed')})
      const result = await checkRole({...aws, roleArn: ROLE_ARN, sagemakerJobArn: JOB_ARN})
      assert.equal(result.decision, 'allowed')
      assert.equal(wire.calls('iam:SimulatePrincipalPolicy').length, 3)
    })

    it('falls back to reading and evaluating the role policies when simulation is AccessDenied', async () => {
      wire
        .on(
          'iam:SimulatePrincipalPolicy',
          iamError(
            'AccessDenied',
            'User: arn:aws:iam::123456789012:user/dev is not authorized to perform: iam:SimulatePrincipalPolicy',
          ),
        )
        .on('iam:ListAttachedRolePolicies', {
          body: iamResult(
            'ListAttachedRolePolicies',
            '<IsTruncated>false</IsTruncated><AttachedPolicies><member><PolicyName>GreengrassRead</PolicyName>' +
              '<PolicyArn>arn:aws:iam::123456789012:policy/GreengrassRead</PolicyArn></member></AttachedPolicies>',
          ),
        })
        .on('iam:GetPolicy', {
          body: iamResult(
            'GetPolicy',
            '<Policy><PolicyName>GreengrassRead</PolicyName><DefaultVersionId>v3</DefaultVersionId>' +
              '<PolicyId>ANPAEXAMPLE</PolicyId><Arn>arn:aws:iam::123456789012:policy/GreengrassRead</Arn>' +
              '<AttachmentCount>1</AttachmentCount><IsAttachable>true</IsAttachable></Policy>',
          ),
        })
        .on('iam:GetPolicyVersion', {
          body: policyVersionReply({
            Statement: [{Action: 'greengrass:*', Effect: 'Allow', Resource: '*'}],
            Version: '2012-10-17',
          }),
        })
        .on('iam:ListRolePolicies', {
          body: iamResult(
            'ListRolePolicies',
            '<IsTruncated>false</IsTruncated><PolicyNames><member>sagemaker-read</member></PolicyNames>',
          ),
        })
        .on('iam:GetRolePolicy', {
          body: iamResult(
            'GetRolePolicy',
            `<RoleName>GreengrassGroupRole</RoleName><PolicyName>sagemaker-read</PolicyName><PolicyDocument>${encodeURIComponent(
              JSON.stringify({
                Statement: {Action: 'sagemaker:Describe*', Effect: 'Allow', Resource: '*', Sid: 'ReadJobs'},
                Version: '2012-10-17',
              }),
            )}</PolicyDocument>`,
          ),
        })
      const result = await checkRole({...aws, roleArn: ROLE_ARN, sagemakerJobArn: JOB_ARN})
      assert.equal(result.method, 'local-evaluation')
      assert.equal(result.decision, 'allowed')
      assert.deepEqual(result.statements, [
        {effect: 'Allow', policy: 'GreengrassGroupRole/sagemaker-read (inline)', statement: 'ReadJobs'},
      ])
      assert.deepEqual(result.policiesEvaluated, [
        'arn:aws:iam::123456789012:policy/GreengrassRead',
        'GreengrassGroupRole/sagemaker-read (inline)',
      ])
      assert.equal(wire.calls('iam:ListAttachedRolePolicies')[0].params.RoleName, 'GreengrassGroupRole')
      assert.equal(wire.calls('iam:GetPolicyVersion')[0].params.VersionId, 'v3')
      assert.equal(wire.calls('iam:GetRolePolicy')[0].params.PolicyName, 'sagemaker-read')
    })

    it('says clearly when neither simulation nor reading the policies is allowed', async () => {
      wire
        .on('iam:SimulatePrincipalPolicy', iamError('AccessDenied', 'not authorized'))
        .on('iam:ListAttachedRolePolicies', iamError('AccessDenied', 'not authorized'))
      await assert.rejects(checkRole({...aws, roleArn: ROLE_ARN, sagemakerJobArn: JOB_ARN}), (error: AwsError) => {
        assert.equal(error.code, 'CANNOT_READ_ROLE')
        assert.equal(error.exitCode, ExitCode.AwsError)
        assert.match(error.message, /iam:ListAttachedRolePolicies was denied/)
        return true
      })
    })

    it('--fix puts exactly the documented policy, and is a no-op when already allowed', async () => {
      wire
        .on('iam:SimulatePrincipalPolicy', {body: simulateReply('implicitDeny')})
        .on('iam:GetRolePolicy', NO_ROLE_POLICY)
        .on('iam:PutRolePolicy', {body: iamResult('PutRolePolicy', '')})
      const lines: string[] = []
      const fixed = await checkRole({
        ...aws,
        fix: true,
        log: (l) => lines.push(l),
        roleArn: ROLE_ARN,
        sagemakerJobArn: JOB_ARN,
        yes: true,
      })
      assert.equal(fixed.fix?.applied, true)
      assert.equal(fixed.exitCode, 0)
      const [put] = wire.calls('iam:PutRolePolicy')
      assert.equal(put.params.RoleName, 'GreengrassGroupRole')
      assert.equal(put.params.PolicyName, 'icc-sagemaker-describe-training-job')
      assert.deepEqual(JSON.parse(put.params.PolicyDocument), {
        Statement: [{Action: ['sagemaker:DescribeTrainingJob'], Effect: 'Allow', Resource: JOB_ARN}],
        Version: '2012-10-17',
      })
      assert.deepEqual(JSON.parse(lines.slice(1).join('\n')), describeTrainingJobPolicy(JOB_ARN))

      wire.reset()
      wire.on('iam:SimulatePrincipalPolicy', {body: simulateReply('allowed')})
      const again = await checkRole({...aws, fix: true, roleArn: ROLE_ARN, sagemakerJobArn: JOB_ARN, yes: true})
      assert.equal(again.fix?.applied, false)
      assert.equal(wire.calls('iam:PutRolePolicy').length, 0)
    })

    it('--fix refuses to paper over an explicit or conditional Deny', async () => {
      wire.on('iam:SimulatePrincipalPolicy', {body: simulateReply('explicitDeny', [{id: 'DenyAll'}])})
      const explicit = await checkRole({...aws, fix: true, roleArn: ROLE_ARN, sagemakerJobArn: JOB_ARN, yes: true})
      assert.equal(explicit.fix?.applied, false)
      assert.match(explicit.fix?.note ?? '', /explicit Deny wins/)
      assert.equal(explicit.exitCode, ExitCode.Denied)

      const conditionalDeny = {
        Statement: [
          {Action: '*', Effect: 'Allow', Resource: '*'},
          {Action: '*', Condition: {Bool: {'aws:MultiFactorAuthPresent': 'false'}}, Effect: 'Deny', Resource: '*'},
        ],
        Version: '2012-10-17',
      }
      wire
        .on('iam:SimulatePrincipalPolicy', iamError('AccessDenied', 'not authorized'))
        .on('iam:ListAttachedRolePolicies', {
          body: iamResult('ListAttachedRolePolicies', '<IsTruncated>false</IsTruncated><AttachedPolicies/>'),
        })
        .on('iam:ListRolePolicies', {
          body: iamResult(
            'ListRolePolicies',
            '<IsTruncated>false</IsTruncated><PolicyNames><member>mfa</member></PolicyNames>',
          ),
        })
        .on('iam:GetRolePolicy', {
          body: iamResult(
            'GetRolePolicy',
            `<RoleName>GreengrassGroupRole</RoleName><PolicyName>mfa</PolicyName><PolicyDocument>${encodeURIComponent(
              JSON.stringify(conditionalDeny),
            )}</PolicyDocument>`,
          ),
        })
      const undecided = await checkRole({...aws, fix: true, roleArn: ROLE_ARN, sagemakerJobArn: JOB_ARN, yes: true})
      assert.equal(undecided.decision, 'undecided')
      assert.equal(undecided.fix?.applied, false)
      assert.match(undecided.fix?.note ?? '', /Deny with a Condition/)
      assert.equal(wire.calls('iam:PutRolePolicy').length, 0)
    })

    it('--fix adds the job to the icc policy the role already has: an earlier grant is never revoked', async () => {
      const jobA = JOB_ARN.replace(JOB_NAME, 'JobA')
      const role = storedRolePolicy(wire, describeTrainingJobPolicy(jobA))
      wire.on('iam:SimulatePrincipalPolicy', {body: simulateReply('implicitDeny')})
      const fixed = await checkRole({...aws, fix: true, roleArn: ROLE_ARN, sagemakerJobArn: JOB_ARN, yes: true})
      assert.equal(fixed.fix?.applied, true)
      assert.equal(wire.calls('iam:GetRolePolicy')[0].params.PolicyName, FIX_POLICY_NAME)
      const [put] = wire.calls('iam:PutRolePolicy')
      assert.equal(put.params.PolicyName, FIX_POLICY_NAME)
      assert.deepEqual(JSON.parse(put.params.PolicyDocument), {
        Statement: [{Action: ['sagemaker:DescribeTrainingJob'], Effect: 'Allow', Resource: [jobA, JOB_ARN]}],
        Version: '2012-10-17',
      })
      // Both connectors' jobs are allowed by what is now on the role.
      for (const job of [jobA, JOB_ARN]) {
        const evaluation = evaluatePolicies(
          [{document: role.stored, name: 'icc'}],
          'sagemaker:DescribeTrainingJob',
          job,
        )
        assert.equal(evaluation.decision, 'allowed', job)
      }

      // Fixing the same job again changes nothing (the simulator here still says implicitDeny).
      const again = await checkRole({...aws, fix: true, roleArn: ROLE_ARN, sagemakerJobArn: JOB_ARN, yes: true})
      assert.equal(again.fix?.applied, false)
      assert.match(again.fix?.note ?? '', /already allows this job/)
      assert.equal(wire.calls('iam:PutRolePolicy').length, 1)
    })

    it('--fix keeps other statements of the icc policy, and never overwrites a policy it cannot read', async () => {
      const other = {Action: 's3:GetObject', Effect: 'Allow', Resource: 'arn:aws:s3:::icc-models/*', Sid: 'Models'}
      wire
        .on('iam:SimulatePrincipalPolicy', {body: simulateReply('implicitDeny')})
        .on('iam:GetRolePolicy', (req) =>
          rolePolicyReply(req.params.PolicyName, {Statement: [other], Version: '2012-10-17'}),
        )
        .on('iam:PutRolePolicy', {body: iamResult('PutRolePolicy', '')})
      await checkRole({...aws, fix: true, roleArn: ROLE_ARN, sagemakerJobArn: JOB_ARN, yes: true})
      assert.deepEqual(JSON.parse(wire.calls('iam:PutRolePolicy')[0].params.PolicyDocument).Statement, [
        other,
        {Action: ['sagemaker:DescribeTrainingJob'], Effect: 'Allow', Resource: JOB_ARN},
      ])

      wire.reset()
      wire
        .on('iam:SimulatePrincipalPolicy', {body: simulateReply('implicitDeny')})
        .on('iam:GetRolePolicy', iamError('AccessDenied', 'not authorized to perform: iam:GetRolePolicy'))
      await assert.rejects(
        checkRole({...aws, fix: true, roleArn: ROLE_ARN, sagemakerJobArn: JOB_ARN, yes: true}),
        (error: AwsError) => error.code === 'ACCESS_DENIED' && /iam:GetRolePolicy/.test(error.message),
      )
      assert.equal(wire.calls('iam:PutRolePolicy').length, 0)
    })

    it('falls back to local evaluation when the simulator fails with HTTP 500, and says so', async () => {
      inlinePolicies(wire, {
        'sagemaker-read': {Statement: {Action: 'sagemaker:Describe*', Effect: 'Allow', Resource: '*', Sid: 'Read'}},
      }).on('iam:SimulatePrincipalPolicy', {
        body: 'Internal Server Error',
        headers: {'content-type': 'text/plain'},
        status: 500,
      })
      const lines: string[] = []
      const result = await checkRole({...aws, log: (l) => lines.push(l), roleArn: ROLE_ARN, sagemakerJobArn: JOB_ARN})
      assert.equal(result.method, 'local-evaluation')
      assert.equal(result.decision, 'allowed')
      assert.match(result.reason, /the policy simulator failed/)
      assert.match(result.simulationError ?? '', /HTTP 500/)
      assert.match(lines[0], /SimulatePrincipalPolicy failed .*HTTP 500.*evaluating them locally/)
    })

    it('--fix without --yes needs a confirmation, and a "no" changes nothing', async () => {
      wire
        .on('iam:SimulatePrincipalPolicy', {body: simulateReply('implicitDeny')})
        .on('iam:GetRolePolicy', NO_ROLE_POLICY)
      await assert.rejects(
        checkRole({...aws, fix: true, roleArn: ROLE_ARN, sagemakerJobArn: JOB_ARN}),
        /needs confirmation/,
      )
      const declined = await checkRole({
        ...aws,
        confirm: async () => false,
        fix: true,
        roleArn: ROLE_ARN,
        sagemakerJobArn: JOB_ARN,
      })
      assert.equal(declined.fix?.applied, false)
      assert.equal(declined.exitCode, ExitCode.Denied)
      assert.equal(wire.calls('iam:PutRolePolicy').length, 0)
    })

    describe('Greengrass V2: the token exchange role and the artifact objects (--s3-uri)', () => {
      const TES_ROLE = 'arn:aws:iam::123456789012:role/GreengrassV2TokenExchangeRole'
      const ALIAS = 'GreengrassV2TokenExchangeRoleAlias'
      const OBJECT = 's3://icc-artifacts/icc.imageClassification/1.0.0/model.onnx'
      const OBJECT_ARN = 'arn:aws:s3:::icc-artifacts/icc.imageClassification/1.0.0/model.onnx'
      /** AWS IoT answers DescribeRoleAlias (REST-JSON GET /role-aliases/NAME) with the TES role. */
      const iotRoleAlias = (req: WireRequest) =>
        req.method === 'GET' && req.path === `/role-aliases/${ALIAS}`
          ? {body: {roleAliasDescription: {roleAlias: ALIAS, roleArn: TES_ROLE}}}
          : jsonError('ResourceNotFoundException', `Role alias ${req.path} does not exist`, 404)

      it('resolves --role-alias with DescribeRoleAlias and simulates s3:GetObject on the object ARN', async () => {
        wire.on('other', iotRoleAlias).on('iam:SimulatePrincipalPolicy', {body: simulateReply('allowed')})
        const result = await checkRole({...aws, roleAlias: ALIAS, s3Uris: [OBJECT]})
        assert.equal(result.decision, 'allowed')
        assert.equal(result.exitCode, ExitCode.Ok)
        assert.equal(result.action, 's3:GetObject')
        assert.equal(result.resource, OBJECT_ARN)
        assert.equal(result.roleArn, TES_ROLE)
        const [alias] = wire.calls('other')
        assert.equal(alias.path, `/role-aliases/${ALIAS}`)
        assert.match(String(alias.headers.authorization), /\/us-west-2\/(iot|execute-api)\/aws4_request/)
        const [sim] = wire.calls('iam:SimulatePrincipalPolicy')
        assert.equal(sim.params.PolicySourceArn, TES_ROLE)
        assert.equal(sim.params['ActionNames.member.1'], 's3:GetObject')
        assert.equal(sim.params['ResourceArns.member.1'], OBJECT_ARN)

        await assert.rejects(checkRole({...aws, roleAlias: 'Missing', s3Uris: [OBJECT]}), (error: AwsError) => {
          assert.equal(error.code, 'NO_ROLE_ALIAS')
          assert.equal(error.exitCode, ExitCode.AwsError)
          return true
        })
      })

      it('denies when one artifact (or a prefix) is not readable, and says which', async () => {
        wire.on('iam:SimulatePrincipalPolicy', (req) => ({
          body: simulateReply(req.params['ResourceArns.member.1'] === OBJECT_ARN ? 'allowed' : 'implicitDeny'),
        }))
        const result = await checkRole({...aws, roleArn: TES_ROLE, s3Uris: [OBJECT, 's3://other-bucket/icc/']})
        assert.equal(result.decision, 'implicitDeny')
        assert.equal(result.exitCode, ExitCode.Denied)
        assert.equal(result.resource, 'arn:aws:s3:::other-bucket/icc/*')
        assert.deepEqual(
          result.checks?.map((c) => [c.resource, c.decision]),
          [
            [OBJECT_ARN, 'allowed'],
            ['arn:aws:s3:::other-bucket/icc/*', 'implicitDeny'],
          ],
        )
        await assert.rejects(
          checkRole({...aws, roleArn: TES_ROLE, s3Uris: ['https://x/y']}),
          /INVALID_S3_URI|not an S3/,
        )
        await assert.rejects(
          checkRole({...aws, roleArn: TES_ROLE, s3Uris: [OBJECT], sagemakerJobArn: JOB_ARN}),
          (error: UsageError) => error.code === 'CHECK_TARGET',
        )
      })

      it('--fix adds s3:GetObject on the artifact to the icc policy, keeping its SageMaker grant', async () => {
        const role = storedRolePolicy(wire, describeTrainingJobPolicy(JOB_ARN))
        wire.on('iam:SimulatePrincipalPolicy', {body: simulateReply('implicitDeny')})
        const fixed = await checkRole({...aws, fix: true, roleArn: TES_ROLE, s3Uris: [OBJECT], yes: true})
        assert.equal(fixed.fix?.applied, true)
        assert.equal(fixed.exitCode, ExitCode.Ok)
        const [put] = wire.calls('iam:PutRolePolicy')
        assert.equal(put.params.PolicyName, FIX_POLICY_NAME)
        assert.equal(put.params.RoleName, 'GreengrassV2TokenExchangeRole')
        assert.deepEqual(JSON.parse(put.params.PolicyDocument), {
          Statement: [
            {Action: ['sagemaker:DescribeTrainingJob'], Effect: 'Allow', Resource: JOB_ARN},
            {Action: ['s3:GetObject'], Effect: 'Allow', Resource: OBJECT_ARN},
          ],
          Version: '2012-10-17',
        })
        assert.equal(
          evaluatePolicies([{document: role.stored, name: 'icc'}], 's3:GetObject', OBJECT_ARN).decision,
          'allowed',
        )
        const job = evaluatePolicies([{document: role.stored, name: 'icc'}], 'sagemaker:DescribeTrainingJob', JOB_ARN)
        assert.equal(job.decision, 'allowed', 'the SageMaker grant is kept')

        // Fixing the same object again changes nothing.
        wire.requests.length = 0
        const again = await checkRole({...aws, fix: true, roleArn: TES_ROLE, s3Uris: [OBJECT], yes: true})
        assert.equal(again.fix?.applied, false)
        assert.equal(wire.calls('iam:PutRolePolicy').length, 0)
      })
    })
  })

  describe('Greengrass REST-JSON', () => {
    it('finds the group role with GetAssociatedRole', async () => {
      wire
        .on('greengrass:GetAssociatedRole', {body: {AssociatedAt: '2024-05-01T10:00:00.000Z', RoleArn: ROLE_ARN}})
        .on('iam:SimulatePrincipalPolicy', {body: simulateReply('allowed')})
      const result = await checkRole({...aws, groupId: GROUP_ID, sagemakerJobArn: JOB_ARN})
      assert.equal(result.roleArn, ROLE_ARN)
      const [req] = wire.calls('greengrass:GetAssociatedRole')
      assert.equal(req.method, 'GET')
      assert.equal(req.path, `/greengrass/groups/${GROUP_ID}/role`)
    })

    it('explains a group without a role', async () => {
      wire.on('greengrass:GetAssociatedRole', {
        ...jsonError('NotFoundException', 'You need to attach an IAM role to this deployment group.', 404),
      })
      await assert.rejects(checkRole({...aws, groupId: GROUP_ID, sagemakerJobArn: JOB_ARN}), (error: AwsError) => {
        assert.equal(error.code, 'NO_GROUP_ROLE')
        assert.match(error.suggestions.join(' '), /associate-role-to-group --group-id 1402daf9/)
        return true
      })
    })

    it('explains a group without a role answered as AWS documents it (BadRequestException, HTTP 400)', async () => {
      wire.on(
        'greengrass:GetAssociatedRole',
        jsonError('BadRequestException', 'The group has no role associated.', 400),
      )
      await assert.rejects(checkRole({...aws, groupId: GROUP_ID, sagemakerJobArn: JOB_ARN}), (error: AwsError) => {
        assert.equal(error.code, 'NO_GROUP_ROLE')
        assert.match(error.message, /The group has no role associated\. \(BadRequestException, HTTP 400\)/)
        return true
      })
    })

    it('an answer that is not AWS JSON (an HTML 404 page) keeps its HTTP status', async () => {
      const page = {body: '<html><body><h1>404 Not Found</h1></body></html>', headers: {'content-type': 'text/html'}}
      wire.on('greengrass:GetAssociatedRole', {...page, status: 404})
      await assert.rejects(checkRole({...aws, groupId: GROUP_ID, sagemakerJobArn: JOB_ARN}), (error: AwsError) => {
        assert.equal(error.code, 'UNEXPECTED_RESPONSE')
        assert.equal(error.exitCode, ExitCode.AwsError)
        assert.match(error.message, /greengrass:GetAssociatedRole: the endpoint answered HTTP 404 .*not an AWS answer/)
        return true
      })
      wire.on('sagemaker:DescribeTrainingJob', {...page, status: 404})
      await assert.rejects(checkJob({...aws, sagemakerJobArn: JOB_ARN}), /answered HTTP 404/)
    })

    it('creates the ML resource definition with SageMakerMachineLearningModelResourceData', async () => {
      wire.on('greengrass:CreateResourceDefinition', {
        body: {
          Arn: 'arn:aws:greengrass:us-west-2:123456789012:/greengrass/definition/resources/a1b2',
          Id: 'a1b2',
          LatestVersion: 'v1',
          LatestVersionArn:
            'arn:aws:greengrass:us-west-2:123456789012:/greengrass/definition/resources/a1b2/versions/v1',
        },
      })
      const options = {
        destinationPath: '/ml/model',
        ownerSetting: {GroupOwner: 'ggc_group', GroupPermission: 'ro' as const},
        resourceId: 'my-ml-resource',
        sagemakerJobArn: JOB_ARN,
      }
      const created = await createMlResource(aws, options)
      assert.equal(created.latestVersionArn?.endsWith('/versions/v1'), true)
      const [req] = wire.calls('greengrass:CreateResourceDefinition')
      assert.equal(req.headers['x-amzn-client-token'], planMlResource(options).input.AmznClientToken)
      assert.deepEqual(req.json, {
        InitialVersion: {
          Resources: [
            {
              Id: 'my-ml-resource',
              Name: 'my-ml-resource',
              ResourceDataContainer: {
                SageMakerMachineLearningModelResourceData: {
                  DestinationPath: '/ml/model',
                  OwnerSetting: {GroupOwner: 'ggc_group', GroupPermission: 'ro'},
                  SageMakerJobArn: JOB_ARN,
                },
              },
            },
          ],
        },
        Name: 'icc-my-ml-resource',
      })
    })

    const groupReplies = (w: AwsWire, finalStatus: string) =>
      w
        .on('greengrass:GetGroup', {
          body: {
            Arn: `arn:aws:greengrass:us-west-2:123456789012:/greengrass/groups/${GROUP_ID}`,
            Id: GROUP_ID,
            LatestVersion: 'gv-7',
            Name: 'Lab',
          },
        })
        .on('greengrass:GetGroupVersion', {
          body: {
            Definition: {
              ConnectorDefinitionVersionArn: 'arn:old-connectors',
              CoreDefinitionVersionArn: 'arn:core',
              FunctionDefinitionVersionArn: 'arn:functions',
              ResourceDefinitionVersionArn: 'arn:old-resources',
              SubscriptionDefinitionVersionArn: 'arn:subscriptions',
            },
            Id: GROUP_ID,
            Version: 'gv-7',
          },
        })
        .on('greengrass:CreateGroupVersion', {body: {Arn: 'arn:gv-8', Id: GROUP_ID, Version: 'gv-8'}})
        .on('greengrass:CreateDeployment', {body: {DeploymentArn: 'arn:deployment-1', DeploymentId: 'dep-1'}})
        .on(
          'greengrass:GetDeploymentStatus',
          (() => {
            let n = 0
            return () => ({
              body:
                ++n < 3
                  ? {DeploymentStatus: n === 1 ? 'Building' : 'InProgress', DeploymentType: 'NewDeployment'}
                  : {
                      DeploymentStatus: finalStatus,
                      DeploymentType: 'NewDeployment',
                      ErrorMessage:
                        finalStatus === 'Failure' ? 'Greengrass core failed to download ML resource' : undefined,
                    },
            })
          })(),
        )

    it('deploys: swaps connector and resource versions, keeps the rest, waits for Success', async () => {
      groupReplies(wire, 'Success')
      wire.throttle('greengrass:CreateDeployment', 2)
      const options = {
        connectorDefinitionVersionArn: 'arn:new-connectors',
        groupId: GROUP_ID,
        pollIntervalSeconds: 0,
        resourceDefinitionVersionArn: 'arn:new-resources',
        wait: true,
      }
      const result = await deployGroup(aws, options)
      assert.deepEqual(result, {
        deploymentArn: 'arn:deployment-1',
        deploymentId: 'dep-1',
        groupId: GROUP_ID,
        groupVersionId: 'gv-8',
        previousGroupVersionId: 'gv-7',
        status: 'Success',
      })
      assert.deepEqual(
        wire.requests.map((r) => r.operation),
        [
          'greengrass:GetGroup',
          'greengrass:GetGroupVersion',
          'greengrass:CreateGroupVersion',
          'greengrass:CreateDeployment',
          'greengrass:CreateDeployment',
          'greengrass:CreateDeployment',
          'greengrass:GetDeploymentStatus',
          'greengrass:GetDeploymentStatus',
          'greengrass:GetDeploymentStatus',
        ],
      )
      assert.equal(wire.calls('greengrass:GetGroupVersion')[0].path, `/greengrass/groups/${GROUP_ID}/versions/gv-7`)
      const [version] = wire.calls('greengrass:CreateGroupVersion')
      assert.deepEqual(version.json, {
        ConnectorDefinitionVersionArn: 'arn:new-connectors',
        CoreDefinitionVersionArn: 'arn:core',
        FunctionDefinitionVersionArn: 'arn:functions',
        ResourceDefinitionVersionArn: 'arn:new-resources',
        SubscriptionDefinitionVersionArn: 'arn:subscriptions',
      })
      assert.match(String(version.headers['x-amzn-client-token']), /^[0-9a-f]{32}$/)
      const deployments = wire.calls('greengrass:CreateDeployment')
      assert.deepEqual(deployments[2].json, {DeploymentType: 'NewDeployment', GroupVersionId: 'gv-8'})
      // Retries of the same request carry the same idempotency token.
      assert.equal(new Set(deployments.map((d) => d.headers['x-amzn-client-token'])).size, 1)
      assert.equal(deployments[0].headers['x-amzn-client-token'], clientToken('CreateDeployment', GROUP_ID, 'gv-8'))
      assert.equal(
        wire.calls('greengrass:GetDeploymentStatus')[0].path,
        `/greengrass/groups/${GROUP_ID}/deployments/dep-1/status`,
      )
    })

    it('reports a failed deployment with its error message', async () => {
      groupReplies(wire, 'Failure')
      await assert.rejects(
        deployGroup(aws, {
          connectorDefinitionVersionArn: 'arn:new-connectors',
          groupId: GROUP_ID,
          pollIntervalSeconds: 0,
          wait: true,
        }),
        (error: AwsError) => {
          assert.equal(error.code, 'DEPLOYMENT_FAILED')
          assert.match(error.message, /failed to download ML resource/)
          return true
        },
      )
      // Without a new resource definition, the group's own is kept.
      assert.equal(
        wire.calls('greengrass:CreateGroupVersion')[0].json.ResourceDefinitionVersionArn,
        'arn:old-resources',
      )
    })

    it('plans every request in order for --dry-run', () => {
      const plan = planDeployGroup({
        connectorDefinitionVersionArn: 'arn:c',
        groupId: GROUP_ID,
        resourceDefinitionVersionArn: 'arn:r',
        wait: true,
      })
      assert.deepEqual(
        plan.map((p) => p.operation),
        ['GetGroup', 'GetGroupVersion', 'CreateGroupVersion', 'CreateDeployment', 'GetDeploymentStatus'],
      )
      assert.equal(plan[4].note, 'Repeated until Success or Failure.')
      assert.equal(plan[2].operation === 'CreateGroupVersion' && plan[2].input.ConnectorDefinitionVersionArn, 'arn:c')
      assert.equal(plan[3].operation === 'CreateDeployment' && plan[3].input.DeploymentType, 'NewDeployment')
      assert.equal(
        planMlResource({destinationPath: '/m', resourceId: 'r', sagemakerJobArn: JOB_ARN}).operation,
        'CreateResourceDefinition',
      )
    })
  })

  describe('SageMaker JSON 1.1 (check-job)', () => {
    it('checks a good image-classification job, and that its model artifact exists in S3 (HeadObject)', async () => {
      artifactHead(wire, 48_213_774).on('sagemaker:DescribeTrainingJob', {body: trainingJob()})
      const result = await checkJob({...aws, sagemakerJobArn: JOB_ARN})
      assert.equal(result.ok, true, JSON.stringify(result.problems))
      assert.equal(result.modelArtifactBytes, 48_213_774)
      const head = wire.requests.find((r) => r.protocol === 'other')!
      assert.equal(head.method, 'HEAD')
      assert.equal(head.path, `/icc-models/output/${JOB_NAME}/output/model.tar.gz`)
      assert.match(String(head.headers.authorization), /\/us-west-2\/s3\/aws4_request/)
      assert.deepEqual(result.hyperparameters, {image_shape: '3,224,224', num_classes: '257', num_layers: '18'})
      assert.equal(result.modelArtifact, `s3://icc-models/output/${JOB_NAME}/output/model.tar.gz`)
      const [req] = wire.calls('sagemaker:DescribeTrainingJob')
      assert.equal(req.headers['x-amz-target'], 'SageMaker.DescribeTrainingJob')
      assert.equal(req.headers['content-type'], 'application/x-amz-json-1.1')
      assert.deepEqual(req.json, {TrainingJobName: JOB_NAME})
    })

    it('lists every problem with a fix', async () => {
      wire.on('sagemaker:DescribeTrainingJob', {
        body: trainingJob({
          AlgorithmSpecification: {
            TrainingImage: '683313688378.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1',
            TrainingInputMode: 'File',
          },
          HyperParameters: {max_depth: '5'},
          ModelArtifacts: undefined,
          TrainingJobArn: `arn:aws:sagemaker:us-west-2:999999999999:training-job/${JOB_NAME}`,
          TrainingJobStatus: 'InProgress',
        }),
      })
      const result = await checkJob({...aws, sagemakerJobArn: JOB_ARN})
      assert.equal(result.ok, false)
      assert.deepEqual(
        result.problems.map((p) => p.code),
        ['ACCOUNT_MISMATCH', 'JOB_NOT_COMPLETED', 'WRONG_ALGORITHM', 'NO_NUM_CLASSES', 'NO_MODEL_ARTIFACT'],
      )
      assert.match(result.problems[1].fix, /wait training-job-completed-or-stopped/)
      for (const p of result.problems) assert.ok(p.fix.length > 10)
    })

    it('reports a missing job and a region mismatch', async () => {
      wire.on('sagemaker:DescribeTrainingJob', jsonError('ValidationException', 'Requested resource not found.'))
      const result = await checkJob({...aws, region: 'eu-west-1', sagemakerJobArn: JOB_ARN})
      assert.equal(result.exists, false)
      assert.deepEqual(
        result.problems.map((p) => p.code),
        ['REGION_MISMATCH', 'JOB_NOT_FOUND'],
      )
      assert.match(result.problems[0].fix, /--region us-west-2/)
    })

    it('maps AccessDenied to an AWS error, and survives throttling', async () => {
      wire.on(
        'sagemaker:DescribeTrainingJob',
        jsonError('AccessDeniedException', 'User is not authorized to perform: sagemaker:DescribeTrainingJob', 400),
      )
      await assert.rejects(checkJob({...aws, sagemakerJobArn: JOB_ARN}), (error: AwsError) => {
        assert.equal(error.code, 'ACCESS_DENIED')
        assert.equal(error.exitCode, ExitCode.AwsError)
        return true
      })
      wire.reset()
      artifactHead(wire, 1000)
      wire.throttle('sagemaker:DescribeTrainingJob', 2).on('sagemaker:DescribeTrainingJob', {body: trainingJob()})
      assert.equal((await checkJob({...aws, sagemakerJobArn: JOB_ARN})).ok, true)
      assert.equal(wire.calls('sagemaker:DescribeTrainingJob').length, 3)
    })

    it('reports a model artifact that is gone from S3', async () => {
      artifactHead(wire).on('sagemaker:DescribeTrainingJob', {body: trainingJob()})
      const result = await checkJob({...aws, sagemakerJobArn: JOB_ARN})
      assert.equal(result.ok, false)
      assert.deepEqual(
        result.problems.map((p) => p.code),
        ['MODEL_ARTIFACT_MISSING'],
      )
      assert.match(result.problems[0].message, /s3:HeadObject s3:\/\/icc-models\/.*HTTP 404/)
    })

    it('a job moto cannot find ("Could not find training job") is JOB_NOT_FOUND, by error name', async () => {
      wire.on(
        'sagemaker:DescribeTrainingJob',
        jsonError('ValidationException', `Could not find training job '${JOB_ARN}'.`),
      )
      const result = await checkJob({...aws, sagemakerJobArn: JOB_ARN})
      assert.equal(result.exists, false)
      assert.deepEqual(
        result.problems.map((p) => p.code),
        ['JOB_NOT_FOUND'],
      )
      assert.match(result.problems[0].message, /Could not find training job/)
      await assert.rejects(modelArtifactOf(aws, JOB_ARN), (error: AwsError) => error.code === 'JOB_NOT_FOUND')
    })

    it("looks the job up in the ARN's region, whatever the client's region", async () => {
      artifactHead(wire, 10).on('sagemaker:DescribeTrainingJob', {body: trainingJob()})
      const result = await checkJob({...aws, region: 'eu-west-1', sagemakerJobArn: JOB_ARN})
      assert.deepEqual(
        result.problems.map((p) => p.code),
        ['REGION_MISMATCH'],
      )
      assert.equal(result.exists, true)
      const signed = (r: {headers: {authorization?: string}}) => String(r.headers.authorization)
      assert.match(signed(wire.calls('sagemaker:DescribeTrainingJob')[0]), /\/us-west-2\/sagemaker\//)
      // pull-model's lookup too: the job and its artifact are in the ARN's region.
      wire.reset()
      wire.on('sagemaker:DescribeTrainingJob', {body: trainingJob()})
      const artifact = await modelArtifactOf({...aws, region: 'eu-west-1'}, JOB_ARN)
      assert.equal(artifact.region, 'us-west-2')
      assert.match(signed(wire.calls('sagemaker:DescribeTrainingJob')[0]), /\/us-west-2\/sagemaker\//)
    })

    it("pull-model refuses a job found in another account than the ARN's, with the fix", async () => {
      const real = JOB_ARN.replace('123456789012', '999999999999')
      wire.on('sagemaker:DescribeTrainingJob', {body: trainingJob({TrainingJobArn: real})})
      await assert.rejects(modelArtifactOf(aws, JOB_ARN), (error: UsageError) => {
        assert.equal(error.code, 'ACCOUNT_MISMATCH')
        assert.equal(error.exitCode, ExitCode.Usage)
        assert.match(error.suggestions[0], new RegExp(`--profile.*${real}`))
        return true
      })
    })

    it('refuses an --endpoint-url without a scheme before any call, as the aws CLI does', async () => {
      await assert.rejects(
        checkJob({...aws, endpointUrl: 'localhost:4566', sagemakerJobArn: JOB_ARN}),
        (error: UsageError) => {
          assert.equal(error.code, 'INVALID_ENDPOINT_URL')
          assert.equal(error.exitCode, ExitCode.Usage)
          assert.match(error.message, /Bad value for --endpoint-url "localhost:4566": scheme is missing/)
          assert.match(error.suggestions[0], /http:\/\/localhost:4566/)
          return true
        },
      )
      assert.equal(wire.requests.length, 0)
    })

    it('rejects the documentation typo training-job: before any call', async () => {
      await assert.rejects(
        checkJob({...aws, sagemakerJobArn: JOB_ARN.replace('training-job/', 'training-job:')}),
        (error: UsageError) => {
          assert.equal(error.code, 'INVALID_JOB_ARN')
          assert.match(error.suggestions[0], /training-job\/MyImageClassifier/)
          return true
        },
      )
      assert.equal(wire.requests.length, 0)
    })
  })
})
