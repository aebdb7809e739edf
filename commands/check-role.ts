import {Flags} from '@oclif/core'

import type {CheckRoleResult} from '../src/check-role/types.js'

import {checkRole} from '../src/check-role/check-role.js'
import {awsFlags, awsOptions} from './_aws.js'
import {BaseCommand} from './_base.js'
import {terminalConfirm} from './_prompt.js'

export default class CheckRole extends BaseCommand {
  static override description = `Check that the Greengrass group role allows sagemaker:DescribeTrainingJob on the training job,
or (Greengrass V2, with --s3-uri) that the token exchange role allows s3:GetObject on the component's artifacts.
Uses IAM's policy simulator; when that is not allowed (or fails), reads the role's policies and evaluates them locally.
Exit codes: 0 allowed, 6 denied (implicitly or explicitly), 7 could not decide (e.g. a Condition).`
  static override examples = [
    {
      command:
        '<%= config.bin %> <%= command.id %> --group-id 1402daf9-71cf-4cfe-8be0-d5e80526d0d8 --sagemaker-job-arn arn:aws:sagemaker:us-west-2:123456789012:training-job/MyImageClassifier',
      description: "Check the group's role.",
    },
    {
      command:
        '<%= config.bin %> <%= command.id %> --role-arn arn:aws:iam::123456789012:role/GreengrassGroupRole --sagemaker-job-arn arn:aws:sagemaker:us-west-2:123456789012:training-job/MyImageClassifier --fix --yes',
      description: 'Add the missing permission as an inline policy without asking.',
    },
    {
      command:
        '<%= config.bin %> <%= command.id %> --policy-file policy.json --sagemaker-job-arn arn:aws:sagemaker:us-west-2:123456789012:training-job/MyImageClassifier',
      description: 'Evaluate a policy document offline (no AWS calls).',
    },
    {
      command:
        '<%= config.bin %> <%= command.id %> --role-alias GreengrassV2TokenExchangeRoleAlias --s3-uri s3://my-bucket/icc.imageClassification/1.0.0/ --fix',
      description: "Greengrass V2: may the token exchange role read the component's artifacts?",
    },
  ]
  static override flags = {
    ...awsFlags,
    fix: Flags.boolean({
      description:
        "Add this job (or these artifacts) to the role's icc inline policy (exactly this action; other grants are kept).",
    }),
    'group-id': Flags.string({
      description: 'Greengrass group whose associated role to check.',
      exactlyOne: ['group-id', 'role-arn', 'role-alias', 'policy-file'],
    }),
    'policy-file': Flags.string({description: 'Evaluate this policy document (or JSON array of documents) offline.'}),
    'role-alias': Flags.string({
      description: 'Greengrass V2: the token exchange role alias (AWS IoT DescribeRoleAlias gives its role).',
    }),
    'role-arn': Flags.string({description: 'IAM role ARN to check.'}),
    's3-uri': Flags.string({
      description: 'Greengrass V2: an artifact object s3://BUCKET/KEY, or s3://BUCKET/PREFIX/ (repeatable).',
      exactlyOne: ['sagemaker-job-arn', 's3-uri'],
      multiple: true,
    }),
    'sagemaker-job-arn': Flags.string({description: 'The training job ARN (MLModelSageMakerJobArn).'}),
    yes: Flags.boolean({char: 'y', description: 'Apply --fix without asking.'}),
  }

  async run(): Promise<CheckRoleResult> {
    const {flags} = await this.parse(CheckRole)
    const json = this.jsonEnabled()
    const result = await checkRole({
      ...awsOptions(flags),
      confirm: terminalConfirm(json),
      fix: flags.fix,
      groupId: flags['group-id'],
      log: json ? undefined : (line) => this.logToStderr(line),
      policyFile: flags['policy-file'],
      roleAlias: flags['role-alias'],
      roleArn: flags['role-arn'],
      s3Uris: flags['s3-uri'],
      sagemakerJobArn: flags['sagemaker-job-arn'],
      yes: flags.yes,
    })
    if (!json) {
      const words = {
        allowed: 'ALLOWED',
        explicitDeny: 'DENIED (explicit deny)',
        implicitDeny: 'DENIED (no statement allows it)',
        undecided: 'CANNOT DECIDE',
      }
      for (const c of result.checks ?? [result]) this.log(`${words[c.decision]}: ${result.action} on ${c.resource}`)
      if (result.roleArn) this.log(`Role: ${result.roleArn}`)
      this.log(`Why: ${result.reason}`)
      for (const s of result.statements) this.log(`  - ${s.policy}${s.statement ? ` (${s.statement})` : ''}`)
      if (result.fix) this.log(`Fix: ${result.fix.note}`)
      else if (result.decision === 'implicitDeny' && result.method === 'policy-file') {
        // --fix changes a role, not a file: say what works instead.
        this.log(`Add a statement allowing ${result.action} on ${result.resource} to the policy, or check the role`)
        this.log('itself with --role-arn ROLE_ARN --fix.')
      } else if (result.decision === 'implicitDeny') this.log('Run again with --fix to add the missing permission.')
    }

    // The result is printed once (by oclif for --json, above otherwise); the exit code tells denied/undecided.
    if (result.exitCode !== 0) process.exitCode = result.exitCode
    return result
  }
}
