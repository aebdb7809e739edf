/**
 * `icc export-service`: for devices without Greengrass, a systemd unit (and its environment file) that runs
 * `icc serve` with the connector's parameters (the same inputs and checks as create-connector), restarts it on
 * failure, starts it at boot, and runs it as a dedicated user with the hardening the model path allows
 * (NoNewPrivileges, ProtectSystem=strict, ProtectHome, PrivateTmp, PrivateDevices unless the GPU is used, ...).
 *
 * Settings go into the environment file and reach `icc serve` as `${VAR}` arguments (one word each, never split
 * or re-parsed); paths written into the unit itself are quoted and escaped as systemd.syntax(7) says. The
 * environment file holds the IPC token when there is one, so it is written owner-only (systemd reads it as root).
 */
import {mkdir, writeFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'

import {UsageError} from '../errors.js'
import {type ConnectorInputOptions, readConnectorInputs} from '../greengrass-v2/inputs.js'
import {generateAuthToken} from '../serve/ipc.js'

export interface ExportServiceOptions extends ConnectorInputOptions {
  /** Where the icc package is on the device (default /opt/icc). */
  iccHome?: string
  /** Also answer the Greengrass ML SDK on this loopback port (Lambda code run outside Greengrass). */
  ipcPort?: number
  /** The model on the device (default: MLModelDestinationPath). */
  model?: string
  /** The Node.js executable on the device (default /usr/bin/node). */
  node?: string
  output: string
  /** Where the environment file will be installed on the device (default /etc/icc/<unit>.env). */
  envDir?: string
  /** The dedicated user (default icc). */
  user?: string
}

export interface ExportedUnit {
  envFile: string
  serviceName: string
  unit: string
  unitName: string
}

export interface ExportServiceResult {
  output: string
  units: ExportedUnit[]
}

const USER = /^[a-z_][a-z0-9_-]{0,31}$/

/** One word of a unit file's command line: quoted, with systemd's specifiers and variables escaped. */
export function unitWord(value: string, what: string): string {
  if (/[\n\r\0]/.test(value)) throw new UsageError('BAD_UNIT_VALUE', `${what} must be on one line.`)
  return `"${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('%', '%%').replaceAll('$', '$$$$')}"`
}

/** One KEY="value" line of an EnvironmentFile. */
function envLine(key: string, value: string): string {
  if (/[\n\r\0]/.test(value)) throw new UsageError('BAD_UNIT_VALUE', `${key} must be on one line.`)
  return `${key}="${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('$', '\\$').replaceAll('`', '\\`')}"`
}

function check(options: ExportServiceOptions): void {
  if (options.user !== undefined && !USER.test(options.user)) {
    throw new UsageError('BAD_USER', `--user "${options.user}" is not a valid system user name.`, {
      suggestions: ['Use lower-case letters, digits, "_" and "-" (e.g. icc).'],
    })
  }

  for (const [flag, value] of [
    ['--node', options.node],
    ['--icc-home', options.iccHome],
    ['--env-dir', options.envDir],
  ] as const) {
    if (value !== undefined && !value.startsWith('/')) {
      throw new UsageError('NOT_ABSOLUTE', `${flag} must be an absolute path on the device, got "${value}".`)
    }
  }
}

/** `${NAME}`: systemd substitutes the variable as one word (never split). */
const envRef = (name: string): string => ['$', '{', name, '}'].join('')

function unitText(o: {
  description: string
  envFile: string
  gpu: boolean
  iccHome: string
  ipc: boolean
  model: string
  node: string
  unitName: string
  user: string
}): string {
  const underHome = /^\/(home|root)(\/|$)/.test(o.model)
  const args = [
    unitWord(o.node, '--node'),
    unitWord(`${o.iccHome}/bin/run.js`, '--icc-home'),
    'serve',
    `--model ${envRef('ICC_MODEL')}`,
    `--service-name ${envRef('ICC_SERVICE_NAME')}`,
    `--timeout-seconds ${envRef('ICC_TIMEOUT_SECONDS')}`,
    `--memory-limit-kb ${envRef('ICC_MEMORY_LIMIT_KB')}`,
    ...(o.gpu ? [`--gpu-acceleration ${envRef('ICC_GPU_ACCELERATION')}`] : []),
    ...(o.ipc ? [`--ipc-port ${envRef('ICC_IPC_PORT')}`] : []),
    `--socket %t/${o.unitName}/icc.sock`,
    `--cache-dir %C/${o.unitName}`,
  ]
  return [
    '[Unit]',
    `Description=${o.description.replaceAll('%', '%%')}`,
    'Documentation=man:systemd.service(5)',
    'After=network.target',
    '',
    '[Service]',
    'Type=simple',
    `User=${o.user}`,
    `Group=${o.user}`,
    `EnvironmentFile=${unitWord(o.envFile, '--env-dir').slice(1, -1)}`,
    `ExecStart=${args.join(' ')}`,
    'Restart=on-failure',
    'RestartSec=2',
    'TimeoutStopSec=30',
    'KillSignal=SIGTERM',
    `RuntimeDirectory=${o.unitName}`,
    'RuntimeDirectoryMode=0750',
    `CacheDirectory=${o.unitName}`,
    'CacheDirectoryMode=0700',
    'UMask=0077',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    `ProtectHome=${underHome ? 'read-only' : 'yes'}`,
    'PrivateTmp=yes',
    ...(o.gpu ? [] : ['PrivateDevices=yes']),
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectControlGroups=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    'RestrictSUIDSGID=yes',
    'RestrictRealtime=yes',
    'RestrictNamespaces=yes',
    'LockPersonality=yes',
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
    'CapabilityBoundingSet=',
    'AmbientCapabilities=',
    'SystemCallArchitectures=native',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n')
}

/** Write one unit + environment file per Image Classification connector. */
export async function exportService(options: ExportServiceOptions): Promise<ExportServiceResult> {
  check(options)
  const inputs = await readConnectorInputs(options)
  const output = resolve(options.output)
  await mkdir(output, {recursive: true})
  const token = options.ipcPort === undefined ? undefined : generateAuthToken()
  const units: ExportedUnit[] = []
  for (const [i, {parameters: p}] of inputs.entries()) {
    const serviceName = p.LocalInferenceServiceName!
    const unitName = `icc-${serviceName}`
    const envName = `${unitName}.env`
    const gpu = p.GPUAcceleration === 'GPU'
    const model = options.model !== undefined && inputs.length === 1 ? options.model : p.MLModelDestinationPath!
    const env = [
      `# icc serve settings of ${unitName}.service (owner-only: it may hold the IPC token)`,
      envLine('ICC_MODEL', model),
      envLine('ICC_SERVICE_NAME', serviceName),
      envLine('ICC_TIMEOUT_SECONDS', p.LocalInferenceServiceTimeoutSeconds!),
      envLine('ICC_MEMORY_LIMIT_KB', p.LocalInferenceServiceMemoryLimitKB!),
      ...(gpu ? [envLine('ICC_GPU_ACCELERATION', 'GPU')] : []),
      ...(token
        ? [envLine('ICC_IPC_PORT', String(options.ipcPort! + i)), envLine('AWS_CONTAINER_AUTHORIZATION_TOKEN', token)]
        : []),
      '',
    ].join('\n')
    const unit = unitText({
      description: `icc: Image Classification inference service ${serviceName}`,
      envFile: `${options.envDir ?? '/etc/icc'}/${envName}`,
      gpu,
      iccHome: options.iccHome ?? '/opt/icc',
      ipc: token !== undefined,
      model,
      node: options.node ?? '/usr/bin/node',
      unitName,
      user: options.user ?? 'icc',
    })
    const unitPath = join(output, `${unitName}.service`)
    const envPath = join(output, envName)
    await writeFile(unitPath, unit)
    await writeFile(envPath, env, {mode: 0o600})
    units.push({envFile: envPath, serviceName, unit: unitPath, unitName: `${unitName}.service`})
  }

  return {output, units}
}
