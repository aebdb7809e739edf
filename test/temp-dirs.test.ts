/**
 * The tests' temporary folders (test/helpers/model-fixtures.ts tempDir) are removed when the test process exits,
 * so that suite runs do not fill /tmp; ICC_KEEP_TEST_DIRS=1 keeps them.
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {existsSync, rmSync} from 'node:fs'
import {join} from 'node:path'

const FIXTURES = new URL('helpers/model-fixtures.js', import.meta.url).href

/** Run a Node process that makes a tempDir with a file in it and exits; the folder's path. */
function makeInChild(env: Record<string, string> = {}): string {
  const script = `
    import {writeFileSync} from 'node:fs'
    import {join} from 'node:path'
    const {tempDir} = await import(${JSON.stringify(FIXTURES)})
    const dir = await tempDir('icc-temp-dirs-')
    writeFileSync(join(dir, 'x.bin'), new Uint8Array(1024))
    process.stdout.write(dir)`
  return execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: {...process.env, ...env},
  })
}

describe('test temporary folders', () => {
  it('are removed when the test process exits, unless ICC_KEEP_TEST_DIRS=1', () => {
    const gone = makeInChild()
    assert.match(gone, /icc-temp-dirs-/)
    assert.equal(existsSync(gone), false, `${gone} is still there`)
    const kept = makeInChild({ICC_KEEP_TEST_DIRS: '1'})
    try {
      assert.ok(existsSync(join(kept, 'x.bin')), `${kept} was removed`)
    } finally {
      rmSync(kept, {force: true, recursive: true})
    }
  })
})
