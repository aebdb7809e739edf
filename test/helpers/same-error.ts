/**
 * The check that an exporter rejects a parameters file exactly as `icc create-connector` does: both exit 2 with
 * the same message (create-connector as a dry run for the x86_64 connector, the exporter with `--platform x86_64`).
 */
import assert from 'node:assert/strict'

import {iccJson} from './cli.js'

export async function assertSameParameterError(command: string, badFile: string, extra: string[]): Promise<string> {
  const created = await iccJson([
    'create-connector',
    '--platform',
    'x86_64',
    '--region',
    'us-west-2',
    '--parameters',
    badFile,
    '--dry-run',
  ])
  const exported = await iccJson([command, '--platform', 'x86_64', '--parameters', badFile, ...extra])
  assert.equal(created.exitCode, 2)
  assert.equal(exported.exitCode, 2)
  assert.equal(exported.json.error.message, created.json.error.message)
  return created.json.error.message as string
}
