/**
 * The base class of every icc command, and the one place where the library's typed errors become CLI errors.
 *
 * Commands stay thin: parse flags, call one function from `src/` with a plain options object, return its typed
 * result. With `--json`, oclif prints the returned object; on failure, `toErrorJson` prints
 * `{"error":{"code","message","suggestions",...}}` and the process exits with the error's documented exit code.
 */
import {Command, Errors} from '@oclif/core'

import {ExitCode, isIccError} from '../src/errors.js'

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

    // oclif's own parse errors (unknown flag, missing argument) are usage errors: exit 2.
    if (error instanceof Errors.CLIError && error.oclif?.exit === undefined) {
      return super.catch(Object.assign(error, {oclif: {exit: ExitCode.Usage}}))
    }

    return super.catch(error)
  }

  protected override toErrorJson(error: unknown): unknown {
    if (isIccError(error)) return {error: error.toJSON()}
    const err = error as {code?: string; message?: string}
    return {error: {code: err.code ?? 'ERROR', message: err.message ?? String(error), suggestions: []}}
  }
}
