import {Args, Flags} from '@oclif/core'

import type {PlannedRequest} from '../src/greengrass-v2/publish.js'

import {deployComponent, type DeployResult} from '../src/greengrass-v2/deploy.js'
import {awsFlags, awsOptions} from './_aws.js'
import {BaseCommand} from './_base.js'

export default class DeployComponent extends BaseCommand {
  static override args = {dir: Args.string({description: 'A folder written by icc export-component.', required: true})}
  static override description = `Deploy an exported (and published) component to a thing or thing group.
CreateDeployment with DIR/deployment.json, keeping the other components of the target's latest deployment (ours
replace same-named ones). --wait polls until a thing's deployment succeeds or fails (a thing group's deployment
stays ACTIVE: creation is as far as waiting goes).
Exit codes: 0 deployed, 1 the deployment failed, 2 bad flags, 3 AWS error.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> ./icc-component --target-arn arn:aws:iot:us-west-2:123456789012:thing/MyCamera --wait',
    '<%= config.bin %> <%= command.id %> ./icc-component --dry-run --json',
  ]
  static override flags = {
    ...awsFlags,
    'dry-run': Flags.boolean({description: 'Send nothing; print the requests that would be sent.'}),
    'target-arn': Flags.string({description: 'Thing or thing group ARN (default: the one in deployment.json).'}),
    wait: Flags.boolean({description: 'Wait until the deployment succeeds or fails.'}),
    'wait-timeout': Flags.integer({description: 'With --wait: give up after this many seconds (default 600).', min: 1}),
  }

  async run(): Promise<DeployResult | {requests: PlannedRequest[]}> {
    const {args, flags} = await this.parse(DeployComponent)
    const result = await deployComponent({
      ...awsOptions(flags),
      dir: args.dir,
      dryRun: flags['dry-run'],
      targetArn: flags['target-arn'],
      wait: flags.wait,
      waitTimeoutSeconds: flags['wait-timeout'],
    })
    if (!this.jsonEnabled()) {
      if ('requests' in result) {
        this.log('Dry run: nothing was sent. The requests would be:')
        for (const r of result.requests) this.log(`${r.operation}\n${JSON.stringify(r.input, null, 2)}`)
      } else {
        this.log(`Deployment ${result.deploymentId} to ${result.targetArn}${result.status ? `: ${result.status}` : ''}`)
        if (result.keptComponents.length > 0) this.log(`  Kept components: ${result.keptComponents.join(', ')}`)
      }
    }

    return result
  }
}
