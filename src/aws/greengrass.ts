/**
 * Greengrass V1 over the AWS SDK v3 (@aws-sdk/client-greengrass), as typed steps: each request icc sends is a
 * `{operation, input}` whose input is the SDK's own input type for that operation ({@link PlannedRequest}), and a
 * list of {@link Step}s is either printed (`--dry-run`, {@link planSteps}) or sent in order ({@link runSteps}),
 * each built from what the answers before it said. This module knows no feature: the steps of
 * `icc create-connector` are built in `src/connector/`.
 */
import {
  CreateConnectorDefinitionCommand,
  type CreateConnectorDefinitionCommandInput,
  type CreateConnectorDefinitionCommandOutput,
  CreateConnectorDefinitionVersionCommand,
  type CreateConnectorDefinitionVersionCommandInput,
  type CreateConnectorDefinitionVersionCommandOutput,
  CreateDeploymentCommand,
  type CreateDeploymentCommandInput,
  type CreateDeploymentCommandOutput,
  CreateGroupVersionCommand,
  type CreateGroupVersionCommandInput,
  type CreateGroupVersionCommandOutput,
  CreateResourceDefinitionCommand,
  type CreateResourceDefinitionCommandInput,
  type CreateResourceDefinitionCommandOutput,
  GetConnectorDefinitionCommand,
  type GetConnectorDefinitionCommandInput,
  type GetConnectorDefinitionCommandOutput,
  GetConnectorDefinitionVersionCommand,
  type GetConnectorDefinitionVersionCommandInput,
  type GetConnectorDefinitionVersionCommandOutput,
  GetDeploymentStatusCommand,
  type GetDeploymentStatusCommandInput,
  type GetDeploymentStatusCommandOutput,
  GetGroupCommand,
  type GetGroupCommandInput,
  type GetGroupCommandOutput,
  GetGroupVersionCommand,
  type GetGroupVersionCommandInput,
  type GetGroupVersionCommandOutput,
  GetResourceDefinitionVersionCommand,
  type GetResourceDefinitionVersionCommandInput,
  type GetResourceDefinitionVersionCommandOutput,
  GreengrassClient,
} from '@aws-sdk/client-greengrass'

import {type AwsOptions, clientConfig, mapAwsError} from './clients.js'

/** The input and output types of each Greengrass V1 operation icc sends. */
export interface GreengrassIo {
  CreateConnectorDefinition: {
    input: CreateConnectorDefinitionCommandInput
    output: CreateConnectorDefinitionCommandOutput
  }
  CreateConnectorDefinitionVersion: {
    input: CreateConnectorDefinitionVersionCommandInput
    output: CreateConnectorDefinitionVersionCommandOutput
  }
  CreateDeployment: {input: CreateDeploymentCommandInput; output: CreateDeploymentCommandOutput}
  CreateGroupVersion: {input: CreateGroupVersionCommandInput; output: CreateGroupVersionCommandOutput}
  CreateResourceDefinition: {input: CreateResourceDefinitionCommandInput; output: CreateResourceDefinitionCommandOutput}
  GetConnectorDefinition: {input: GetConnectorDefinitionCommandInput; output: GetConnectorDefinitionCommandOutput}
  GetConnectorDefinitionVersion: {
    input: GetConnectorDefinitionVersionCommandInput
    output: GetConnectorDefinitionVersionCommandOutput
  }
  GetDeploymentStatus: {input: GetDeploymentStatusCommandInput; output: GetDeploymentStatusCommandOutput}
  GetGroup: {input: GetGroupCommandInput; output: GetGroupCommandOutput}
  GetGroupVersion: {input: GetGroupVersionCommandInput; output: GetGroupVersionCommandOutput}
  GetResourceDefinitionVersion: {
    input: GetResourceDefinitionVersionCommandInput
    output: GetResourceDefinitionVersionCommandOutput
  }
}

export type GreengrassOperation = keyof GreengrassIo
type Input<K extends GreengrassOperation> = GreengrassIo[K]['input']
type Output<K extends GreengrassOperation> = GreengrassIo[K]['output']

/** One request as it is sent (or printed by a dry run): a discriminated union over the operations. */
export type PlannedRequest = {
  [K in GreengrassOperation]: {input: Input<K>; note?: string; operation: K}
}[GreengrassOperation]

