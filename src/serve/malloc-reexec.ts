/**
 * The runner's malloc settings for the commands that convert a model outside `icc serve` (`convert-model`, `predict` on
 * a cold cache): a conversion frees as much as a load does, and with glibc's default thresholds that memory stays in
 * the heap (ResNet-50 `icc convert-model --quantize int8`: 265 MiB peak without the settings, 247-249 MiB with them).
 * glibc reads them only when a process starts, so the command runs again in a child process that has them; `bin/run.js`
 * calls this before oclif loads. Settings already in the environment are kept, and then nothing runs twice.
 */
import {constants} from 'node:os'

import {runnerMallocEnv} from './tuning.js'

/** The commands that run again with the settings. */
export const MALLOC_COMMANDS: ReadonlySet<string> = new Set(['convert-model', 'predict'])

/**
 * Run `argv` (process.argv's shape: node, script, args...) again with the runner's malloc settings when its command
 * converts models and the settings are not in `env` yet. Returns the child's exit code, or undefined when nothing
 * was run (the caller goes on in this process).
 */
export async function rerunWithMallocSettings(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<number | undefined> {
  const settings = runnerMallocEnv(env)
  if (!MALLOC_COMMANDS.has(argv[2]) || Object.keys(settings).every((k) => env[k] !== undefined)) return undefined
  // loaded here, not above: bin/run.js imports this module for every command, and execa takes ~100 ms to load
  const {spawn} = await import('../system.js')
  const child = spawn(process.execPath, [...process.execArgv, ...argv.slice(1)], {
    env: {...env, ...settings},
    extendEnv: false,
    inheritOutput: true,
    inheritInput: true,
  })
  const result = await child
  // a child ended by a signal: the shell's convention, 128 + the signal's number
  const signal = result.signal as keyof typeof constants.signals | undefined
  return result.exitCode ?? (signal ? 128 + constants.signals[signal] : 1)
}
