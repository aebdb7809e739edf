// @tier unit: needs neither ../shared nor child processes (npm run test:unit)
/**
 * Paths that are clearer with aws-sdk-client-mock than on the wire: long polling sequences and the SDK's own
 * exception classes. The clients are the real SDK v3 clients; only their `send` is replaced.
 */
import {
  BadRequestException,
  CreateConnectorDefinitionCommand,
  CreateDeploymentCommand,
  CreateGroupVersionCommand,
  GetDeploymentStatusCommand,
  GetGroupCommand,
  GetGroupVersionCommand,
  GreengrassClient,
} from '@aws-sdk/client-greengrass'
import {type AwsClientStub, mockClient} from 'aws-sdk-client-mock'
import assert from 'node:assert/strict'

import {sendGreengrass} from '../../src/aws/greengrass.js'
import {deployGroup} from '../../src/connector/group.js'
import {IccError} from '../../src/errors.js'
import {GROUP_ID, useFakeCredentials} from './fixtures.js'

describe('AWS paths with aws-sdk-client-mock', () => {
  // Mocked only while this block runs: made at load time, the mock replaced every GreengrassClient's send in the
  // other test files too (mocha loads them all before running any).
  let gg: AwsClientStub<GreengrassClient>
  before(() => {
    useFakeCredentials()
    gg = mockClient(GreengrassClient)
  })
  afterEach(() => gg.reset())
  after(() => gg.restore())

  it('stops waiting for a deployment that stays InProgress, with the command to check it later', async () => {
    gg.on(GetGroupCommand)
      .resolves({Id: GROUP_ID, LatestVersion: 'g1'})
      .on(GetGroupVersionCommand)
      .resolves({Definition: {}})
      .on(CreateGroupVersionCommand)
      .resolves({Version: 'g2'})
      .on(CreateDeploymentCommand)
      .resolves({DeploymentId: 'dep-9'})
      .on(GetDeploymentStatusCommand)
      .resolvesOnce({DeploymentStatus: 'Building'})
      .resolves({DeploymentStatus: 'InProgress'})
    await assert.rejects(
      deployGroup(
        {region: 'us-west-2'},
        {
          connectorDefinitionVersionArn: 'arn:c',
          groupId: GROUP_ID,
          pollIntervalSeconds: 0.02,
          timeoutSeconds: 0.2,
          wait: true,
        },
      ),
      (error: unknown) => {
        assert.ok(error instanceof IccError)
        assert.equal(error.code, 'DEPLOYMENT_TIMEOUT')
        assert.match(error.message, /dep-9 is still InProgress/)
        assert.match(
          error.suggestions[0],
          new RegExp(`get-deployment-status --group-id ${GROUP_ID} --deployment-id dep-9`),
        )
        return true
      },
    )
    assert.ok(gg.commandCalls(GetDeploymentStatusCommand).length >= 2)
    assert.equal(gg.commandCalls(CreateGroupVersionCommand)[0].args[0].input.ConnectorDefinitionVersionArn, 'arn:c')
  })

  it('turns an SDK exception it has no special case for into one line with the operation, type and status (exit 3)', async () => {
    gg.on(CreateConnectorDefinitionCommand).rejects(
      new BadRequestException({$metadata: {httpStatusCode: 400}, message: 'Connector parameters are invalid'}),
    )
    const client = new GreengrassClient({region: 'us-west-2'})
    await assert.rejects(
      sendGreengrass(client, 'CreateConnectorDefinition', {InitialVersion: {Connectors: []}, Name: 'x'}),
      (error: unknown) => {
        assert.ok(error instanceof IccError)
        assert.equal(error.exitCode, 3)
        assert.equal(
          error.message,
          'greengrass:CreateConnectorDefinition failed (BadRequestException, HTTP 400): Connector parameters are invalid',
        )
        return true
      },
    )
  })
})
