/**
 * `icc pull-model`: fetch a training job's model the way Greengrass does for a SageMaker ML resource.
 *
 * DescribeTrainingJob → `ModelArtifacts.S3ModelArtifacts` → S3 GetObject streamed to a temporary file (with a
 * progress bar on stderr), its size checked against Content-Length, then extracted with the model core's
 * hardened extractor into a fresh directory next to the destination. Only when that is complete does it
 * replace the destination (rename), so an interrupted or corrupt download never leaves a half-written model.
 * Before the swap the model is inspected and converted into the cache (so the first `icc serve` start is fast):
 * one that does not load leaves the old model in place; the job's num_classes / image_shape are compared with it.
 */
import {mkdir, mkdtemp, readdir, rename, rm, stat} from 'node:fs/promises'
import {basename, dirname, join, resolve} from 'node:path'

import type {AwsOptions} from '../aws/clients.js'

import {downloadObject} from '../aws/s3.js'
import {modelArtifactOf} from '../aws/sagemaker.js'
import {IccError, ModelError} from '../errors.js'
import {extractArchive} from '../model/archive.js'
import {inspectModel, type InspectResult} from '../model/index.js'

export interface PullModelOptions extends AwsOptions {
  /** Conversion cache for the model check (default: the model core's). */
  cacheDir?: string
  destination: string
  /** Skip the model check (inspect) before the swap: the extracted files replace the old ones unchecked. */
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
  /** Where the job's hyperparameters (num_classes, image_shape) disagree with the model. Absent with noInspect. */
  mismatches?: string[]
  /**
   * What `icc inspect-model` says of the pulled model (architecture, classes, input shape), checked before it
   * replaced the old one. Absent with noInspect.
   */
  model?: InspectResult
  source: string
  /** MXNet symbol file found (e.g. image-classification-symbol.json). */
  symbol?: string
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

/** Move the old content aside, move the new one in, then drop the old one (with the work directory). */
async function swapInto(staged: string, destination: string, old: string): Promise<void> {
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
}

/**
 * Inspect (and convert into the cache) the extracted model before it replaces anything: a model that cannot be
 * read or converted (truncated params, an XGBoost artifact) is refused with exit 4. Paths in the report name the
 * destination, where the model will be.
 */
async function checkStagedModel(
  staged: string,
  destination: string,
  artifact: {uri: string},
  options: PullModelOptions,
): Promise<InspectResult> {
  const refuse = (why: string, cause?: unknown) =>
    new ModelError('MODEL_UNUSABLE', `The model in ${artifact.uri} cannot be used: ${why}`, {
      cause,
      details: {destination, source: artifact.uri},
      suggestions: [
        `${destination} was left unchanged. Check the job with "icc check-job": it must be trained by the built-in image-classification algorithm.`,
      ],
    })
  let model: InspectResult
  try {
    model = await inspectModel(staged, {cacheDir: options.cacheDir})
  } catch (error) {
    throw refuse((error as Error).message.split(staged).join('the archive'), error)
  }

  if (!model.converts)
    throw refuse(model.problems.join('; ').split(staged).join('the archive') || 'it does not convert')
  for (const [key, value] of Object.entries(model)) {
    if (typeof value === 'string' && value.startsWith(staged)) model[key] = destination + value.slice(staged.length)
  }

  return model
}

/** Where the job's hyperparameters (num_classes, image_shape) disagree with the model it produced. */
export function hyperparameterMismatches(
  hyperparameters: Record<string, string>,
  model: Pick<InspectResult, 'classes' | 'inputShape'>,
): string[] {
  const out: string[] = []
  const classes = hyperparameters.num_classes
  if (classes !== undefined && model.classes !== undefined && Number(classes) !== model.classes) {
    out.push(`the job's num_classes is ${classes}, the model has ${model.classes} classes`)
  }

  const shape = hyperparameters.image_shape?.split(',').map((v) => Number(v.trim()))
  const input = model.inputShape
  if (shape && input && shape.join(',') !== input.join(',')) {
    out.push(`the job's image_shape is ${shape.join(',')}, the model's input is ${input.join(',')}`)
  }

  return out
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
    const bytes = await downloadObject(
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
    // Check the new model before the swap: one that does not load leaves the old one in place.
    const model = options.noInspect ? undefined : await checkStagedModel(staged, destination, artifact, options)
    await swapInto(staged, destination, join(work, 'previous'))

    const base = (f: string) => f.split('/').pop() ?? f
    return {
      bytes,
      destination,
      files,
      ...(model ? {mismatches: hyperparameterMismatches(artifact.hyperparameters, model), model} : {}),
      params: files.filter((f) => f.endsWith('.params')),
      source: artifact.uri,
      symbol: files.find((f) => base(f).endsWith('-symbol.json')),
    }
  } finally {
    await rm(work, {force: true, recursive: true})
  }
}
