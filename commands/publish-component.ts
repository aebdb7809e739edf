import {Args, Flags} from '@oclif/core'

import {publishComponent, type PublishResult} from '../src/greengrass-v2/publish.js'
import {awsFlags, awsOptions} from './_aws.js'
import {BaseCommand} from './_base.js'

export default class PublishComponent extends BaseCommand {
  static override args = {dir: Args.string({description: 'A folder written by icc export-component.', required: true})}
  static override description = `Publish an exported component: upload its artifacts to S3 and create the component version.
Artifacts go to --artifact-bucket (multipart past 8 MiB; skipped when the object already has the same SHA-256),
the recipe's artifact URIs are rewritten to them (in DIR too), then CreateComponentVersion takes the recipe inline.
The bucket is checked first and the version is created last: a failure leaves nothing half-published. An existing
component version is never replaced.
Exit codes: 0 published, 2 not an export folder or bad flags, 3 AWS error (access denied, version exists, ...).`
  static override examples = [
    '<%= config.bin %> <%= command.id %> ./icc-component --artifact-bucket my-artifacts --region us-west-2',
    '<%= config.bin %> <%= command.id %> ./icc-component --artifact-bucket my-artifacts/components --dry-run --json',
  ]
  static override flags = {
    ...awsFlags,
    'artifact-bucket': Flags.string({
      description: 'S3 bucket (optionally bucket/prefix) for the artifacts.',
      required: true,
    }),
    'dry-run': Flags.boolean({description: 'Send nothing; print the requests that would be sent.'}),
  }

  async run(): Promise<PublishResult> {
    const {args, flags} = await this.parse(PublishComponent)
    const result = await publishComponent({
      ...awsOptions(flags),
      artifactBucket: flags['artifact-bucket'],
      dir: args.dir,
      dryRun: flags['dry-run'],
      onProgress: (line) => process.stderr.write(`icc publish-component: ${line}\n`),
    })
    if (!this.jsonEnabled()) {
      if ('requests' in result) {
        this.log('Dry run: nothing was sent. The requests would be:')
        for (const r of result.requests) this.log(`${r.operation}\n${JSON.stringify(r.input, null, 2)}`)
      } else {
        for (const c of result.components) {
          this.log(`Published ${c.componentName} ${c.componentVersion}: ${c.arn ?? ''}`)
          for (const u of c.uploaded) this.log(`  uploaded ${u}`)
          for (const s of c.skipped) this.log(`  already there ${s}`)
        }
      }
    }

    return result
  }
}
