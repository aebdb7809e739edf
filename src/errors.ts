/**
 * Typed errors of the icc library.
 *
 * Everything in `src/` throws an {@link IccError} (or a subclass) when something goes wrong that a user can act
 * on: it carries a stable `code` (machine-readable, shown in `--json` output), the process `exitCode` the CLI
 * exits with, and a list of `suggestions` (next steps). The CLI maps these to oclif errors in exactly one place
 * (`commands/_base.ts`); the library never imports oclif.
 *
 * Exit codes (documented in the README):
 *   0  success
 *   1  general failure
 *   2  usage: bad flags, bad parameters, invalid input files
 *   3  AWS: access denied, missing credentials, throttled, not found
 *   4  model: cannot read, convert or run the model
 *   5  dependency: a required library, runtime or provider is missing (doctor failures too)
 *   6  policy denied (check-role: the role does not allow the action)
 *   7  undecided (check-role: cannot decide offline, e.g. a Condition)
 *   8  service: the inference service refused or failed a request (invoke)
 *   9  unreachable: nothing listens where invoke was told to send (icc serve not running, wrong --socket/--url)
 *  130 interrupted
 */

export const ExitCode = {
  AwsError: 3,
  Denied: 6,
  Dependency: 5,
  Failure: 1,
  Interrupted: 130,
  Model: 4,
  Ok: 0,
  Service: 8,
  Undecided: 7,
  Unreachable: 9,
  Usage: 2,
} as const

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode]

export interface IccErrorOptions {
  cause?: unknown
  /** Extra machine-readable facts (shown in --json output). Never put secrets here. */
  details?: Record<string, unknown>
  exitCode?: number
  suggestions?: string[]
}

export class IccError extends Error {
  readonly code: string
  readonly details?: Record<string, unknown>
  readonly exitCode: number
  readonly suggestions: string[]

  constructor(code: string, message: string, options: IccErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : {cause: options.cause})
    this.name = 'IccError'
    this.code = code
    this.exitCode = options.exitCode ?? ExitCode.Failure
    this.suggestions = options.suggestions ?? []
    this.details = options.details
  }

  toJSON(): {code: string; details?: Record<string, unknown>; message: string; suggestions: string[]} {
    return {code: this.code, details: this.details, message: this.message, suggestions: this.suggestions}
  }
}

/** Bad flags, parameters or input files (exit 2). */
export class UsageError extends IccError {
  constructor(code: string, message: string, options: Omit<IccErrorOptions, 'exitCode'> = {}) {
    super(code, message, {...options, exitCode: ExitCode.Usage})
    this.name = 'UsageError'
  }
}

/** One problem found while validating a document (parameters, definitions). */
export interface ValidationProblem {
  /** What was wrong, in words a user understands. */
  message: string
  /** JSON pointer-like location, e.g. `/Connectors/0/Parameters/MLModelSageMakerJobArn`. */
  path: string
  /** What would be right (optional). */
  suggestion?: string
}

/** Several validation problems at once (exit 2). */
export class ValidationError extends UsageError {
  readonly problems: ValidationProblem[]

  constructor(message: string, problems: ValidationProblem[], options: Omit<IccErrorOptions, 'exitCode'> = {}) {
    const list = problems.map((p) => `  - ${p.path || '/'}: ${p.message}${p.suggestion ? ` (${p.suggestion})` : ''}`)
    super('INVALID_INPUT', [message, ...list].join('\n'), {...options, details: {...options.details, problems}})
    this.name = 'ValidationError'
    this.problems = problems
  }
}

/** The model cannot be read, converted or run (exit 4). */
export class ModelError extends IccError {
  constructor(code: string, message: string, options: Omit<IccErrorOptions, 'exitCode'> = {}) {
    super(code, message, {...options, exitCode: ExitCode.Model})
    this.name = 'ModelError'
  }
}

/** A required library, runtime or provider is missing (exit 5). */
export class DependencyError extends IccError {
  constructor(code: string, message: string, options: Omit<IccErrorOptions, 'exitCode'> = {}) {
    super(code, message, {...options, exitCode: ExitCode.Dependency})
    this.name = 'DependencyError'
  }
}

/** An AWS call failed in a way the user can act on (exit 3). */
export class AwsError extends IccError {
  constructor(code: string, message: string, options: Omit<IccErrorOptions, 'exitCode'> = {}) {
    super(code, message, {...options, exitCode: ExitCode.AwsError})
    this.name = 'AwsError'
  }
}

/**
 * Something icc did not expect (a bug, not a user's mistake): it keeps the original error as its cause, stack
 * included, and asks the user to report it (exit 1). Shopify cli-kit's BugError beside AbortError is the model.
 */
export class BugError extends IccError {
  constructor(message: string, options: Pick<IccErrorOptions, 'cause' | 'details'> = {}) {
    super('BUG', message, {
      ...options,
      exitCode: ExitCode.Failure,
      suggestions: [
        'This looks like a bug in icc. Please report it with the command you ran and this output ' +
          '(ICC_DEBUG=1 prints the stack).',
      ],
    })
    this.name = 'BugError'
  }
}

/** Wrap anything that is not already a typed error as a {@link BugError} that keeps it as its cause. */
export function asIccError(error: unknown, context: string): IccError {
  if (error instanceof IccError) return error
  const message = error instanceof Error ? error.message : String(error)
  return new BugError(`${context}: ${message}`, {cause: error})
}

export function isIccError(error: unknown): error is IccError {
  return error instanceof IccError
}
