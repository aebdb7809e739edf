import {Flags} from '@oclif/core'

import {type Architecture, ARCHITECTURE_NAMES} from '../src/greengrass-v2/bundle.js'
import {exportComponent, type ExportComponentResult} from '../src/greengrass-v2/export.js'
import {awsFlags, awsOptions} from './_aws.js'
import {BaseCommand} from './_base.js'
import {connectorInputFlags, connectorInputOptions} from './_connector-inputs.js'
import {cacheDirFlag} from './_model.js'

export default class ExportComponent extends BaseCommand {
  static override description = `Export icc as the Greengrass V2 component that replaces the Image Classification connector.
Same parameter inputs as create-connector (--parameters FILE and/or one flag per parameter, or --definition FILE: one
component per Image Classification connector), same checks and errors. Writes DIR/recipes/<name>-<version>.json (or
.yaml), DIR/artifacts/<name>/<version>/ (icc bundled with its production node_modules for Linux amd64, aarch64 and
arm) and DIR/deployment.json (the CreateDeployment input; it holds the IPC token, so it is mode 0600). The model is
the training job's model.tar.gz on S3 (--model-uri, or DescribeTrainingJob on MLModelSageMakerJobArn).
Exit codes: 0 exported, 2 invalid parameters or flags, 3 AWS error (resolving the model), 5 npm could not build a bundle.`
  static override examples = [
    {
      command:
        '<%= config.bin %> <%= command.id %> --parameters params.json --model-uri s3://my-bucket/MyJob/output/model.tar.gz --output ./component',
      description: 'A component for every platform, the model given.',
    },
    {
      command:
        '<%= config.bin %> <%= command.id %> --parameters params.json --region us-west-2 --target-arn arn:aws:iot:us-west-2:123456789012:thinggroup/cameras --lambda-component MyLambda=1.0.0 --output ./component --format yaml',
      description: "The model from the SageMaker job; a deployment with the migrated Lambda, sharing icc's token.",
    },
  ]
  static override flags = {
    ...awsFlags,
    ...connectorInputFlags,
    architectures: Flags.string({
      default: ARCHITECTURE_NAMES.join(','),
      description: 'Comma-separated Greengrass architectures to build manifests and bundles for.',
    }),
    'artifact-bucket': Flags.string({
      description: 'S3 bucket (and prefix) the artifact URIs name (publish-component rewrites them anyway).',
    }),
    'bundle-source': Flags.string({
      default: 'auto',
      description:
        "Where the bundles' node_modules come from: the npm registry, the local node_modules (this machine's CPU only), or auto (local when it fits).",
      options: ['auto', 'local', 'registry'],
    }),
    'cache-dir': cacheDirFlag,
    'component-name': Flags.string({description: 'ComponentName (default icc.<LocalInferenceServiceName>).'}),
    'component-version': Flags.string({default: '1.0.0', description: 'ComponentVersion (semantic version).'}),
    format: Flags.string({default: 'json', description: 'Recipe format.', options: ['json', 'yaml']}),
    'ipc-port': Flags.integer({
      default: 8000,
      description: "The ML SDK's IPC port (IpcPort; GG_DAEMON_PORT of the Lambda).",
      max: 65_535,
      min: 1,
    }),
    'lambda-component': Flags.string({
      description:
        'NAME=VERSION of a migrated V1 Lambda component to deploy with icc (its environment gets the IPC token and port).',
      multiple: true,
    }),
    'log-level': Flags.string({default: 'info', options: ['debug', 'error', 'info', 'trace', 'warn']}),
    'max-batch': Flags.integer({
      default: 2,
      description: 'MaxBatch: most images per ONNX Runtime run.',
      max: 8,
      min: 1,
    }),
    'model-uri': Flags.string({description: "The model's S3 URI (default: the training job's model artifact)."}),
    output: Flags.string({description: 'A new or empty folder to write the component into.', required: true}),
    'target-arn': Flags.string({description: 'The thing or thing group the deployment document targets.'}),
  }

  async run(): Promise<ExportComponentResult> {
    const {flags} = await this.parse(ExportComponent)
    const lambdas: Record<string, string> = {}
    for (const spec of flags['lambda-component'] ?? []) {
      const [name, version] = spec.split('=')
      if (!name || !version) this.error(`--lambda-component "${spec}" must be NAME=VERSION.`, {exit: 2})
      lambdas[name] = version
    }

    const result = await exportComponent({
      ...awsOptions(flags),
      ...connectorInputOptions(flags),
      architectures: flags.architectures.split(',').map((a) => a.trim()) as Architecture[],
      artifactBucket: flags['artifact-bucket'],
      bundleSource: flags['bundle-source'] as 'auto' | 'local' | 'registry',
      cacheDir: flags['cache-dir'],
      componentName: flags['component-name'],
      componentVersion: flags['component-version'],
      format: flags.format as 'json' | 'yaml',
      lambdas,
      modelUri: flags['model-uri'],
      onProgress: (line) => process.stderr.write(`icc export-component: ${line}\n`),
      output: flags.output,
      settings: {ipcPort: flags['ipc-port'], logLevel: flags['log-level'], maxBatch: flags['max-batch']},
      targetArn: flags['target-arn'],
    })
    if (!this.jsonEnabled()) {
      for (const c of result.components) {
        this.log(`${c.componentName} ${c.componentVersion} (service ${c.serviceName}): ${c.recipe}`)
        this.log(`  model: ${c.modelUri}`)
        for (const a of c.artifacts) this.log(`  artifact: ${a}`)
      }

      this.log(`Deployment document: ${result.deployment} (holds the IPC token: keep it private)`)
      this.log(
        `Next: icc publish-component ${result.output} --artifact-bucket BUCKET, then icc deploy-component ${result.output} --target-arn ARN`,
      )
    }

    return result
  }
}
