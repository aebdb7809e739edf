/**
 * The one process wrapper of icc.
 *
 * Every child process that icc starts (installer scripts, `ldd`/`readelf`/`ldconfig`, `python`, the model runner
 * of `icc serve`) goes through this module, which wraps execa with the project's rules:
 *
 * - never a shell: the command and its arguments are passed as an argv array, so user-supplied strings (paths,
 *   service names) can contain spaces, `;`, `$()` or newlines without being interpreted;
 * - cancellation through an `AbortSignal`, and termination as SIGTERM first, then SIGKILL after a grace period
 *   (`killGraceMs`), so a hung child cannot outlive its deadline;
 * - children are killed when the parent exits (execa's `cleanup`);
 * - a missing executable becomes a typed {@link DependencyError} naming the command.
 */
import {execa, type Options as ExecaOptions, type ResultPromise} from 'execa'

import {DependencyError, IccError} from './errors.js'

export interface RunOptions {
  cwd?: string
  /** Extra environment variables (merged over process.env unless `extendEnv` is false). */
  env?: Record<string, string | undefined>
  extendEnv?: boolean
  /** Text or bytes written to the child's stdin. */
  input?: Buffer | string
  /** Grace period between SIGTERM and SIGKILL (default 2000 ms). */
  killGraceMs?: number
  /** Abort the child (SIGTERM, then SIGKILL after `killGraceMs`). */
  signal?: AbortSignal
  /** Stream the child's stdout/stderr lines to these callbacks as they arrive. */
  onStderrLine?: (line: string) => void
  onStdoutLine?: (line: string) => void
  /** Kill the child after this many milliseconds (SIGTERM, then SIGKILL). */
  timeoutMs?: number
}

export interface RunResult {
  command: string
  exitCode: number | undefined
  failed: boolean
  /** The signal that ended the child, if any. */
  signal: string | undefined
  stderr: string
  stdout: string
  timedOut: boolean
}

function baseOptions(options: RunOptions): ExecaOptions {
  return {
    cancelSignal: options.signal,
    cleanup: true,
    cwd: options.cwd,
    env: options.env,
    extendEnv: options.extendEnv ?? true,
    forceKillAfterDelay: options.killGraceMs ?? 2000,
    killSignal: 'SIGTERM',
    shell: false,
    stripFinalNewline: true,
    timeout: options.timeoutMs,
  }
}

function lineSplitter(callback: (line: string) => void): (chunk: Buffer | string) => void {
  let pending = ''
  return (chunk) => {
    pending += chunk.toString()
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines) callback(line)
  }
}

/**
 * Run a command to completion and collect its output. Never throws for a non-zero exit code (check
 * `result.exitCode`); throws {@link DependencyError} when the executable does not exist.
 */
export async function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const child = execa(file, args, {
    ...baseOptions(options),
    all: false,
    encoding: 'utf8',
    input: options.input,
    reject: false,
  })
  if (options.onStdoutLine) child.stdout?.on('data', lineSplitter(options.onStdoutLine))
  if (options.onStderrLine) child.stderr?.on('data', lineSplitter(options.onStderrLine))
  const result = await child
  const {code} = result as {code?: string}
  if (code === 'ENOENT' || (result.failed && result.exitCode === undefined && /ENOENT/.test(result.message ?? ''))) {
    throw new DependencyError('COMMAND_NOT_FOUND', `The command "${file}" was not found on PATH.`, {
      suggestions: [`Install the package that provides "${file}", or add its directory to PATH.`],
    })
  }

  return {
    command: [file, ...args].join(' '),
    exitCode: result.exitCode,
    failed: result.failed,
    signal: result.signal ?? undefined,
    stderr: String(result.stderr ?? ''),
    stdout: String(result.stdout ?? ''),
    timedOut: Boolean(result.timedOut),
  }
}

/** Run a command and return its stdout; throw an {@link IccError} with its stderr when it fails. */
export async function runChecked(file: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  const result = await run(file, args, options)
  if (result.exitCode !== 0) {
    const why = result.timedOut
      ? 'timed out'
      : result.signal
        ? `was killed by ${result.signal}`
        : `exited with ${result.exitCode}`
    throw new IccError('COMMAND_FAILED', `"${result.command}" ${why}: ${result.stderr.trim().slice(0, 2000)}`)
  }

  return result.stdout
}

export interface SpawnOptions extends RunOptions {
  /** Extra file descriptors after stdin/stdout/stderr, e.g. ['pipe'] for fd 3. */
  extraPipes?: number
  /** Inherit stdin instead of piping it. */
  inheritInput?: boolean
  /** Inherit stdout/stderr instead of piping them. */
  inheritOutput?: boolean
}

export type ChildProcess = ResultPromise

/**
 * Start a long-lived child process (e.g. the model runner). The caller owns the returned subprocess: await it to
 * learn how it ended (it never rejects), and use {@link terminate} to stop it.
 */
export function spawn(file: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  const extra: 'pipe'[] = Array.from({length: options.extraPipes ?? 0}, () => 'pipe' as const)
  const output = options.inheritOutput ? 'inherit' : 'pipe'
  const child = execa(file, args, {
    ...baseOptions(options),
    buffer: false,
    reject: false,
    stdio: [options.inheritInput ? 'inherit' : 'pipe', output, output, ...extra],
  })
  if (options.onStdoutLine) child.stdout?.on('data', lineSplitter(options.onStdoutLine))
  if (options.onStderrLine) child.stderr?.on('data', lineSplitter(options.onStderrLine))
  return child
}

/**
 * Stop a child: SIGTERM, then SIGKILL if it has not exited after `graceMs`. Resolves when it has exited.
 */
export async function terminate(child: ChildProcess, graceMs = 2000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve())
  })
  child.kill('SIGTERM')
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }, graceMs)
  try {
    await exited
  } finally {
    clearTimeout(timer)
  }
}
