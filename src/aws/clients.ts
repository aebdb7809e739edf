/**
 * AWS SDK v3 client configuration shared by every AWS-facing command, the way the aws CLI does it: the default
 * credential chain, `--region`, `--profile`, `--endpoint-url` (LocalStack-style endpoints), and the SDK's
 * standard retry mode. Also the one mapping of AWS errors to {@link AwsError}s with a next step.
 */
import {S3Client} from '@aws-sdk/client-s3'
import {createHash} from 'node:crypto'

import {AwsError, ExitCode, IccError, UsageError} from '../errors.js'

export interface AwsOptions {
  endpointUrl?: string
  profile?: string
  region?: string
}

/**
 * Check `--endpoint-url` before anything is sent, as the aws CLI does: without a scheme the SDK fails later with
 * "Invalid URL" or an "UnknownError" that hides the cause.
 */
export function checkEndpointUrl(endpointUrl: string | undefined): void {
  if (endpointUrl === undefined) return
  const form = 'Must be of the form http://<hostname>/ or https://<hostname>/'
  const bad = (why: string, suggestions: string[]) =>
    new UsageError('INVALID_ENDPOINT_URL', `Bad value for --endpoint-url ${JSON.stringify(endpointUrl)}: ${why}.`, {
      suggestions,
    })
  if (!/^[a-z][a-z\d+.-]*:\/\//i.test(endpointUrl)) {
    throw bad('scheme is missing', [`${form}, e.g. http://${endpointUrl.replace(/^\/+/, '') || 'localhost:4566'}`])
  }

  let url: URL
  try {
    url = new URL(endpointUrl)
  } catch {
    throw bad('it is not a valid URL', [form])
  }

  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw bad(`the scheme ${url.protocol.slice(0, -1)} is not http or https`, [form])
  }

  if (!url.hostname) throw bad('the host name is missing', [form])
}

/** The part of every SDK v3 client's configuration that icc sets. */
export interface AwsClientConfig {
  endpoint?: string
  maxAttempts: number
  profile?: string
  region?: string
  retryMode: 'standard'
}

/** The configuration of an SDK v3 client for the options (region: flag, then AWS_REGION / AWS_DEFAULT_REGION). */
export function clientConfig(options: AwsOptions): AwsClientConfig {
  checkEndpointUrl(options.endpointUrl)
  const region = options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION
  return {
    ...(region ? {region} : {}),
    ...(options.profile ? {profile: options.profile} : {}),
    ...(options.endpointUrl ? {endpoint: options.endpointUrl} : {}),
    maxAttempts: 3,
    retryMode: 'standard',
  }
}

/** An S3 client for the options; path-style addressing when an endpoint is given (S3-compatible servers). */
export function s3Client(aws: AwsOptions): S3Client {
  return new S3Client({...clientConfig(aws), ...(aws.endpointUrl ? {forcePathStyle: true} : {})})
}

/** The region the options resolve to (flag, environment, profile), or undefined when none is set. */
export async function configuredRegion(aws: AwsOptions): Promise<string | undefined> {
  const client = new S3Client(clientConfig(aws))
  try {
    return await client.config.region()
  } catch {
    return undefined
  } finally {
    client.destroy()
  }
}

/** What an SDK error says about itself: its error name and the HTTP status of the answer (when one came). */
export function awsErrorInfo(error: unknown): {message: string; name: string; status?: number; tag: string} {
  const e = error as {
    $metadata?: {httpStatusCode?: number}
    $response?: {statusCode?: number}
    message?: string
    name?: string
  }
  // A body the SDK cannot parse (an HTML 404 page) leaves the status only on $response for some protocols.
  const status = e.$metadata?.httpStatusCode ?? e.$response?.statusCode
  const name = e.name ?? 'Error'
  // `(Name, HTTP 404)`: what the answer was, kept in every message.
  const tag = `(${name}${status ? `, HTTP ${status}` : ''})`
  return {message: (e.message ?? String(error)).split('\n')[0], name, status, tag}
}

/** Turn an error thrown by an SDK v3 client into one clear line with the next step. */
export function mapAwsError(error: unknown, operation: string): IccError {
  if (error instanceof IccError) return error
  const {message, name, status, tag} = awsErrorInfo(error)
  const e = error as {code?: string}
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

  if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ECONNRESET|ETIMEDOUT/.test(`${e.code ?? ''} ${message}`)) {
    return new AwsError('ENDPOINT_UNREACHABLE', `${operation}: cannot reach the AWS endpoint: ${message}`, {
      suggestions: ['Check the network, --region, and --endpoint-url if you passed one.'],
    })
  }

  if (name === 'SyntaxError') {
    // The answer was not AWS JSON/XML: an endpoint (proxy, emulator) without this API, or an HTML error page.
    return new AwsError(
      'UNEXPECTED_RESPONSE',
      `${operation}: the endpoint answered HTTP ${status ?? '(no status)'} with a body that is not an AWS answer (${message}).`,
      {suggestions: ['Check --endpoint-url and --region: the endpoint must serve this AWS API.']},
    )
  }

  if (status === 403 || /AccessDenied|UnauthorizedOperation|Forbidden/i.test(name)) {
    return new AwsError('ACCESS_DENIED', `${operation} was denied: ${message} ${tag}`, {
      suggestions: [
        `Allow the ${operation} action for the credentials in use (check with "aws sts get-caller-identity").`,
      ],
    })
  }

  if (/Throttl|TooManyRequests|RequestLimitExceeded/i.test(name) || status === 429) {
    return new AwsError('THROTTLED', `${operation} was throttled by AWS after retries: ${message} ${tag}`, {
      suggestions: ['Wait a minute and run the command again.'],
    })
  }

  if (status === 404 || /NotFound|NoSuch|ResourceNotFound/i.test(name)) {
    return new AwsError('NOT_FOUND', `${operation}: not found: ${message} ${tag}`, {
      suggestions: ['Check the id or ARN, and that --region is the one the resource lives in.'],
    })
  }

  return new IccError('AWS_ERROR', `${operation} failed ${tag}: ${message}`, {
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
