/**
 * `icc publish-component DIR`: the exported folder -> a Greengrass V2 component version in the account. The
 * artifacts go to `--artifact-bucket` (S3, multipart past 8 MiB, skipped when the object already carries the same
 * SHA-256), the recipe's artifact URIs are rewritten to where they went, and CreateComponentVersion gets the recipe
 * inline. The bucket is checked before anything is uploaded, and the component version is created only after every
 * artifact is in place, so an unreachable or denied bucket leaves nothing half-published; an existing version is
 * never replaced (Greengrass refuses it, and icc says so).
 */
import {CreateComponentVersionCommand, GreengrassV2Client} from '@aws-sdk/client-greengrassv2'
import {HeadBucketCommand, HeadObjectCommand, type S3Client} from '@aws-sdk/client-s3'
import {Upload} from '@aws-sdk/lib-storage'
import {createReadStream} from 'node:fs'
import {readdir, readFile, stat, writeFile} from 'node:fs/promises'
import {basename, join} from 'node:path'
import {parse as parseYaml} from 'yaml'

import {type AwsOptions, clientConfig, mapAwsError, s3Client} from '../aws/clients.js'
import {AwsError, UsageError} from '../errors.js'
import {fileDigest} from './bundle.js'
import {type Recipe, recipeText, validateRecipe} from './recipe.js'

export interface PlannedRequest {
  input: Record<string, unknown>
  operation: string
}

export interface PublishOptions extends AwsOptions {
  /** bucket, or bucket/prefix (an s3:// prefix is accepted). */
  artifactBucket: string
  dir: string
  dryRun?: boolean
  onProgress?: (line: string) => void
}

export interface PublishedComponent {
  arn?: string
  componentName: string
  componentVersion: string
  skipped: string[]
  uploaded: string[]
}

export type PublishResult = {components: PublishedComponent[]} | {requests: PlannedRequest[]}

/** The metadata key that records an artifact's SHA-256 (base64) on its S3 object. */
export const DIGEST_METADATA = 'icc-sha256'
const PART_SIZE = 8 * 1024 * 1024

interface LocalRecipe {
  artifacts: {digest: string; file: string; key: string; size: number}[]
  format: 'json' | 'yaml'
  path: string
  recipe: Recipe
}

/** Read and check every recipe of DIR, and find each artifact's file (its digest must still match). */
export async function readExport(dir: string, bucketPrefix: string): Promise<LocalRecipe[]> {
  const recipesDir = join(dir, 'recipes')
  const files = await readdir(recipesDir).catch(() => {
    throw new UsageError('NOT_AN_EXPORT', `${dir} has no recipes/ folder: it is not an icc export-component folder.`, {
      suggestions: ['Run icc export-component --output DIR first.'],
    })
  })
  const [bucket, ...prefix] = bucketPrefix.split('/')
  const out: LocalRecipe[] = []
  for (const name of files.filter((f) => /\.(json|ya?ml)$/.test(f)).sort()) {
    const path = join(recipesDir, name)
    const recipe = parseYaml(await readFile(path, 'utf8')) as Recipe
    validateRecipe(recipe, path)
    const artifacts: LocalRecipe['artifacts'] = []
    for (const manifest of recipe.Manifests) {
      for (const artifact of manifest.Artifacts) {
        const file = join(dir, 'artifacts', recipe.ComponentName, recipe.ComponentVersion, basename(artifact.Uri))
        const info = await stat(file).catch(() => undefined)
        if (!info) continue // not ours (the model stays where SageMaker wrote it)
        const digest = await fileDigest(file)
        if (artifact.Digest && artifact.Digest !== digest) {
          throw new UsageError('ARTIFACT_CHANGED', `${file} no longer matches the Digest in ${path}.`, {
            suggestions: ['Export the component again instead of editing its artifacts.'],
          })
        }

        const key = [...prefix, recipe.ComponentName, recipe.ComponentVersion, basename(file)].filter(Boolean).join('/')
        artifact.Uri = `s3://${bucket}/${key}`
        artifact.Digest = digest
        artifact.Algorithm = 'SHA-256'
        artifacts.push({digest, file, key, size: info.size})
      }
    }

    out.push({artifacts, format: /\.json$/.test(name) ? 'json' : 'yaml', path, recipe})
  }

  if (out.length === 0) throw new UsageError('NOT_AN_EXPORT', `${recipesDir} holds no recipe.`)
  return out
}

