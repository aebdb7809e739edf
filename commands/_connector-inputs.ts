/**
 * The connector parameter inputs shared by the exporters (export-component, export-service): create-connector's
 * --parameters FILE and per-parameter flags, or a whole --definition FILE.
 */
import {Flags} from '@oclif/core'

import type {PlatformId} from '../src/connector/catalog.js'
import type {ConnectorInputOptions} from '../src/greengrass-v2/inputs.js'

import {platformFlag} from './_platform.js'

export const connectorInputFlags = {
  'connector-version': Flags.integer({
    description: 'Connector version whose schema applies (default: inferred).',
    max: 2,
    min: 1,
  }),
  definition: Flags.string({description: 'Connector definition version JSON: one per Image Classification connector.'}),
  'feedback-config-id': Flags.string({description: 'MLFeedbackConnectorConfigId (version 2 only).'}),
  'gpu-acceleration': Flags.string({description: 'GPUAcceleration: CPU or GPU (JTX2 only).'}),
  'memory-limit-kb': Flags.string({description: 'LocalInferenceServiceMemoryLimitKB, e.g. 500000.'}),
  'ml-resource-id': Flags.string({description: 'MLModelResourceId.'}),
  'model-destination-path': Flags.string({description: 'MLModelDestinationPath.'}),
  parameters: Flags.string({description: 'JSON file with the Parameters object (bare or as {"Parameters": {...}}).'}),
  platform: platformFlag('Which connector schema: x86_64, armv7 or jtx2 (default: inferred).'),
  'sagemaker-job-arn': Flags.string({description: 'MLModelSageMakerJobArn.'}),
  'service-name': Flags.string({description: 'LocalInferenceServiceName, e.g. imageClassification.'}),
  'timeout-seconds': Flags.string({description: 'LocalInferenceServiceTimeoutSeconds, e.g. 10.'}),
}

export function connectorInputOptions(flags: {
  'connector-version'?: number
  definition?: string
  'feedback-config-id'?: string
  'gpu-acceleration'?: string
  'memory-limit-kb'?: string
  'ml-resource-id'?: string
  'model-destination-path'?: string
  parameters?: string
  platform?: PlatformId
  'sagemaker-job-arn'?: string
  'service-name'?: string
  'timeout-seconds'?: string
}): ConnectorInputOptions {
  return {
    connectorVersion: flags['connector-version'],
    definitionFile: flags.definition,
    parameters: {
      GPUAcceleration: flags['gpu-acceleration'],
      LocalInferenceServiceMemoryLimitKB: flags['memory-limit-kb'],
      LocalInferenceServiceName: flags['service-name'],
      LocalInferenceServiceTimeoutSeconds: flags['timeout-seconds'],
      MLFeedbackConnectorConfigId: flags['feedback-config-id'],
      MLModelDestinationPath: flags['model-destination-path'],
      MLModelResourceId: flags['ml-resource-id'],
      MLModelSageMakerJobArn: flags['sagemaker-job-arn'],
    },
    parametersFile: flags.parameters,
    platform: flags.platform,
  }
}
