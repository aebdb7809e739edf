/** S3 over the AWS SDK v3: an object downloaded to a file, with progress (used by pull-model). */
import {GetObjectCommand} from '@aws-sdk/client-s3'
import {createWriteStream} from 'node:fs'
import {basename} from 'node:path'
import {Readable, Transform} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import {AwsError} from '../errors.js'
import {type AwsOptions, mapAwsError, s3Client} from './clients.js'
import {createProgressBar} from './progress.js'

/**
 * S3 GetObject streamed to `file`, with a progress bar on stderr when `progress`; its size is checked against
 * Content-Length. Returns the bytes written.
 */
export async function downloadObject(
  aws: AwsOptions,
  bucket: string,
  key: string,
  file: string,
  progress: boolean,
): Promise<number> {
  const s3 = s3Client(aws)
  try {
    let out
    try {
      out = await s3.send(new GetObjectCommand({Bucket: bucket, Key: key}))
    } catch (error) {
      throw mapAwsError(error, `s3:GetObject s3://${bucket}/${key}`)
    }

    const expected = out.ContentLength
    const bar = createProgressBar({enabled: progress, label: basename(key), total: expected})
    let bytes = 0
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        bytes += chunk.length
        bar.update(bytes)
        cb(null, chunk)
      },
    })
    try {
      await pipeline(out.Body as Readable, counter, createWriteStream(file))
    } catch (error) {
      bar.done()
      throw new AwsError(
        'DOWNLOAD_INTERRUPTED',
        `Download of s3://${bucket}/${key} was interrupted after ${bytes} of ${expected ?? '?'} bytes: ${(error as Error).message}`,
        {suggestions: ['Run the command again; the destination was left unchanged.']},
      )
    }

    bar.done()
    if (expected !== undefined && bytes !== expected) {
      throw new AwsError(
        'DOWNLOAD_INCOMPLETE',
        `Download of s3://${bucket}/${key} is incomplete: got ${bytes} of ${expected} bytes.`,
        {suggestions: ['Run the command again; the destination was left unchanged.']},
      )
    }

    return bytes
  } finally {
    s3.destroy()
  }
}
