/**
 * A stand-in for the Greengrass V2 nucleus, as far as a generic component's lifecycle goes, written from the
 * nucleus sources (aws-greengrass/aws-greengrass-nucleus): the component store layout of NucleusPaths.java
 * (packages/artifacts/<name>/<version>, packages/artifacts-unarchived/<name>/<version>, work/<name>), the
 * recipe-variable interpolation of KernelConfigResolver.java ({configuration:/json-pointer}, {artifacts:path},
 * {artifacts:decompressedPath}, {work:path}, {kernel:rootPath}, {iot:thingName}; an unknown key is left as it is),
 * and the script environment of ShellRunner.java + GenericExternalService.addEnv (SVCUID and
 * AWS_CONTAINER_AUTHORIZATION_TOKEN set to the component's own id, then the lifecycle's Setenv over them), each
 * script run by `sh -c` in the component's work folder.
 */
import {execa, type ResultPromise} from 'execa'
import {randomBytes} from 'node:crypto'
import {copyFile, mkdir, readdir} from 'node:fs/promises'
import {join} from 'node:path'

export interface LaidOut {
  artifactPath: string
  decompressedPath: string
  root: string
  workPath: string
}

/** Put a component's artifacts where the nucleus keeps them (the exported folder's, plus `extra` files). */
export async function layOut(
  root: string,
  exportDir: string,
  name: string,
  version: string,
  extra: Record<string, string> = {},
): Promise<LaidOut> {
  const artifactPath = join(root, 'packages', 'artifacts', name, version)
  const decompressedPath = join(root, 'packages', 'artifacts-unarchived', name, version)
  const workPath = join(root, 'work', name)
  for (const dir of [artifactPath, decompressedPath, workPath]) await mkdir(dir, {recursive: true})
  const from = join(exportDir, 'artifacts', name, version)
  for (const file of await readdir(from)) await copyFile(join(from, file), join(artifactPath, file))
  for (const [file, source] of Object.entries(extra)) await copyFile(source, join(artifactPath, file))
  return {artifactPath, decompressedPath, root, workPath}
}

function pointer(config: unknown, path: string): string | undefined {
  let node = config
  for (const raw of path.split('/').slice(1)) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~')
    if (typeof node !== 'object' || node === null) return undefined
    node = (node as Record<string, unknown>)[key]
  }

  if (node === undefined || node === null || typeof node === 'object') return undefined
  return String(node)
}

/** Interpolate one value (recursively) as KernelConfigResolver.replace does for the component itself. */
export function interpolate<T>(value: T, laid: LaidOut, config: Record<string, unknown>, thingName = 'test-thing'): T {
  if (typeof value === 'string') {
    return value.replaceAll(/\{([.\w-]+):([^:}]*)\}/g, (whole, namespace: string, key: string) => {
      const system: Record<string, Record<string, string>> = {
        artifacts: {decompressedPath: laid.decompressedPath, path: laid.artifactPath},
        iot: {thingName},
        kernel: {rootPath: laid.root},
        work: {path: laid.workPath},
      }
      const found = namespace === 'configuration' ? pointer(config, key) : system[namespace]?.[key]
      return found ?? whole
    }) as T
  }

  if (Array.isArray(value)) return value.map((v) => interpolate(v, laid, config, thingName)) as T
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, laid, config, thingName)])) as T
  }

  return value
}

export interface Step {
  Script: string
  Setenv?: Record<string, string>
}

/** The environment of a lifecycle script: the nucleus's own variables, then Setenv (lifecycle, then step). */
export function scriptEnv(
  lifecycle: {Setenv?: Record<string, string>},
  step: Step,
  path: string,
): Record<string, string> {
  const svcuid = randomBytes(16).toString('hex')
  return {
    AWS_CONTAINER_AUTHORIZATION_TOKEN: svcuid,
    GG_ROOT_CA_PATH: '',
    HOME: process.env.HOME ?? '/tmp',
    PATH: path,
    SVCUID: svcuid,
    ...lifecycle.Setenv,
    ...step.Setenv,
  }
}

/** Start a lifecycle step as the nucleus does: `sh -c SCRIPT` in the work folder. */
export function startStep(step: Step, env: Record<string, string>, cwd: string): ResultPromise {
  return execa('/bin/sh', ['-c', step.Script], {cwd, env, extendEnv: false, reject: false})
}
