/**
 * The one yes/no question of the CLI, asked on the terminal for the library's `confirm` callbacks (install-deps,
 * check-role --fix). The library never reads a terminal: a command passes this in only when it has one.
 */
import {createInterface} from 'node:readline/promises'

/** A `confirm` callback when stdin and stderr are terminals and output is not --json; undefined otherwise. */
export function terminalConfirm(json: boolean): ((question: string) => Promise<boolean>) | undefined {
  if (json || !process.stdin.isTTY || !process.stderr.isTTY) return undefined
  return async (question) => {
    const rl = createInterface({input: process.stdin, output: process.stderr})
    try {
      return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim())
    } finally {
      rl.close()
    }
  }
}
