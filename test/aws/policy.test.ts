// @tier unit: needs neither ../shared nor child processes (npm run test:unit)
import assert from 'node:assert/strict'

import {
  describeTrainingJobPolicy,
  evaluatePolicies,
  type PolicyDecision,
  wildcardToRegExp,
} from '../../src/check-role/policy.js'

const ACTION = 'sagemaker:DescribeTrainingJob'
const JOB = 'arn:aws:sagemaker:us-west-2:123456789012:training-job/MyImageClassifier'
const OTHER_JOB = 'arn:aws:sagemaker:us-west-2:123456789012:training-job/Other'

type Doc = Record<string, unknown>
const allow = (extra: Doc): Doc => ({Effect: 'Allow', ...extra})
const deny = (extra: Doc): Doc => ({Effect: 'Deny', ...extra})
const policy = (...statements: Doc[]): Doc => ({Statement: statements, Version: '2012-10-17'})

interface Case {
  action?: string
  decision: PolicyDecision
  /** Expected deciding statements as `policy#Sid|statement[i]`. */
  deciding?: string[]
  name: string
  policies: unknown[]
  resource?: string
}

const cases: Case[] = [
  {decision: 'allowed', name: "the seed's example policy with the job ARN", policies: [describeTrainingJobPolicy(JOB)]},
  {
    decision: 'implicitDeny',
    name: "the seed's example policy, another job",
    policies: [describeTrainingJobPolicy(OTHER_JOB)],
  },
  {
    decision: 'implicitDeny',
    name: "the seed's example literally (training-job: typo) does not match a real job ARN",
    policies: [
      policy(
        allow({
          Action: ['sagemaker:DescribeTrainingJob'],
          Resource: 'arn:aws:sagemaker:us-west-2:123456789012:training-job:MyImageClassifier',
        }),
      ),
    ],
  },
  {decision: 'implicitDeny', name: 'empty statement list', policies: [policy()]},
  {decision: 'implicitDeny', name: 'no policies at all', policies: []},
  {decision: 'allowed', name: 'Action "*" and Resource "*"', policies: [policy(allow({Action: '*', Resource: '*'}))]},
  {
    decision: 'allowed',
    name: 'service wildcard sagemaker:*',
    policies: [policy(allow({Action: 'sagemaker:*', Resource: '*'}))],
  },
  {
    decision: 'allowed',
    name: 'prefix wildcard sagemaker:Describe*',
    policies: [policy(allow({Action: 'sagemaker:Describe*', Resource: JOB}))],
  },
  {
    decision: 'implicitDeny',
    name: 'wildcard of another prefix sagemaker:List*',
    policies: [policy(allow({Action: 'sagemaker:List*', Resource: JOB}))],
  },
  {
    decision: 'allowed',
    name: '? wildcard in action',
    policies: [policy(allow({Action: 'sagemaker:DescribeTrainingJo?', Resource: JOB}))],
  },
  {
    decision: 'implicitDeny',
    name: '? matches exactly one character',
    policies: [policy(allow({Action: 'sagemaker:DescribeTrainingJob?', Resource: JOB}))],
  },
  {
    decision: 'allowed',
    name: 'case-insensitive action names',
    policies: [policy(allow({Action: 'SageMaker:describetrainingjob', Resource: JOB}))],
  },
  {
    decision: 'implicitDeny',
    name: 'case-sensitive resource ARNs',
    policies: [policy(allow({Action: ACTION, Resource: JOB.toLowerCase()}))],
  },
  {
    decision: 'allowed',
    name: 'resource wildcard training-job/My*',
    policies: [policy(allow({Action: ACTION, Resource: 'arn:aws:sagemaker:*:123456789012:training-job/My*'}))],
  },
  {
    decision: 'allowed',
    name: 'resource ? wildcard for the region',
    policies: [
      policy(
        allow({Action: ACTION, Resource: 'arn:aws:sagemaker:us-west-?:123456789012:training-job/MyImageClassifier'}),
      ),
    ],
  },
  {
    decision: 'implicitDeny',
    name: 'regular expression characters in a resource are literal',
    policies: [
      policy(
        allow({Action: ACTION, Resource: 'arn:aws:sagemaker:us-west-2:123456789012:training-job/MyImage.lassifier'}),
      ),
    ],
  },
  {
    decision: 'allowed',
    name: 'array fields',
    policies: [policy(allow({Action: ['s3:GetObject', ACTION], Resource: [OTHER_JOB, JOB]}))],
  },
  {
    decision: 'allowed',
    name: 'a single statement object instead of an array',
    policies: [{Statement: allow({Action: ACTION, Resource: JOB}), Version: '2012-10-17'}],
  },
  {
    decision: 'allowed',
    name: 'NotAction allows everything else',
    policies: [policy(allow({NotAction: 'iam:*', Resource: '*'}))],
  },
  {
    decision: 'implicitDeny',
    name: 'NotAction excludes the action',
    policies: [policy(allow({NotAction: 'sagemaker:*', Resource: '*'}))],
  },
  {
    decision: 'allowed',
    name: 'NotResource allows other resources',
    policies: [policy(allow({Action: ACTION, NotResource: OTHER_JOB}))],
  },
  {
    decision: 'implicitDeny',
    name: 'NotResource excludes the job',
    policies: [policy(allow({Action: ACTION, NotResource: JOB}))],
  },
  {
    deciding: ['p#NoTraining'],
    decision: 'explicitDeny',
    name: 'explicit deny wins over an allow in the same policy',
    policies: [
      policy(
        allow({Action: '*', Resource: '*'}),
        deny({Action: 'sagemaker:*Training*', Resource: '*', Sid: 'NoTraining'}),
      ),
    ],
  },
  {
    deciding: ['p[1]#statement[0]'],
    decision: 'explicitDeny',
    name: 'explicit deny in another policy wins',
    policies: [describeTrainingJobPolicy(JOB), policy(deny({Action: ACTION, Resource: JOB}))],
  },
  {
    decision: 'allowed',
    name: 'a deny of other resources does not matter',
    policies: [policy(allow({Action: ACTION, Resource: '*'}), deny({Action: ACTION, Resource: OTHER_JOB}))],
  },
  {
    deciding: ['p#statement[0]'],
    decision: 'explicitDeny',
    name: 'Deny with NotResource denies everything but the listed ones',
    policies: [policy(deny({Action: '*', NotResource: OTHER_JOB}), allow({Action: '*', Resource: '*'}))],
  },
  {
    deciding: ['p#Cond'],
    decision: 'undecided',
    name: 'Allow with a Condition cannot be decided offline',
    policies: [
      policy(
        allow({
          Action: ACTION,
          Condition: {StringEquals: {'aws:RequestedRegion': 'us-west-2'}},
          Resource: JOB,
          Sid: 'Cond',
        }),
      ),
    ],
  },
  {
    decision: 'allowed',
    name: 'a conditional Allow does not matter when an unconditional one allows',
    policies: [
      policy(
        allow({Action: ACTION, Condition: {Bool: {'aws:SecureTransport': 'true'}}, Resource: JOB}),
        allow({Action: ACTION, Resource: JOB}),
      ),
    ],
  },
  {
    deciding: ['p#statement[1]'],
    decision: 'undecided',
    name: 'a conditional Deny matters when something allows',
    policies: [
      policy(
        allow({Action: ACTION, Resource: JOB}),
        deny({Action: '*', Condition: {Bool: {'aws:MultiFactorAuthPresent': 'false'}}, Resource: '*'}),
      ),
    ],
  },
  {
    decision: 'implicitDeny',
    name: 'a conditional Deny alone: denied anyway',
    policies: [policy(deny({Action: '*', Condition: {Bool: {'aws:MultiFactorAuthPresent': 'false'}}, Resource: '*'}))],
  },
  {
    decision: 'explicitDeny',
    name: 'an unconditional Deny beats a conditional Allow',
    policies: [
      policy(
        allow({Action: ACTION, Condition: {Bool: {'aws:SecureTransport': 'true'}}, Resource: JOB}),
        deny({Action: ACTION, Resource: JOB}),
      ),
    ],
  },
  {
    decision: 'undecided',
    name: 'policy variables in a resource cannot be decided offline',
    policies: [
      policy(
        // eslint-disable-next-line no-template-curly-in-string
        allow({Action: ACTION, Resource: 'arn:aws:sagemaker:us-west-2:123456789012:training-job/${aws:username}'}),
      ),
    ],
  },
  {
    decision: 'allowed',
    name: 'URL-encoded JSON text as IAM returns it',
    policies: [encodeURIComponent(JSON.stringify(describeTrainingJobPolicy(JOB)))],
  },
  {
    decision: 'implicitDeny',
    name: 'a statement for another service',
    policies: [policy(allow({Action: ['s3:GetObject', 'greengrass:*'], Resource: '*'}))],
  },
]

