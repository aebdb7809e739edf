/**
 * `icc export-component`: the connector's parameters -> a folder Greengrass V2 takes as it is:
 *
 *   DIR/recipes/<ComponentName>-<ComponentVersion>.json|yaml   one recipe per Image Classification connector
 *   DIR/artifacts/<ComponentName>/<ComponentVersion>/icc-*.tar.gz   the bundle per architecture
 *   DIR/deployment.json   the CreateDeployment input (mode 0600: it holds the IPC token)
 *
 * (the layout `greengrass-cli deployment create --recipeDir DIR/recipes --artifactDir DIR/artifacts` reads). The
 * model stays where SageMaker wrote it: the recipe points at its S3 URI (`--model-uri`, or the training job's
 * model artifact from DescribeTrainingJob).
 */
import {copyFile, link, mkdir, readdir, writeFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'

import type {AwsOptions} from '../aws/clients.js'

import {modelArtifactOf} from '../aws/sagemaker.js'
import {UsageError} from '../errors.js'
import {generateAuthToken} from '../serve/ipc.js'
import {type Architecture, ARCHITECTURE_NAMES, buildBundle, type Bundle, type BundleSource} from './bundle.js'
import {buildDeployment, isTargetArn} from './deployment.js'
import {type ConnectorInput, type ConnectorInputOptions, readConnectorInputs} from './inputs.js'
import {
  buildRecipe,
  checkComponentId,
  DEFAULT_SETTINGS,
  defaultComponentName,
  type IccSettings,
  PLACEHOLDER_BUCKET,
  type RecipeFormat,
  recipeText,
  validateRecipe,
} from './recipe.js'

export interface ExportComponentOptions extends AwsOptions, ConnectorInputOptions {
  architectures?: Architecture[]
  /** Bucket (and optional prefix) the artifact URIs name; default a placeholder publish-component rewrites. */
  artifactBucket?: string
  bundleSource?: BundleSource
  cacheDir?: string
  componentName?: string
  componentVersion?: string
  format?: RecipeFormat
  /** Migrated V1 Lambda components to put in the same deployment (name -> version). */
  lambdas?: Record<string, string>
  modelUri?: string
  onProgress?: (line: string) => void
  output: string
  settings?: Partial<IccSettings>
  targetArn?: string
}

export interface ExportedComponent {
  artifacts: string[]
  componentName: string
  componentVersion: string
  modelUri: string
  recipe: string
  serviceName: string
}

export interface ExportComponentResult {
  components: ExportedComponent[]
  deployment: string
  output: string
}

const S3_URI = /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/.+$/

function usageChecks(options: ExportComponentOptions): void {
  if (options.modelUri !== undefined && !S3_URI.test(options.modelUri)) {
    throw new UsageError('BAD_MODEL_URI', `--model-uri "${options.modelUri}" is not an s3://bucket/key URI.`, {
      suggestions: ["Pass the training job's model artifact, e.g. s3://my-bucket/output/MyJob/output/model.tar.gz."],
    })
  }

  if (options.targetArn !== undefined && !isTargetArn(options.targetArn)) {
    throw new UsageError('BAD_TARGET_ARN', `--target-arn "${options.targetArn}" is not a thing or thing group ARN.`, {
      suggestions: ['Use arn:aws:iot:<region>:<account>:thing/<name> or ...:thinggroup/<name>.'],
    })
  }

  if (options.componentName !== undefined) checkComponentId(options.componentName, options.componentVersion ?? '1.0.0')
}

async function ensureEmpty(dir: string): Promise<void> {
  const entries = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return []
    throw new UsageError('OUTPUT_NOT_USABLE', `Cannot use ${dir} as the output folder: ${error.message}`)
  })
  if (entries.length > 0) {
    throw new UsageError('OUTPUT_NOT_EMPTY', `The output folder ${dir} is not empty.`, {
      suggestions: ['Pass a new or empty folder to --output (nothing is overwritten).'],
    })
  }
}

async function placeArtifact(from: string, to: string): Promise<void> {
  await link(from, to).catch(() => copyFile(from, to))
}

