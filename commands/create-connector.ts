import {Flags} from '@oclif/core'

import {createConnector, type CreateConnectorPlan, type CreateConnectorResult} from '../src/connector/create.js'
import {awsFlags, awsOptions} from './_aws.js'
import {BaseCommand} from './_base.js'
import {connectorInputOptions} from './_connector-inputs.js'
import {platformFlag} from './_platform.js'

const JOB = 'arn:aws:sagemaker:us-west-2:123456789012:training-job/MyImageClassifier'

export default class CreateConnector extends BaseCommand {
  static override description = `Create a Greengrass connector definition with an Image Classification connector.
Parameters come from --parameters FILE and/or one flag per parameter (flags win), and are validated before anything
is sent. Calls CreateConnectorDefinition (or, with --definition-id, CreateConnectorDefinitionVersion, keeping the
other connectors of that definition's latest version). Prints the definition id, ARN and latest version ARN: what a
group version needs. --with-ml-resource also creates the SageMaker ML resource the connector reads the model from;
--group-id G --deploy puts both in a new group version (keeping the group's other resources) and deploys it.
Exit codes: 0 created (and deployed), 2 invalid parameters or flags, 3 AWS error (credentials, access denied,
throttled, not found) or a failed deployment (DEPLOYMENT_FAILED), 1 the deployment was still running when --wait
gave up (DEPLOYMENT_TIMEOUT: everything was created; check it later with the command printed).`
  static override examples = [
    {
      command: `<%= config.bin %> <%= command.id %> --platform armv7 --region us-west-2 --name MyGreengrassConnectors --id MyImageClassificationConnector --model-destination-path /path-to-model --ml-resource-id my-ml-resource --sagemaker-job-arn ${JOB} --service-name imageClassification --timeout-seconds 10 --memory-limit-kb 500000`,
      description: "The documentation's CPU example (ARMv7), with one flag per parameter.",
    },
    {
      command:
        '<%= config.bin %> <%= command.id %> --platform jtx2 --parameters params.json --gpu-acceleration GPU --dry-run --json',
      description: 'Print the request for a Jetson TX2 (GPU) without sending it.',
    },
    {
      command:
        '<%= config.bin %> <%= command.id %> --platform x86_64 --parameters params.json --with-ml-resource --group-id 1402daf9-71cf-4cfe-8be0-d5e80526d0d8 --deploy --wait',
      description: 'Create the connector and its ML resource, deploy the group and wait for the result.',
    },
  ]
  static override flags = {
    ...awsFlags,
    'connector-arn': Flags.string({description: 'The connector ARN (instead of --platform and --connector-version).'}),
    'connector-version': Flags.integer({
      description: 'Connector version (2 adds MLFeedbackConnectorConfigId).',
      default: 1,
      max: 2,
      min: 1,
    }),
    'definition-id': Flags.string({
      description: 'Add a new version to this connector definition instead of creating one.',
    }),
    deploy: Flags.boolean({
      description: 'Create a group version with the new definition(s) and deploy it (needs --group-id).',
    }),
    'dry-run': Flags.boolean({description: 'Send nothing; print the requests that would be sent.'}),
    'feedback-config-id': Flags.string({description: 'MLFeedbackConnectorConfigId (version 2 only).'}),
    'gpu-acceleration': Flags.string({description: 'GPUAcceleration: CPU or GPU (JTX2 only).'}),
    'group-id': Flags.string({description: 'The Greengrass group to deploy to (with --deploy).'}),
    id: Flags.string({description: 'The connector Id in the definition (default <ConnectorName>-<service name>).'}),
    'ml-resource-owner': Flags.string({
      description: 'With --with-ml-resource: the OS group that owns the model files on the core (OwnerSetting).',
      dependsOn: ['with-ml-resource'],
    }),
    'ml-resource-permission': Flags.string({
      dependsOn: ['ml-resource-owner'],
      description: "With --ml-resource-owner: that group's permission on the model files (default ro).",
      options: ['ro', 'rw'],
    }),
    'memory-limit-kb': Flags.string({description: 'LocalInferenceServiceMemoryLimitKB, e.g. 500000.'}),
    'ml-resource-id': Flags.string({description: 'MLModelResourceId: the ML resource that holds the model.'}),
    'model-destination-path': Flags.string({
      description: 'MLModelDestinationPath: where the ML resource puts the model.',
    }),
    name: Flags.string({description: 'Name of the new connector definition (default icc-<service name>).'}),
    parameters: Flags.string({description: 'JSON file with the Parameters object (bare or as {"Parameters": {...}}).'}),
    platform: platformFlag('Which connector: x86_64, armv7 or jtx2.'),
    'sagemaker-job-arn': Flags.string({
      description: 'MLModelSageMakerJobArn: arn:aws:sagemaker:<region>:<account>:training-job/<name>.',
    }),
    'service-name': Flags.string({description: 'LocalInferenceServiceName, e.g. imageClassification.'}),
    'timeout-seconds': Flags.string({description: 'LocalInferenceServiceTimeoutSeconds, e.g. 10.'}),
    wait: Flags.boolean({description: 'With --deploy: wait until the deployment succeeds or fails.'}),
    'wait-timeout': Flags.integer({description: 'With --wait: give up after this many seconds (default 600).', min: 1}),
    'with-ml-resource': Flags.boolean({
      description: 'Also create the SageMaker ML resource (CreateResourceDefinition).',
    }),
  }

