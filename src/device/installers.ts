/**
 * `icc install-deps`: run the platform's MXNet dependency installer (`install-scripts/<platform>.sh`).
 *
 * The flow: detect (or take) the platform, run its script with `--dry-run` to get the plan (the script prints
 * each step as `==> step: <name>` and each command it would run), refuse without root, ask for confirmation
 * (unless `yes`; without a terminal, `yes` is required), then run the script for real through the project's
 * process wrapper, streaming its output live and into a log file. When the script fails, the error names the
 * step that failed (the last `==> step:` line before the failure) and the log file.
 *
 * Installer exit codes: 0 done, 1 a step failed, 2 usage, 3 unsupported system, 4 not root.
 */
import {createWriteStream, existsSync} from 'node:fs'
import {mkdir} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

import {connectorForPlatform, type PlatformId} from '../connector/catalog.js'
import {DependencyError, IccError, UsageError} from '../errors.js'
import {run} from '../system.js'
import {type DetectedPlatform, detectPlatform} from './platform.js'

export const INSTALLER_EXIT = {Done: 0, NotRoot: 4, StepFailed: 1, Unsupported: 3, Usage: 2} as const

export interface InstallDepsOptions {
  /** Ask the user; resolves true to go on. Without it (no terminal), `yes` is required. */
  confirm?: (question: string) => Promise<boolean>
  dryRun?: boolean
  /** Extra environment variables for the installer (e.g. PATH with stub package managers in tests). */
  env?: Record<string, string>
  /** Run the libdc1394 workaround (`/dev/raw1394`). */
  fixLibdc1394?: boolean
  /** Raspberry Pi: temporarily raise the swap size while scipy installs (MB; true = 1024). */
  increaseSwap?: boolean | number
  /** Log file (default: $TMPDIR/icc-install-deps-<platform>-<time>.log). */
  logFile?: string
  /** Each output line of the installer, as it arrives. */
  onLine?: (line: string, stream: 'stderr' | 'stdout') => void
  /** Called with the plan before confirmation. */
  onPlan?: (plan: InstallPlan) => void
  platform?: 'auto' | PlatformId
  /** Root override passed to the script as ICC_ROOT (tests). */
  root?: string
  /** Directory holding the installer scripts (default: the package's install-scripts/). */
  scriptsDir?: string
  /** Effective user id (default: process.geteuid()). */
  uid?: number
  upgrade?: boolean
  yes?: boolean
}

export interface InstallPlan {
  args: string[]
  detected?: DetectedPlatform
  platform: PlatformId
  script: string
  /** The `==> step:` names of the dry run, in order, with the commands each would run. */
  steps: {commands: string[]; name: string; notes: string[]}[]
}

export interface InstallDepsResult {
  dryRun: boolean
  exitCode: number
  logFile?: string
  plan: InstallPlan
  /** Steps that ran (all of them on success). */
  stepsRun: string[]
}

/** The package root: the nearest ancestor of this module holding `install-scripts/` and a package.json. */
export function packageRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(dir, 'install-scripts')) && existsSync(join(dir, 'package.json'))) return dir
    const parent = dirname(dir)
    if (parent === dir) break
    dir = parent
  }

  throw new IccError('INSTALL_SCRIPTS_MISSING', `The install-scripts/ folder of icc was not found above ${from}.`, {
    suggestions: ['Reinstall icc: the package ships install-scripts/ next to dist/.'],
  })
}

export function scriptFor(platform: PlatformId, scriptsDir?: string): string {
  const dir = scriptsDir ?? join(packageRoot(), 'install-scripts')
  return resolve(dir, connectorForPlatform(platform).installScript)
}

/** Turn installer output into steps: `==> step: X` lines, `+ cmd` lines and `note:`/`warning:` lines. */
export function parseInstallerOutput(lines: readonly string[]): InstallPlan['steps'] {
  const steps: InstallPlan['steps'] = []
  for (const line of lines) {
    const s = /^==> step: (.+)$/.exec(line)
    if (s) {
      steps.push({commands: [], name: s[1].trim(), notes: []})
      continue
    }

    const current = steps.at(-1)
    if (!current) continue
    const cmd = /^\s+\+ (.+)$/.exec(line)
    if (cmd) current.commands.push(cmd[1])
    else if (/^\s+(note|warning): /.test(line)) current.notes.push(line.trim())
  }

  return steps
}

async function resolvePlatform(
  options: InstallDepsOptions,
): Promise<{detected?: DetectedPlatform; platform: PlatformId}> {
  if (options.platform && options.platform !== 'auto') return {platform: options.platform}
  const detected = await detectPlatform({root: options.root})
  if (!detected.platform) {
    throw new DependencyError('UNSUPPORTED_PLATFORM', `Cannot pick an installer: ${detected.reason}.`, {
      details: {machine: detected.machine, model: detected.model},
      suggestions: ['Pass --platform x86_64, armv7 or jtx2 if this device is one of them.'],
    })
  }

  return {detected, platform: detected.platform}
}

function scriptArgs(options: InstallDepsOptions): string[] {
  const args: string[] = []
  if (options.upgrade) args.push('--upgrade')
  if (options.fixLibdc1394) args.push('--fix-libdc1394')
  if (options.increaseSwap) {
    args.push(options.increaseSwap === true ? '--increase-swap' : `--increase-swap=${options.increaseSwap}`)
  }

  return args
}

