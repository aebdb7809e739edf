/**
 * AWS SDK v3 client configuration shared by every AWS-facing command, the way the aws CLI does it: the default
 * credential chain, `--region`, `--profile`, `--endpoint-url` (LocalStack-style endpoints), and the SDK's
 * standard retry mode. Also the one mapping of AWS errors to {@link AwsError}s with a next step.
 */
import {createHash} from 'node:crypto'

import {AwsError, ExitCode, IccError} from '../errors.js'

export interface AwsOptions {
  endpointUrl?: string
  profile?: string
  region?: string
}

/** The configuration object every SDK v3 client constructor accepts. */
export function clientConfig(options: AwsOptions): Record<string, unknown> {
  // icc supports Node 20 (package.json engines); the SDK's "Node >= 22 soon" notice is noise on every command.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
  const region = options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION
  return {
    ...(region ? {region} : {}),
    ...(options.profile ? {profile: options.profile} : {}),
    ...(options.endpointUrl ? {endpoint: options.endpointUrl} : {}),
    maxAttempts: 3,
    retryMode: 'standard',
  }
}

/** Turn an error thrown by an SDK v3 client into one clear line with the next step. */
export function mapAwsError(error: unknown, operation: string): IccError {
  if (error instanceof IccError) return error
  const e = error as {$metadata?: {httpStatusCode?: number}; message?: string; name?: string}
  const name = e.name ?? 'Error'
  const status = e.$metadata?.httpStatusCode
  const message = (e.message ?? String(error)).split('\n')[0]
  if (name === 'CredentialsProviderError' || /Could not load credentials|credential/i.test(message)) {
    return new AwsError('NO_CREDENTIALS', `${operation}: no AWS credentials were found.`, {
      suggestions: ['Run "aws configure", set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or pass --profile.'],
    })
  }

  if (/Region is missing|region/i.test(message) && /missing/i.test(message)) {
    return new AwsError('NO_REGION', `${operation}: no AWS region is set.`, {
      suggestions: ['Pass --region, or set AWS_REGION.'],
    })
  }

  if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ECONNRESET|ETIMEDOUT/.test(`${(e as {code?: string}).code ?? ''} ${message}`)) {
    return new AwsError('ENDPOINT_UNREACHABLE', `${operation}: cannot reach the AWS endpoint: ${message}`, {
      suggestions: ['Check the network, --region, and --endpoint-url if you passed one.'],
    })
  }

  if (status === 403 || /AccessDenied|UnauthorizedOperation|Forbidden/i.test(name)) {
    return new AwsError('ACCESS_DENIED', `${operation} was denied: ${message}`, {
      suggestions: [
        `Allow the ${operation} action for the credentials in use (check with "aws sts get-caller-identity").`,
      ],
    })
  }

  if (/Throttl|TooManyRequests|RequestLimitExceeded/i.test(name) || status === 429) {
    return new AwsError('THROTTLED', `${operation} was throttled by AWS after retries: ${message}`, {
      suggestions: ['Wait a minute and run the command again.'],
    })
  }

  if (status === 404 || /NotFound|NoSuch|ResourceNotFound/i.test(name)) {
    return new AwsError('NOT_FOUND', `${operation}: not found: ${message}`, {
      suggestions: ['Check the id or ARN, and that --region is the one the resource lives in.'],
    })
  }

  return new IccError('AWS_ERROR', `${operation} failed (${name}${status ? `, HTTP ${status}` : ''}): ${message}`, {
    exitCode: ExitCode.AwsError,
  })
}

/**
 * A client token (AmznClientToken) derived from the request, so the same request is idempotent. Kept here, away
 * from the SDK clients, because `icc serve` uses it through the connector definition module.
 */
export function clientToken(...parts: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 32)
}