async function sameObject(s3: S3Client, bucket: string, key: string, digest: string): Promise<boolean> {
  try {
    const head = await s3.send(new HeadObjectCommand({Bucket: bucket, Key: key}))
    return head.Metadata?.[DIGEST_METADATA] === digest
  } catch (error) {
    const e = error as {$metadata?: {httpStatusCode?: number}; name?: string}
    if (e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404) return false
    throw mapAwsError(error, 's3:HeadObject')
  }
}

function plan(recipes: LocalRecipe[], bucket: string): PlannedRequest[] {
  const requests: PlannedRequest[] = [{input: {Bucket: bucket}, operation: 'HeadBucket'}]
  for (const r of recipes) {
    for (const a of r.artifacts) {
      requests.push(
        {input: {Bucket: bucket, Key: a.key}, operation: 'HeadObject'},
        {
          input: {Bucket: bucket, ContentLength: a.size, Key: a.key, Metadata: {[DIGEST_METADATA]: a.digest}},
          operation: a.size > PART_SIZE ? 'CreateMultipartUpload+UploadPart+CompleteMultipartUpload' : 'PutObject',
        },
      )
    }

    requests.push({input: {inlineRecipe: r.recipe}, operation: 'CreateComponentVersion'})
  }

  return requests
}

async function createVersion(client: GreengrassV2Client, recipe: Recipe): Promise<string | undefined> {
  try {
    const created = await client.send(
      new CreateComponentVersionCommand({inlineRecipe: Buffer.from(recipeText(recipe, 'json'))}),
    )
    return created.arn
  } catch (error) {
    if ((error as {name?: string}).name === 'ConflictException') {
      throw new AwsError(
        'COMPONENT_VERSION_EXISTS',
        `${recipe.ComponentName} ${recipe.ComponentVersion} already exists in this account and region; Greengrass never replaces a component version.`,
        {suggestions: ['Export again with a new --component-version (e.g. 1.0.1), then publish that.']},
      )
    }

    throw mapAwsError(error, 'greengrass:CreateComponentVersion')
  }
}

/** Upload the artifacts, rewrite the recipes, create the component versions. */
export async function publishComponent(options: PublishOptions): Promise<PublishResult> {
  const bucketPrefix = options.artifactBucket.replace(/^s3:\/\//, '').replace(/\/+$/, '')
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/.test(bucketPrefix)) {
    throw new UsageError('BAD_BUCKET', `--artifact-bucket "${options.artifactBucket}" is not an S3 bucket name.`)
  }

  const bucket = bucketPrefix.split('/')[0]
  const recipes = await readExport(options.dir, bucketPrefix)
  if (options.dryRun) return {requests: plan(recipes, bucket)}
  const s3 = s3Client(options)
  const gg = new GreengrassV2Client(clientConfig(options))
  try {
    await s3.send(new HeadBucketCommand({Bucket: bucket})).catch((error: unknown) => {
      throw mapAwsError(error, `s3:ListBucket on ${bucket}`)
    })
    const components: PublishedComponent[] = []
    for (const r of recipes) {
      const done: PublishedComponent = {
        componentName: r.recipe.ComponentName,
        componentVersion: r.recipe.ComponentVersion,
        skipped: [],
        uploaded: [],
      }
      for (const a of r.artifacts) {
        const uri = `s3://${bucket}/${a.key}`
        if (await sameObject(s3, bucket, a.key, a.digest)) {
          done.skipped.push(uri)
          continue
        }

        options.onProgress?.(`uploading ${basename(a.file)} (${a.size} bytes) to ${uri}`)
        const upload = new Upload({
          client: s3,
          params: {Body: createReadStream(a.file), Bucket: bucket, Key: a.key, Metadata: {[DIGEST_METADATA]: a.digest}},
          partSize: PART_SIZE,
        })
        await upload.done().catch((error: unknown) => {
          throw mapAwsError(error, 's3:PutObject')
        })
        done.uploaded.push(uri)
      }

      done.arn = await createVersion(gg, r.recipe)
      await writeFile(r.path, recipeText(r.recipe, r.format))
      components.push(done)
    }

    return {components}
  } finally {
    s3.destroy()
    gg.destroy()
  }
}