function scriptFailure(code: number | undefined, step: string | undefined, lines: string[], logFile?: string) {
  // The output of the failing step (after its "==> step:" line), at most its last 8 lines.
  let start = 0
  lines.forEach((l, i) => {
    if (l.startsWith('==> step: ')) start = i + 1
  })
  const tail = lines
    .slice(start)
    .filter((l) => l.trim() !== '')
    .slice(-8)
  const where = logFile ? ` Full output: ${logFile}` : ''
  if (code === INSTALLER_EXIT.Unsupported) {
    return new DependencyError(
      'UNSUPPORTED_OS',
      `The installer does not support this system. ${tail.join(' ')}`.trim(),
      {
        details: {exitCode: code, logFile},
        suggestions: ['Install the MXNet dependencies by hand (see https://mxnet.apache.org/), then run icc doctor.'],
      },
    )
  }

  if (code === INSTALLER_EXIT.NotRoot) {
    return new IccError('NEEDS_ROOT', 'The installer must run as root: run icc install-deps with sudo.', {
      details: {exitCode: code},
      suggestions: ['sudo icc install-deps --yes', 'icc install-deps --dry-run (no root needed)'],
    })
  }

  return new DependencyError(
    'INSTALL_STEP_FAILED',
    `The installer failed at step "${step ?? 'unknown'}" (exit ${code ?? 'signal'}).${where}${
      tail.length > 0 ? `\n${tail.join('\n')}` : ''
    }`,
    {
      details: {exitCode: code, logFile, step},
      suggestions: [
        'Read the log for the failing command and fix its cause (network, disk space, a held package).',
        'Then re-run icc install-deps: it skips what is already installed.',
      ],
    },
  )
}

async function runScript(
  script: string,
  args: string[],
  options: InstallDepsOptions,
  logFile?: string,
): Promise<{exitCode: number | undefined; lines: string[]; steps: string[]}> {
  const lines: string[] = []
  const steps: string[] = []
  const log = logFile ? createWriteStream(logFile, {flags: 'a'}) : undefined
  const onLine = (stream: 'stderr' | 'stdout') => (line: string) => {
    lines.push(line)
    const s = /^==> step: (.+)$/.exec(line)
    if (s) steps.push(s[1].trim())
    log?.write(`${line}\n`)
    options.onLine?.(line, stream)
  }

  try {
    log?.write(`# icc install-deps: bash ${[script, ...args].join(' ')} (${new Date().toISOString()})\n`)
    // One stream keeps each warning under the step that printed it.
    const env: Record<string, string> = {...options.env, ICC_STDERR_TO_STDOUT: '1'}
    if (options.root) env.ICC_ROOT = options.root
    const r = await run('bash', [script, ...args], {
      env,
      onStderrLine: onLine('stderr'),
      onStdoutLine: onLine('stdout'),
    })
    // Lines not ending in a newline are only in the collected output.
    for (const [text, stream] of [
      [r.stdout, 'stdout'],
      [r.stderr, 'stderr'],
    ] as const) {
      const last = text.split('\n').at(-1)
      if (last && !text.endsWith('\n') && !lines.includes(last)) onLine(stream)(last)
    }

    log?.write(`# exit ${r.exitCode ?? r.signal}\n`)
    return {exitCode: r.exitCode, lines, steps}
  } finally {
    if (log)
      await new Promise<void>((done) => {
        log.end(done)
      })
  }
}

/** Plan, confirm and run the dependency installer of a platform. */
export async function installDeps(options: InstallDepsOptions = {}): Promise<InstallDepsResult> {
  const {detected, platform} = await resolvePlatform(options)
  const script = scriptFor(platform, options.scriptsDir)
  if (!existsSync(script)) {
    throw new IccError('INSTALL_SCRIPT_MISSING', `The installer ${script} does not exist.`, {
      suggestions: ['Reinstall icc: the package ships install-scripts/.'],
    })
  }

  const args = scriptArgs(options)
  const uid = options.uid ?? process.geteuid?.() ?? 0
  if (!options.dryRun && uid !== 0) {
    throw new IccError('NEEDS_ROOT', 'Installing system packages needs root: run icc install-deps with sudo.', {
      details: {uid},
      suggestions: [
        `sudo icc install-deps --platform ${platform}`,
        `icc install-deps --platform ${platform} --dry-run (shows the steps, no root needed)`,
      ],
    })
  }

  // The plan is the script's own dry run, so it reflects what is already installed.
  const planRun = await runScript(
    script,
    ['--dry-run', ...args],
    options.dryRun ? options : {...options, onLine: undefined},
  )
  const plan: InstallPlan = {args, detected, platform, script, steps: parseInstallerOutput(planRun.lines)}
  if (planRun.exitCode !== 0) {
    throw scriptFailure(planRun.exitCode, planRun.steps.at(-1), planRun.lines)
  }

  if (options.dryRun) return {dryRun: true, exitCode: 0, plan, stepsRun: planRun.steps}

  options.onPlan?.(plan)
  if (!options.yes) {
    if (!options.confirm) {
      throw new UsageError(
        'CONFIRMATION_REQUIRED',
        'icc install-deps changes system packages and needs confirmation.',
        {
          suggestions: ['No terminal to ask on: pass --yes to run the installer, or --dry-run to only see the plan.'],
        },
      )
    }

    const ok = await options.confirm(`Run ${connectorForPlatform(platform).installScript} as shown?`)
    if (!ok) throw new IccError('CANCELLED', 'Cancelled: nothing was installed.')
  }

  const logFile = resolve(
    options.logFile ??
      join(tmpdir(), `icc-install-deps-${platform}-${new Date().toISOString().replaceAll(':', '-')}.log`),
  )
  await mkdir(dirname(logFile), {recursive: true})
  const real = await runScript(script, args, options, logFile)
  if (real.exitCode !== 0) throw scriptFailure(real.exitCode, real.steps.at(-1), real.lines, logFile)
  return {dryRun: false, exitCode: 0, logFile, plan, stepsRun: real.steps}
}
