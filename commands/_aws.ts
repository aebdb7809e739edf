/**
 * The AWS flags every AWS-side command takes, as the aws CLI spells them, and their mapping to the library's
 * AwsOptions (credentials always come from the SDK's default chain).
 */
import {Flags} from '@oclif/core'

import {type AwsOptions, checkEndpointUrl} from '../src/aws/clients.js'

export const awsFlags = {
  'endpoint-url': Flags.string({
    description: 'Send AWS requests to this endpoint (e.g. LocalStack: http://localhost:4566), as aws --endpoint-url.',
  }),
  profile: Flags.string({description: 'AWS profile to use (default: AWS_PROFILE or the default profile).'}),
  region: Flags.string({description: 'AWS region (default: AWS_REGION or the profile).'}),
}

/** The AwsOptions of the flags; a bad --endpoint-url is refused here, before any other work. */
export function awsOptions(flags: {'endpoint-url'?: string; profile?: string; region?: string}): AwsOptions {
  checkEndpointUrl(flags['endpoint-url'])
  // icc supports Node 20 (package.json engines); the SDK's "Node >= 22 soon" notice is noise on every command.
  // Set here, for the CLI's own process: the library leaves the environment alone.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
  return {endpointUrl: flags['endpoint-url'], profile: flags.profile, region: flags.region}
}
