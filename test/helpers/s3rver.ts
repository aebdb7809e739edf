/**
 * s3rver (a devDependency, CommonJS without types) on loopback, with the test credentials registered: it checks
 * only that the access key id is known (SigV4 signatures are not verified).
 */
import {createRequire} from 'node:module'

import {ACCESS_KEY_ID, SECRET_KEY} from '../aws/fixtures.js'

const require = createRequire(import.meta.url)

export interface S3Server {
  close(): Promise<void>
  run(): Promise<{address: string; port: number}>
}

const S3rver = require('s3rver') as new (options: Record<string, unknown>) => S3Server

/** Start s3rver in `directory` with these buckets; returns the server and its port. */
export async function startS3rver(directory: string, buckets: string[]): Promise<{port: number; server: S3Server}> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'
  require('s3rver/lib/models/account.js').DUMMY_ACCOUNT.createKeyPair(ACCESS_KEY_ID, SECRET_KEY)
  const server = new S3rver({
    address: '127.0.0.1',
    configureBuckets: buckets.map((name) => ({name})),
    directory,
    port: 0,
    silent: true,
  })
  const {port} = await server.run()
  return {port, server}
}