async function modelUriFor(
  options: ExportComponentOptions,
  jobArn: string | undefined,
  count: number,
): Promise<string> {
  if (options.modelUri) {
    if (count > 1) {
      throw new UsageError(
        'MODEL_URI_AMBIGUOUS',
        '--model-uri names one model, but the definition has several connectors.',
        {
          suggestions: ["Leave --model-uri out: each connector's model comes from its MLModelSageMakerJobArn."],
        },
      )
    }

    return options.modelUri
  }

  if (!jobArn) {
    throw new UsageError('NO_MODEL', 'The component needs the model: MLModelSageMakerJobArn is not set.', {
      suggestions: ['Pass --model-uri s3://bucket/key/model.tar.gz, or set --sagemaker-job-arn.'],
    })
  }

  return (await modelArtifactOf(options, jobArn)).uri
}

/** Write one component: its recipe (validated) and its artifacts (the bundles, hard-linked or copied). */
async function writeComponent(
  options: ExportComponentOptions,
  c: {
    bucket: string
    bundles: Bundle[]
    input: ConnectorInput
    modelUri: string
    output: string
    settings: IccSettings
    version: string
  },
): Promise<ExportedComponent> {
  const {bundles, version} = c
  const serviceName = c.input.parameters.LocalInferenceServiceName!
  const componentName = options.componentName ?? defaultComponentName(serviceName)
  const recipe = buildRecipe({
    artifactPrefix: `s3://${c.bucket}/${componentName}/${version}`,
    bundles,
    componentName,
    componentVersion: version,
    modelUri: c.modelUri,
    parameters: c.input.parameters,
    settings: c.settings,
  })
  validateRecipe(recipe)
  const recipeDir = join(c.output, 'recipes')
  const artifactDir = join(c.output, 'artifacts', componentName, version)
  await mkdir(recipeDir, {recursive: true})
  await mkdir(artifactDir, {recursive: true})
  const format = options.format ?? 'json'
  const recipePath = join(recipeDir, `${componentName}-${version}.${format}`)
  await writeFile(recipePath, recipeText(recipe, format))
  for (const b of bundles) await placeArtifact(b.file, join(artifactDir, b.fileName))
  return {
    artifacts: bundles.map((b) => join(artifactDir, b.fileName)),
    componentName,
    componentVersion: version,
    modelUri: c.modelUri,
    recipe: recipePath,
    serviceName,
  }
}

/** Export the component folder(s) and the deployment document. */
export async function exportComponent(options: ExportComponentOptions): Promise<ExportComponentResult> {
  usageChecks(options)
  const inputs = await readConnectorInputs(options)
  if (options.componentName && inputs.length > 1) {
    throw new UsageError(
      'COMPONENT_NAME_AMBIGUOUS',
      '--component-name names one component, but the definition has several connectors.',
      {
        suggestions: ['Leave --component-name out: each component is named icc.<LocalInferenceServiceName>.'],
      },
    )
  }

  const output = resolve(options.output)
  await ensureEmpty(output)
  const version = options.componentVersion ?? '1.0.0'
  const settings = {...DEFAULT_SETTINGS, ...options.settings}
  const modelUris: string[] = []
  for (const input of inputs)
    modelUris.push(await modelUriFor(options, input.parameters.MLModelSageMakerJobArn, inputs.length))
  const bundles: Bundle[] = []
  for (const architecture of options.architectures ?? ARCHITECTURE_NAMES) {
    bundles.push(
      await buildBundle({
        architecture,
        cacheDir: options.cacheDir,
        onProgress: options.onProgress,
        source: options.bundleSource,
      }),
    )
  }

  const bucket = (options.artifactBucket ?? PLACEHOLDER_BUCKET).replace(/^s3:\/\//, '').replace(/\/+$/, '')
  const components: ExportedComponent[] = []
  for (const [i, input] of inputs.entries()) {
    const settingsOf = {...settings, ipcPort: settings.ipcPort + i}
    components.push(
      await writeComponent(options, {
        bucket,
        bundles,
        input,
        modelUri: modelUris[i],
        output,
        settings: settingsOf,
        version,
      }),
    )
  }

  const deployment = buildDeployment({
    components: components.map((c, i) => ({
      componentName: c.componentName,
      componentVersion: c.componentVersion,
      ipcPort: settings.ipcPort + i,
      memoryLimitKb: Number(inputs[i].parameters.LocalInferenceServiceMemoryLimitKB),
    })),
    lambdas: options.lambdas,
    region: options.region,
    targetArn: options.targetArn,
    token: generateAuthToken(),
  })
  const deploymentPath = join(output, 'deployment.json')
  await writeFile(deploymentPath, JSON.stringify(deployment, null, 2) + '\n', {mode: 0o600})
  return {components, deployment: deploymentPath, output}
}