  async run(): Promise<CreateConnectorPlan | CreateConnectorResult> {
    const {flags} = await this.parse(CreateConnector)
    const json = this.jsonEnabled()
    const result = await createConnector({
      ...awsOptions(flags),
      connectorArn: flags['connector-arn'],
      connectorVersion: flags['connector-arn'] ? undefined : flags['connector-version'],
      definitionId: flags['definition-id'],
      deploy: flags.deploy,
      dryRun: flags['dry-run'],
      groupId: flags['group-id'],
      id: flags.id,
      mlResourceOwner: flags['ml-resource-owner']
        ? {
            GroupOwner: flags['ml-resource-owner'],
            GroupPermission: (flags['ml-resource-permission'] ?? 'ro') as 'ro' | 'rw',
          }
        : undefined,
      name: flags.name,
      parameters: connectorInputOptions(flags).parameters,
      parametersFile: flags.parameters,
      platform: flags.platform,
      spinner: !json && Boolean(process.stderr.isTTY),
      wait: flags.wait,
      waitTimeoutSeconds: flags['wait-timeout'],
      // Warnings are shown when they arise (before the deployment), and listed in the --json result.
      warn: json ? undefined : (warning) => this.warn(warning),
      withMlResource: flags['with-ml-resource'],
    })
    if (!json) this.report(result)
    return result
  }

  private report(result: CreateConnectorPlan | CreateConnectorResult): void {
    if ('requests' in result) {
      this.log('Dry run: nothing was sent. The requests would be:')
      for (const r of result.requests) {
        this.log(`${r.operation}${r.note ? ` (${r.note})` : ''}\n${JSON.stringify(r.input, null, 2)}`)
      }

      return
    }

    this.log(
      result.operation === 'CreateConnectorDefinition'
        ? `Created connector definition ${result.definitionId}`
        : `Added a version to connector definition ${result.definitionId}`,
    )
    this.log(`  Connector:          ${result.connectorId} (${result.connectorArn})`)
    if (result.definitionArn) this.log(`  ARN:                ${result.definitionArn}`)
    this.log(`  Latest version:     ${result.latestVersion ?? '-'}`)
    this.log(`  Latest version ARN: ${result.latestVersionArn ?? '-'}`)
    if (result.keptConnectors.length > 0) this.log(`  Kept connectors:    ${result.keptConnectors.join(', ')}`)
    if (result.mlResource) {
      this.log(`Created ML resource definition ${result.mlResource.id}`)
      this.log(`  Latest version ARN: ${result.mlResource.latestVersionArn ?? '-'}`)
      if (result.keptResources?.length) this.log(`  Kept resources:     ${result.keptResources.join(', ')}`)
    }

    if (result.deployment) {
      const d = result.deployment
      this.log(`Deployment ${d.deploymentId} of group ${d.groupId} (group version ${d.groupVersionId}): ${d.status}`)
    } else {
      this.log(
        `Next: add it to a group version (aws greengrass create-group-version --group-id G --connector-definition-version-arn ${result.latestVersionArn ?? 'ARN'} ...), or run again with --group-id G --deploy.`,
      )
    }
  }
}
