/**
 * Greengrass connector definitions over the AWS SDK v3 (@aws-sdk/client-greengrass): CreateConnectorDefinition
 * (a new definition with its initial version) and CreateConnectorDefinitionVersion (a new version of an existing
 * definition). Requests are built by `src/connector/definition.ts`; this module only sends them and maps errors.
 */
import {
  CreateConnectorDefinitionCommand,
  type CreateConnectorDefinitionCommandInput,
  CreateConnectorDefinitionVersionCommand,
  type CreateConnectorDefinitionVersionCommandInput,
  GetConnectorDefinitionCommand,
  GetConnectorDefinitionVersionCommand,
  GreengrassClient,
} from '@aws-sdk/client-greengrass'

import type {ConnectorEntry, PlannedCreate} from '../connector/definition.js'

import {type AwsOptions, clientConfig, mapAwsError} from './clients.js'

export interface CreatedConnectorDefinition {
  /** The definition's ARN. */
  arn?: string
  definitionId: string
  /** The version id. */
  latestVersion?: string
  /** The version ARN: what a group version's ConnectorDefinitionVersionArn needs. */
  latestVersionArn?: string
}

/** A Greengrass client and the region it resolved (flag, environment, or profile). */
export async function greengrassClient(aws: AwsOptions): Promise<{client: GreengrassClient; region?: string}> {
  const client = new GreengrassClient(clientConfig(aws))
  let region: string | undefined
  try {
    region = await client.config.region()
  } catch {
    region = undefined
  }

  return {client, region}
}

/** Send a planned CreateConnectorDefinition / CreateConnectorDefinitionVersion request. */
export async function sendConnectorDefinition(
  client: GreengrassClient,
  plan: PlannedCreate,
): Promise<CreatedConnectorDefinition> {
  try {
    if (plan.operation === 'CreateConnectorDefinitionVersion') {
      const input = plan.input as unknown as CreateConnectorDefinitionVersionCommandInput
      const out = await client.send(new CreateConnectorDefinitionVersionCommand(input))
      return {
        definitionId: out.Id ?? input.ConnectorDefinitionId!,
        latestVersion: out.Version,
        latestVersionArn: out.Arn,
      }
    }

    const input = plan.input as unknown as CreateConnectorDefinitionCommandInput
    const out = await client.send(new CreateConnectorDefinitionCommand(input))
    return {
      arn: out.Arn,
      definitionId: out.Id ?? '',
      latestVersion: out.LatestVersion,
      latestVersionArn: out.LatestVersionArn,
    }
  } catch (error) {
    throw mapAwsError(error, `greengrass:${plan.operation}`)
  }
}

/** The connectors of an existing definition's latest version (empty when it has no version yet). */
export async function latestConnectors(
  client: GreengrassClient,
  definitionId: string,
): Promise<{connectors: ConnectorEntry[]; latestVersion?: string}> {
  let op = 'greengrass:GetConnectorDefinition'
  try {
    const definition = await client.send(new GetConnectorDefinitionCommand({ConnectorDefinitionId: definitionId}))
    if (!definition.LatestVersion) return {connectors: []}
    op = 'greengrass:GetConnectorDefinitionVersion'
    const version = await client.send(
      new GetConnectorDefinitionVersionCommand({
        ConnectorDefinitionId: definitionId,
        ConnectorDefinitionVersionId: definition.LatestVersion,
      }),
    )
    const connectors = (version.Definition?.Connectors ?? []).map((c) => ({
      ConnectorArn: c.ConnectorArn ?? '',
      Id: c.Id ?? '',
      Parameters: {...c.Parameters},
    }))
    return {connectors, latestVersion: definition.LatestVersion}
  } catch (error) {
    throw mapAwsError(error, op)
  }
}