type Senders = {[K in GreengrassOperation]: (client: GreengrassClient, input: Input<K>) => Promise<Output<K>>}

const SEND: Senders = {
  CreateConnectorDefinition: (c, input) => c.send(new CreateConnectorDefinitionCommand(input)),
  CreateConnectorDefinitionVersion: (c, input) => c.send(new CreateConnectorDefinitionVersionCommand(input)),
  CreateDeployment: (c, input) => c.send(new CreateDeploymentCommand(input)),
  CreateGroupVersion: (c, input) => c.send(new CreateGroupVersionCommand(input)),
  CreateResourceDefinition: (c, input) => c.send(new CreateResourceDefinitionCommand(input)),
  GetConnectorDefinition: (c, input) => c.send(new GetConnectorDefinitionCommand(input)),
  GetConnectorDefinitionVersion: (c, input) => c.send(new GetConnectorDefinitionVersionCommand(input)),
  GetDeploymentStatus: (c, input) => c.send(new GetDeploymentStatusCommand(input)),
  GetGroup: (c, input) => c.send(new GetGroupCommand(input)),
  GetGroupVersion: (c, input) => c.send(new GetGroupVersionCommand(input)),
  GetResourceDefinitionVersion: (c, input) => c.send(new GetResourceDefinitionVersionCommand(input)),
}

/** Send one request; an SDK error becomes an IccError naming the operation (`greengrass:<Operation>`). */
export async function sendGreengrass<K extends GreengrassOperation>(
  client: GreengrassClient,
  operation: K,
  input: Input<K>,
): Promise<Output<K>> {
  try {
    return await SEND[operation](client, input)
  } catch (error) {
    throw mapAwsError(error, `greengrass:${operation}`)
  }
}

/**
 * One step of a plan: the request of one operation, built from the answers so far (`A`, filled in by earlier
 * steps' `keep`; a dry run builds it from placeholder answers instead).
 */
export interface StepOf<K extends GreengrassOperation, A> {
  input(answers: A): Input<K>
  /** Record what the answer says in `answers`; throwing here stops the plan before anything after it is sent. */
  keep?(output: Output<K>, answers: A): void
  /** What a dry run prints beside the input (what the input cannot show, e.g. what is kept from an answer). */
  note?: string
  operation: K
  /** Send it otherwise than once (e.g. poll until a deployment ends); errors are mapped alike. */
  send?(client: GreengrassClient, input: Input<K>, answers: A): Promise<Output<K>>
  /** Leave this step out, given the answers so far (e.g. a group without a version yet). */
  skip?(answers: A): boolean
}

export type Step<A> = {[K in GreengrassOperation]: StepOf<K, A>}[GreengrassOperation]

/** The requests a plan would send (what `--dry-run` prints), built from placeholder answers. */
export function planSteps<A>(steps: Step<A>[], placeholders: A): PlannedRequest[] {
  return steps.map((step) => plannedRequest(step, placeholders))
}

function plannedRequest<K extends GreengrassOperation, A>(step: StepOf<K, A>, answers: A): PlannedRequest {
  const planned: {input: Input<K>; note?: string; operation: K} = {
    input: step.input(answers),
    operation: step.operation,
  }
  if (step.note) planned.note = step.note
  return planned as PlannedRequest
}

async function runStep<K extends GreengrassOperation, A>(
  client: GreengrassClient,
  step: StepOf<K, A>,
  answers: A,
): Promise<void> {
  if (step.skip?.(answers)) return
  const input = step.input(answers)
  let output: Output<K>
  if (step.send) {
    try {
      output = await step.send(client, input, answers)
    } catch (error) {
      throw mapAwsError(error, `greengrass:${step.operation}`)
    }
  } else output = await sendGreengrass(client, step.operation, input)
  step.keep?.(output, answers)
}

/** Send the steps in order, each built from the answers of those before it; the first failure stops the rest. */
export async function runSteps<A>(client: GreengrassClient, steps: Step<A>[], answers: A): Promise<A> {
  for (const step of steps) await runStep(client, step, answers)
  return answers
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

/** Run steps on a client of their own (closed afterwards). */
export async function runWithClient<A>(aws: AwsOptions, steps: Step<A>[], answers: A): Promise<A> {
  const client = new GreengrassClient(clientConfig(aws))
  try {
    return await runSteps(client, steps, answers)
  } finally {
    client.destroy()
  }
}
