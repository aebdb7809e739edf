/**
 * The Greengrass V2 recipe of icc's component (RecipeFormatVersion 2020-01-25): the connector's parameters as the
 * component's default configuration (strings, as the V2 documentation advises) plus icc's own settings, one
 * manifest per connector platform (Linux amd64, aarch64, arm), each with its bundle and the model as artifacts, and
 * a lifecycle that installs icc from the bundle (after checking the device's Node.js) and runs `icc serve`.
 *
 * Configuration values reach the Run script only through environment variables (the lifecycle's Setenv, which the
 * nucleus interpolates), never pasted into the shell text, so a value cannot inject a command. The nucleus sets
 * AWS_CONTAINER_AUTHORIZATION_TOKEN to each component's own SVCUID (ShellRunner.java); Setenv replaces it with the
 * IpcAuthToken the deployment shares with the migrated Lambda. Also: the recipe's JSON Schema check
 * (schemas/greengrass-v2/) and its JSON or YAML text.
 */
import {Ajv} from 'ajv'
import {readFileSync} from 'node:fs'
import {posix} from 'node:path'
import {stringify as toYaml} from 'yaml'

import {MIN_NODE} from '../connector/catalog.js'
import {orderParameters} from '../connector/definition.js'
import {type ConnectorParameters, SCHEMA_DIR} from '../connector/parameters.js'
import {UsageError, ValidationError} from '../errors.js'
import {type Architecture, ARCHITECTURES} from './bundle.js'

export const RECIPE_SCHEMA_FILE = 'greengrass-v2/recipe-2020-01-25.schema.json'
/** Where artifact URIs point until `icc publish-component --artifact-bucket` rewrites them. */
export const PLACEHOLDER_BUCKET = 'replace-with-your-artifact-bucket'

export interface RecipeArtifact {
  Algorithm?: 'SHA-256'
  Digest?: string
  Permission?: {Execute?: 'ALL' | 'NONE' | 'OWNER'; Read?: 'ALL' | 'NONE' | 'OWNER'}
  Unarchive?: 'NONE' | 'ZIP'
  Uri: string
}

export interface Recipe {
  ComponentConfiguration: {DefaultConfiguration: Record<string, string>}
  ComponentDescription: string
  ComponentName: string
  ComponentPublisher: string
  ComponentVersion: string
  Manifests: {
    Artifacts: RecipeArtifact[]
    Lifecycle: Record<string, unknown>
    Name: string
    Platform: {architecture: string; os: string}
  }[]
  RecipeFormatVersion: '2020-01-25'
}

/** icc's own settings in the component configuration (beside the connector's parameters). */
export interface IccSettings {
  ipcPort: number
  logLevel: string
  maxBatch: number
}

export const DEFAULT_SETTINGS: IccSettings = {ipcPort: 8000, logLevel: 'info', maxBatch: 2}

export interface RecipeInput {
  /** One bundle per architecture: its file name in the artifact store and its digest. */
  bundles: {architecture: Architecture; digest: string; fileName: string}[]
  componentName: string
  componentVersion: string
  /** Where the bundles will be (s3://bucket/prefix); rewritten by publish-component. */
  artifactPrefix: string
  modelDigest?: string
  modelUri: string
  parameters: ConnectorParameters
  settings: IccSettings
}

