/**
 * Test helpers: run the real `icc` binary (bin/run.js over the compiled dist/) as a child process.
 */
import {execa} from 'execa'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

/** The repository root (dist/test/helpers/cli.js is three levels below it). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
export const SHARED = join(REPO_ROOT, '..', 'shared')
export const BIN = join(REPO_ROOT, 'bin', 'run.js')

export interface CliResult {
  exitCode: number
  stderr: string
  stdout: string
}

export async function icc(
  args: string[],
  options: {cwd?: string; env?: Record<string, string>; input?: string; timeoutMs?: number} = {},
): Promise<CliResult> {
  const result = await execa(process.execPath, [BIN, ...args], {
    cwd: options.cwd,
    env: {NO_COLOR: '1', ...options.env},
    input: options.input,
    reject: false,
    timeout: options.timeoutMs ?? 60_000,
  })
  return {exitCode: result.exitCode ?? -1, stderr: String(result.stderr), stdout: String(result.stdout)}
}

export async function iccJson<T = any>(
  args: string[],
  options: Parameters<typeof icc>[1] = {},
): Promise<{exitCode: number; json: T; stderr: string}> {
  const r = await icc([...args, '--json'], options)
  let json: T
  try {
    json = JSON.parse(r.stdout) as T
  } catch {
    throw new Error(`icc ${args.join(' ')} --json printed no JSON (exit ${r.exitCode}):\n${r.stdout}\n${r.stderr}`)
  }

  return {exitCode: r.exitCode, json, stderr: r.stderr}
}

/** oclif wraps error messages to the terminal width with " ›   " margins: join them back into one line. */
export function unwrap(text: string): string {
  return text.replaceAll(/\s*\n ›\s+/g, ' ')
}
