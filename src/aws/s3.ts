/**
 * `icc pull-model`: fetch a training job's model the way Greengrass does for a SageMaker ML resource.
 *
 * DescribeTrainingJob → `ModelArtifacts.S3ModelArtifacts` → S3 GetObject streamed to a temporary file (with a
 * progress bar on stderr), its size checked against Content-Length, then extracted with the model core's
 * hardened extractor into a fresh directory next to the destination. Only when that is complete does it
 * replace the destination (rename), so an interrupted or corrupt download never leaves a half-written model.
 * Last, the model is inspected (and converted into the cache, so the first `icc serve` start is fast).
 */
import {GetObjectCommand, S3Client} from '@aws-sdk/client-s3'
import {createWriteStream} from 'node:fs'
import {mkdir, mkdtemp, readdir, rename, rm, stat} from 'node:fs/promises'
import {basename, dirname, join, resolve} from 'node:path'
import {Readable, Transform} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import {AwsError, IccError, ModelError} from '../errors.js'
import {extractArchive} from '../model/archive.js'
import {inspectModel, type InspectResult} from '../model/index.js'
import {type AwsOptions, clientConfig, mapAwsError} from './clients.js'
import {createProgressBar} from './progress.js'
import {modelArtifactOf} from './sagemaker.js'

export interface PullModelOptions extends AwsOptions {
  /** Conversion cache for the model check (default: the model core's). */
  cacheDir?: string
  destination: string
  /** Skip the model check (inspect) after extraction. */
  noInspect?: boolean
  /** Show a progress bar on stderr. */
  progress?: boolean
  sagemakerJobArn: string
}

export interface PullModelResult {
  bytes: number
  destination: string
  files: string[]
  /** MXNet params files found (e.g. image-classification-0001.params). */
  params: string[]
  /**
   * What `icc inspect-model` says of the pulled model (architecture, classes, input shape, whether it converts),
   * or why it could not be read. Absent with noInspect.
   */
  model?: InspectResult | {error: string}
  source: string
  /** MXNet symbol file found (e.g. image-classification-symbol.json). */
  symbol?: string
}

/** An S3 client for the options; path-style addressing when an endpoint is given (S3-compatible servers). */
export function s3Client(aws: AwsOptions): S3Client {
  return new S3Client({...clientConfig(aws), ...(aws.endpointUrl ? {forcePathStyle: true} : {})})
}

async function download(
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

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(dir, {withFileTypes: true})) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name
    if (entry.isDirectory()) out.push(...(await listFiles(join(dir, entry.name), rel)))
    else out.push(rel)
  }

  return out.sort()
}

/** Download and extract the job's model into `destination`, replacing its content only on success. */
export async function pullModel(options: PullModelOptions): Promise<PullModelResult> {
  const destination = resolve(options.destination)
  const artifact = await modelArtifactOf(options, options.sagemakerJobArn)
  const parent = dirname(destination)
  await mkdir(parent, {recursive: true})
  const work = await mkdtemp(join(parent, `.${basename(destination)}.icc-pull-`))
  try {
    const archive = join(work, 'model.tar.gz')
    const bytes = await download(
      {...options, region: artifact.region},
      artifact.bucket,
      artifact.key,
      archive,
      options.progress ?? false,
    )
    const staged = join(work, 'model')
    try {
      await extractArchive(archive, staged)
    } catch (error) {
      if (error instanceof IccError) {
        const why = error.message.split(archive).join('the download')
        throw new ModelError(error.code, `The model archive ${artifact.uri} cannot be used: ${why}`, {
          cause: error,
          details: error.details,
          suggestions: error.suggestions,
        })
      }

      throw new ModelError('BAD_ARCHIVE', `${artifact.uri} is not a valid model archive: ${(error as Error).message}`, {
        suggestions: [
          'The model artifact of an image-classification job is a model.tar.gz; check the job with "icc check-job".',
        ],
      })
    }

    const files = await listFiles(staged)
    if (files.length === 0) throw new ModelError('EMPTY_ARCHIVE', `${artifact.uri} holds no files.`)

    // Swap: move the old content aside, move the new one in, then drop the old one.
    const old = join(work, 'previous')
    const exists = await stat(destination).then(
      () => true,
      () => false,
    )
    if (exists) await rename(destination, old)
    try {
      await rename(staged, destination)
    } catch (error) {
      if (exists) await rename(old, destination)
      throw error
    }

    const base = (f: string) => f.split('/').pop() ?? f
    let model: PullModelResult['model']
    if (!options.noInspect) {
      // The model is in place whatever this says: a report, not a gate (the old model is gone either way).
      model = await inspectModel(destination, {cacheDir: options.cacheDir}).catch((error: Error) => ({
        error: error.message,
      }))
    }

    return {
      bytes,
      destination,
      files,
      model,
      params: files.filter((f) => f.endsWith('.params')),
      source: artifact.uri,
      symbol: files.find((f) => base(f).endsWith('-symbol.json')),
    }
  } finally {
    await rm(work, {force: true, recursive: true})
  }
}
