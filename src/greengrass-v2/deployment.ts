/**
 * The deployment document of an exported component: the Greengrass V2 `CreateDeployment` input for a thing or
 * thing group. Each icc component gets its configuration merge (the IPC token it shares with the migrated Lambda)
 * and `runWith.systemResourceLimits.memory` = LocalInferenceServiceMemoryLimitKB (nucleus >= 2.4), so the nucleus
 * enforces the connector's memory limit on top of icc's own cap. A migrated V1 Lambda component, when named, gets
 * the environment its ML SDK reads (token, port, interface version) merged into its lambdaExecutionParameters.
 */
import {lambdaEnvironment} from '../serve/ipc.js'

export interface ComponentSpec {
  componentVersion: string
  configurationUpdate?: {merge?: string; reset?: string[]}
  runWith?: {posixUser?: string; systemResourceLimits?: {cpus?: number; memory?: number}}
}

export interface DeploymentDocument {
  components: Record<string, ComponentSpec>
  deploymentName: string
  targetArn?: string
}

export interface DeploymentInput {
  components: {componentName: string; componentVersion: string; ipcPort: number; memoryLimitKb: number}[]
  /** Migrated V1 Lambda components (name -> version) that call the first icc component's IPC port. */
  lambdas?: Record<string, string>
  /** The Lambda's AWS_REGION (the IPC endpoint checks the function ARN's region when the Lambda sends one). */
  region?: string
  targetArn?: string
  token: string
}

const TARGET_ARN = /^arn:aws[a-z-]*:iot:[a-z0-9-]+:\d{12}:(thing|thinggroup)\/[a-zA-Z0-9:_-]+$/

export function isTargetArn(arn: string): boolean {
  return TARGET_ARN.test(arn)
}

/** Build the CreateDeployment input. */
export function buildDeployment(input: DeploymentInput): DeploymentDocument {
  const components: Record<string, ComponentSpec> = {}
  for (const c of input.components) {
    components[c.componentName] = {
      componentVersion: c.componentVersion,
      configurationUpdate: {merge: JSON.stringify({IpcAuthToken: input.token})},
      runWith: {systemResourceLimits: {memory: c.memoryLimitKb}},
    }
  }

  const port = input.components[0]?.ipcPort ?? 8000
  for (const [name, version] of Object.entries(input.lambdas ?? {})) {
    const env = lambdaEnvironment({port, region: input.region ?? '', token: input.token})
    if (!input.region) delete (env as Partial<typeof env>).AWS_REGION
    components[name] = {
      componentVersion: version,
      configurationUpdate: {merge: JSON.stringify({lambdaExecutionParameters: {EnvironmentVariables: env}})},
    }
  }

  return {
    ...(input.targetArn ? {targetArn: input.targetArn} : {}),
    deploymentName: `icc ${input.components.map((c) => c.componentName).join(', ')}`,
    components,
  }
}
