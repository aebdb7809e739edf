/**
 * The base class of every icc command, and the one place where the library's typed errors become CLI errors.
 *
 * Commands stay thin: parse flags, call one function from `src/` with a plain options object, return its typed
 * result. With `--json`, oclif prints the returned object; on failure, `toErrorJson` prints
 * `{"error":{"code","message","suggestions",...}}` and the process exits with the error's documented exit code.
 */
import {Command, Errors} from '@oclif/core'
import {closest} from 'fastest-levenshtein'

import {isIccError, UsageError} from '../src/errors.js'

/** The stack of an error and of its causes, for ICC_DEBUG=1. */
function stackOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  return error.cause === undefined
    ? (error.stack ?? error.message)
    : `${error.stack}\ncaused by: ${stackOf(error.cause)}`
}

export abstract class BaseCommand extends Command {
  static override enableJsonFlag = true

  /** Map any error to an oclif error with the right exit code and suggestions; never print secrets. */
  protected override async catch(error: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<unknown> {
    // (a flag's own parse function throws a plain Error, which oclif prefixes with "Parsing --flag")
    const parseError = error instanceof Errors.CLIError || (error.message ?? '').startsWith('Parsing --')
    if (parseError && !isIccError(error)) {
      const usage = this.usageError(error)
      if (usage) return this.catch(usage)
    }

    if (isIccError(error)) {
      if (error.code === 'BUG' && process.env.ICC_DEBUG) this.logToStderr(stackOf(error.cause ?? error))
      if (this.jsonEnabled()) {
        this.logJson({error: error.toJSON()})
        this.exit(error.exitCode)
      }

      throw new Errors.CLIError(error.message, {
        code: error.code,
        exit: error.exitCode,
        suggestions: error.suggestions,
      })
    }

    return super.catch(error)
  }

  /**
   * oclif's own parse errors (unknown flag, missing argument, a flag value of the wrong type) as usage errors
   * (exit 2) with a specific code, the same with and without `--json`; an unknown flag gets a "did you mean".
   */
  private usageError(error: Error & {flags?: string[]}): undefined | UsageError {
    const message = error.message.replace(/\s*See more help with --help\s*$/, '').trim()
    const help = `Run ${this.config.bin} ${this.id ?? ''} --help for the flags and arguments.`.replace('  ', ' ')
    const kind = error.constructor.name
    if (kind === 'NonExistentFlagsError') {
      const known = Object.keys(this.ctor.flags ?? {}).map((f) => `--${f}`)
      const guesses = (error.flags ?? []).map((f) => closest(f.split('=')[0], known)).filter(Boolean)
      const suggestions = [...new Set(guesses)].map((g) => `Did you mean ${g}?`)
      return new UsageError('UNKNOWN_FLAG', message, {suggestions: [...suggestions, help]})
    }

    const codes: Record<string, string> = {
      ArgInvalidOptionError: 'INVALID_ARGUMENT',
      FailedFlagValidationError: 'INVALID_FLAG',
      FlagInvalidOptionError: 'INVALID_FLAG_VALUE',
      RequiredArgsError: 'MISSING_ARGUMENT',
      UnexpectedArgsError: 'UNEXPECTED_ARGUMENT',
      ViolatedFlagConstraintError: 'INVALID_FLAG',
    }
    const missingFlag = /Missing required flag/.test(message) ? 'MISSING_FLAG' : undefined
    const code = missingFlag ?? codes[kind] ?? (message.startsWith('Parsing --') ? 'INVALID_FLAG_VALUE' : undefined)
    if (code) return new UsageError(code, message.replaceAll(/\s*\n\t/g, ': '), {suggestions: [help]})
    return undefined
  }

  protected override toErrorJson(error: unknown): unknown {
    if (isIccError(error)) return {error: error.toJSON()}
    const err = error as {code?: string; message?: string}
    return {error: {code: err.code ?? 'ERROR', message: err.message ?? String(error), suggestions: []}}
  }
}