const NAME = /^[a-zA-Z0-9_.-]{1,128}$/
const SEMVER = /^(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/

/** The default component name for a service: `icc.<LocalInferenceServiceName>`. */
export function defaultComponentName(serviceName: string): string {
  return `icc.${serviceName}`
}

/** Check a component name and version; a name in AWS's own `aws.greengrass` namespace is refused. */
export function checkComponentId(name: string, version: string): void {
  if (!NAME.test(name)) {
    throw new UsageError('BAD_COMPONENT_NAME', `The component name "${name}" is not valid.`, {
      suggestions: ['Use 1 to 128 letters, digits, ".", "-" and "_" (e.g. com.example.ImageClassification).'],
    })
  }

  if (/^aws\.greengrass/i.test(name)) {
    throw new UsageError(
      'RESERVED_COMPONENT_NAME',
      `The component name "${name}" is in AWS's own aws.greengrass namespace: it would override AWS's components.`,
      {suggestions: ['Pick a name of your own, e.g. com.example.ImageClassification (or leave --component-name out).']},
    )
  }

  if (!SEMVER.test(version)) {
    throw new UsageError('BAD_COMPONENT_VERSION', `The component version "${version}" is not major.minor.patch.`, {
      suggestions: ['Use a semantic version such as 1.0.0.'],
    })
  }
}

/**
 * The Install step's check that the unpacked bundle runs here: the ONNX Runtime `icc serve` will use, resolved as
 * serve resolves it (onnxruntime-node where its binary loads, else the WebAssembly runtime: armv7 has no
 * onnxruntime-node binary), and sharp, through icc's own loaders so that a failure prints their error and fix.
 */
export const BUNDLE_LOAD_CHECK = [
  `(cd "$ICC_HOME.new" && node --input-type=module -e "`,
  "const {resolveRuntime} = await import('./dist/src/model/session.js');",
  " const {loadSharp} = await import('./dist/src/model/sharp.js');",
  " try { const {backend} = await resolveRuntime('auto'); await loadSharp();",
  " console.log('icc: the bundle loads here: ONNX Runtime ' + backend + ', sharp') }",
  " catch (e) { console.error('icc: ' + e.message + ' ' + (e.suggestions ?? []).join(' ')); process.exit(1) }",
  `") || { echo "icc: the bundle's ONNX Runtime or sharp does not load on this device ($(uname -m)): see above." >&2; exit 1; }`,
].join('')

/** The Install step: Node.js present and recent enough, the bundle unpacked into the work folder and loadable. */
function installScript(bundleFileName: string): string {
  const [major, minor] = MIN_NODE
  const need = `${major}.${minor}`
  const check =
    `const [a, b] = process.versions.node.split('.').map(Number); if (a < ${major} || (a === ${major} && b < ${minor})) ` +
    `{ console.error('icc: Node.js ' + process.version + ' is too old: icc needs ${need} or later. Upgrade Node.js on this device, then redeploy.'); process.exit(1) }`
  return [
    'set -e',
    `if ! command -v node >/dev/null 2>&1; then echo "icc: Node.js is not installed on this device (not on PATH: $PATH). icc needs Node.js ${need} or later: install it (e.g. from https://nodejs.org or your distribution), then redeploy." >&2; exit 1; fi`,
    `node -e "${check}"`,
    'rm -rf "$ICC_HOME.new"',
    'mkdir -p "$ICC_HOME.new"',
    `tar -xzf "{artifacts:path}/${bundleFileName}" -C "$ICC_HOME.new"`,
    BUNDLE_LOAD_CHECK,
    'rm -rf "$ICC_HOME"',
    'mv "$ICC_HOME.new" "$ICC_HOME"',
  ].join('\n')
}

/** The Run step: `icc serve` with every setting from the environment (Setenv). */
function runScript(withGpu: boolean): string {
  return [
    'if [ -z "$AWS_CONTAINER_AUTHORIZATION_TOKEN" ]; then echo "icc: IpcAuthToken is empty in this component\'s configuration: set it in the deployment (icc export-component writes one into deployment.json) and in the Lambda\'s AWS_CONTAINER_AUTHORIZATION_TOKEN." >&2; exit 1; fi',
    [
      'exec node "$ICC_HOME/bin/run.js" serve --model "$ICC_MODEL"',
      '--service-name "$ICC_SERVICE_NAME" --timeout-seconds "$ICC_TIMEOUT_SECONDS" --memory-limit-kb "$ICC_MEMORY_LIMIT_KB"',
      ...(withGpu ? ['--gpu-acceleration "$ICC_GPU_ACCELERATION"'] : []),
      '--ipc-port "$ICC_IPC_PORT" --log-level "$ICC_LOG_LEVEL" --max-batch "$ICC_MAX_BATCH"',
      '--socket "$ICC_WORK/icc.sock" --cache-dir "$ICC_WORK/cache"',
    ].join(' '),
  ].join('\n')
}

/** The model artifact's file name in the artifact folder (the last segment of its URI, as the nucleus names it). */
export function modelFileName(uri: string): string {
  return posix.basename(uri)
}

function lifecycle(input: RecipeInput, bundleFileName: string): Record<string, unknown> {
  const withGpu = input.parameters.GPUAcceleration !== undefined
  const c = (key: string) => `{configuration:/${key}}`
  return {
    Setenv: {
      AWS_CONTAINER_AUTHORIZATION_TOKEN: c('IpcAuthToken'),
      ICC_HOME: '{work:path}/icc',
      ICC_WORK: '{work:path}',
      ICC_MODEL: `{artifacts:path}/${modelFileName(input.modelUri)}`,
      ICC_SERVICE_NAME: c('LocalInferenceServiceName'),
      ICC_TIMEOUT_SECONDS: c('LocalInferenceServiceTimeoutSeconds'),
      ICC_MEMORY_LIMIT_KB: c('LocalInferenceServiceMemoryLimitKB'),
      ...(withGpu ? {ICC_GPU_ACCELERATION: c('GPUAcceleration')} : {}),
      ICC_IPC_PORT: c('IpcPort'),
      ICC_LOG_LEVEL: c('LogLevel'),
      ICC_MAX_BATCH: c('MaxBatch'),
    },
    Install: {RequiresPrivilege: false, Script: installScript(bundleFileName), Timeout: 600},
    Run: {RequiresPrivilege: false, Script: runScript(withGpu)},
  }
}

/** Build the recipe object. */
export function buildRecipe(input: RecipeInput): Recipe {
  checkComponentId(input.componentName, input.componentVersion)
  const service = input.parameters.LocalInferenceServiceName ?? 'imageClassification'
  return {
    RecipeFormatVersion: '2020-01-25',
    ComponentName: input.componentName,
    ComponentVersion: input.componentVersion,
    ComponentDescription: `icc: the Image Classification connector's local inference service "${service}" (ML SDK invoke_inference_service on loopback), without Greengrass V1.`,
    ComponentPublisher: 'icc',
    ComponentConfiguration: {
      DefaultConfiguration: {
        ...orderParameters(input.parameters),
        IpcAuthToken: '',
        IpcPort: String(input.settings.ipcPort),
        LogLevel: input.settings.logLevel,
        MaxBatch: String(input.settings.maxBatch),
      },
    },
    Manifests: input.bundles.map((bundle) => ({
      Name: `Linux ${bundle.architecture} (linux/${ARCHITECTURES[bundle.architecture]})`,
      Platform: {os: 'linux', architecture: bundle.architecture},
      Lifecycle: lifecycle(input, bundle.fileName),
      Artifacts: [
        {
          Uri: `${input.artifactPrefix}/${bundle.fileName}`,
          Digest: bundle.digest,
          Algorithm: 'SHA-256',
          Unarchive: 'NONE',
          Permission: {Read: 'OWNER', Execute: 'NONE'},
        },
        {
          Uri: input.modelUri,
          ...(input.modelDigest ? {Digest: input.modelDigest, Algorithm: 'SHA-256' as const} : {}),
          Unarchive: 'NONE',
          Permission: {Read: 'OWNER', Execute: 'NONE'},
        },
      ],
    })),
  }
}

let validator: ReturnType<Ajv['compile']> | undefined

/** Check a recipe against schemas/greengrass-v2/recipe-2020-01-25.schema.json; throws a ValidationError. */
export function validateRecipe(recipe: unknown, source = 'The recipe'): void {
  validator ??= new Ajv({allErrors: true, strict: false}).compile(
    JSON.parse(readFileSync(posix.join(SCHEMA_DIR, RECIPE_SCHEMA_FILE), 'utf8')),
  )
  if (validator(recipe)) return
  throw new ValidationError(
    `${source} does not follow RecipeFormatVersion 2020-01-25.`,
    (validator.errors ?? []).map((e) => ({message: e.message ?? 'is invalid', path: e.instancePath || '/'})),
  )
}

export type RecipeFormat = 'json' | 'yaml'

/** The recipe's text, as the file the nucleus and CreateComponentVersion read. */
export function recipeText(recipe: Recipe, format: RecipeFormat): string {
  return format === 'yaml' ? toYaml(recipe, {lineWidth: 0}) : JSON.stringify(recipe, null, 2) + '\n'
}
