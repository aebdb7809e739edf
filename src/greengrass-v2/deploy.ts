/**
 * `icc deploy-component DIR`: CreateDeployment with DIR's deployment document for a thing or thing group, keeping
 * the other components of that target's latest deployment (a V2 deployment replaces the target's whole component
 * list, as a V1 group version replaced a group's definitions), optionally waiting for the outcome.
 */
import {
  CreateDeploymentCommand,
  GetDeploymentCommand,
  GreengrassV2Client,
  ListDeploymentsCommand,
  ListEffectiveDeploymentsCommand,
} from '@aws-sdk/client-greengrassv2'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'

import type {PlannedRequest} from './publish.js'

import {type AwsOptions, clientConfig, mapAwsError} from '../aws/clients.js'
import {AwsError, IccError, UsageError} from '../errors.js'
import {type ComponentSpec, type DeploymentDocument, isTargetArn} from './deployment.js'

export interface DeployOptions extends AwsOptions {
  dir: string
  dryRun?: boolean
  /** Poll interval for --wait (default 5 s). */
  pollMs?: number
  targetArn?: string
  wait?: boolean
  waitTimeoutSeconds?: number
}

export interface DeployResult {
  deploymentId: string
  keptComponents: string[]
  status?: string
  targetArn: string
}

async function readDocument(dir: string, targetArn?: string): Promise<DeploymentDocument & {targetArn: string}> {
  const path = join(dir, 'deployment.json')
  const doc = JSON.parse(
    await readFile(path, 'utf8').catch(() => {
      throw new UsageError('NOT_AN_EXPORT', `${path} is missing: run icc export-component --output ${dir} first.`)
    }),
  ) as DeploymentDocument
  const target = targetArn ?? doc.targetArn
  if (!target || !isTargetArn(target)) {
    throw new UsageError('BAD_TARGET_ARN', `No valid --target-arn (got ${JSON.stringify(target ?? null)}).`, {
      suggestions: ['Pass --target-arn arn:aws:iot:<region>:<account>:thing/<name> or ...:thinggroup/<name>.'],
    })
  }

  return {...doc, targetArn: target}
}

async function send<T>(operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (error) {
    throw mapAwsError(error, `greengrass:${operation}`)
  }
}

async function latestComponents(client: GreengrassV2Client, targetArn: string): Promise<Record<string, ComponentSpec>> {
  const list = await send('ListDeployments', () =>
    client.send(new ListDeploymentsCommand({historyFilter: 'LATEST_ONLY', targetArn})),
  )
  const latest = list.deployments?.[0]
  if (!latest?.deploymentId) return {}
  const got = await send('GetDeployment', () =>
    client.send(new GetDeploymentCommand({deploymentId: latest.deploymentId})),
  )
  return (got.components ?? {}) as Record<string, ComponentSpec>
}

const FAILED = new Set(['ABORTED', 'CANCELED', 'FAILED', 'REJECTED', 'TIMED_OUT'])
const DONE = new Set(['COMPLETED', 'SUCCEEDED'])

async function waitFor(
  client: GreengrassV2Client,
  options: DeployOptions,
  id: string,
  target: string,
): Promise<string> {
  const thing = /:thing\/(.+)$/.exec(target)?.[1]
  const deadline = Date.now() + (options.waitTimeoutSeconds ?? 600) * 1000
  for (;;) {
    let status: string | undefined
    if (thing) {
      const effective = await send('ListEffectiveDeployments', () =>
        client.send(new ListEffectiveDeploymentsCommand({coreDeviceThingName: thing})),
      )
      status = effective.effectiveDeployments?.find((d) => d.deploymentId === id)?.coreDeviceExecutionStatus
    } else {
      const got = await send('GetDeployment', () => client.send(new GetDeploymentCommand({deploymentId: id})))
      status = got.deploymentStatus
      // a thing group's deployment stays ACTIVE while the group exists: created is as far as waiting goes
      if (status === 'ACTIVE') return status
    }

    if (status && DONE.has(status)) return status
    if (status && FAILED.has(status)) {
      throw new IccError('DEPLOYMENT_FAILED', `Deployment ${id} to ${target} ended ${status}.`, {
        exitCode: 1,
        suggestions: ['Read the device log: /greengrass/v2/logs/greengrass.log and the component log.'],
      })
    }

    if (Date.now() > deadline) {
      throw new AwsError('DEPLOYMENT_WAIT_TIMEOUT', `Deployment ${id} was still ${status ?? 'pending'} after the wait.`)
    }

    await new Promise((resolve) => {
      setTimeout(resolve, options.pollMs ?? 5000)
    })
  }
}

/** Create the deployment (or, with dryRun, return the requests it would take). */
export async function deployComponent(options: DeployOptions): Promise<DeployResult | {requests: PlannedRequest[]}> {
  const doc = await readDocument(options.dir, options.targetArn)
  if (options.dryRun) {
    return {
      requests: [
        {input: {historyFilter: 'LATEST_ONLY', targetArn: doc.targetArn}, operation: 'ListDeployments'},
        {input: {deploymentId: '<from ListDeployments: deployments[0].deploymentId>'}, operation: 'GetDeployment'},
        {
          input: {...doc, components: {'<the other components of the latest deployment>': {}, ...doc.components}},
          operation: 'CreateDeployment',
        },
      ],
    }
  }

  const client = new GreengrassV2Client(clientConfig(options))
  try {
    const existing = await latestComponents(client, doc.targetArn)
    const kept = Object.keys(existing).filter((name) => !(name in doc.components))
    const components = {...existing, ...doc.components}
    const created = await send('CreateDeployment', () =>
      client.send(new CreateDeploymentCommand({...doc, components} as never)),
    )
    const id = created.deploymentId!
    const result: DeployResult = {deploymentId: id, keptComponents: kept, targetArn: doc.targetArn}
    if (options.wait) result.status = await waitFor(client, options, id, doc.targetArn)
    return result
  } finally {
    client.destroy()
  }
}