describe('policy evaluator', () => {
  it('has at least 20 cases', () => {
    assert.ok(cases.length >= 20)
  })

  for (const c of cases) {
    it(`${c.decision}: ${c.name}`, () => {
      const names = c.policies.length > 1 ? c.policies.map((_, i) => `p[${i}]`) : ['p']
      const result = evaluatePolicies(
        c.policies.map((document, i) => ({document, name: names[i]})),
        c.action ?? ACTION,
        c.resource ?? JOB,
      )
      assert.equal(result.decision, c.decision, result.reason)
      if (c.deciding) {
        assert.deepEqual(
          result.deciding.map((s) => `${s.policyName}#${s.sid ?? `statement[${s.index}]`}`),
          c.deciding,
        )
      }
    })
  }

  it('names the deciding statement by Sid in the reason', () => {
    const result = evaluatePolicies(
      [{document: policy(allow({Action: ACTION, Resource: JOB, Sid: 'GreengrassDescribe'})), name: 'GroupRolePolicy'}],
      ACTION,
      JOB,
    )
    assert.equal(result.reason, 'allowed by GroupRolePolicy#GreengrassDescribe')
  })

  it('rejects malformed documents with the path of the problem', () => {
    const bad = [
      ['{not json', /not valid JSON/],
      [{Version: '2012-10-17'}, /Statement/],
      [policy({Action: ACTION, Effect: 'Maybe', Resource: JOB}), /\/Statement\/0\/Effect/],
      [policy(allow({Action: ACTION, NotAction: 'x', Resource: JOB})), /exactly one of "Action" or "NotAction"/],
      [policy(allow({Action: ACTION})), /exactly one of "Resource" or "NotResource"/],
      [policy(allow({Action: [1], Resource: JOB})), /must be a string or an array of strings/],
    ] as const
    for (const [document, pattern] of bad) {
      assert.throws(() => evaluatePolicies([{document, name: 'bad.json'}], ACTION, JOB), pattern)
    }
  })

  it('turns wildcards into anchored expressions', () => {
    assert.equal(wildcardToRegExp('a*b?', false).test('aXXbY'), true)
    assert.equal(wildcardToRegExp('a*b?', false).test('zaXXbY'), false)
    assert.equal(wildcardToRegExp('a(b)', false).test('a(b)'), true)
  })
})
