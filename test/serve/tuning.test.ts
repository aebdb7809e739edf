import {execa} from 'execa'
/**
 * The host's young-generation hold (src/serve/tuning.ts, holdHostYoungGeneration), in real Node processes: set at
 * run time, it keeps V8's new space small under an allocation pattern that makes it grow otherwise (objects that
 * survive a few scavenges, as in-flight requests do); a semi-space flag of the user's wins.
 */
import assert from 'node:assert/strict'
import {join} from 'node:path'

import {holdHostYoungGeneration} from '../../src/serve/tuning.js'
import {REPO_ROOT} from '../helpers/cli.js'

const TUNING = join(REPO_ROOT, 'dist', 'src', 'serve', 'tuning.js')

/** New space size (MB) of a fresh Node process after a churn of short-lived objects, some surviving a while. */
async function newSpaceAfterChurn(hold: boolean): Promise<{after: number; before: number; held: boolean}> {
  const script = `
    import v8 from 'node:v8'
    import {holdHostYoungGeneration} from ${JSON.stringify(TUNING)}
    const size = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size / 1048576
    const before = size()
    const held = ${hold} ? holdHostYoungGeneration([], '') : false
    let alive = []
    for (let i = 0; i < 1_500_000; i++) {
      alive.push({i, s: 'request ' + i})
      if (alive.length > 20_000) alive = []
    }
    console.log(JSON.stringify({after: size(), before, held}))
  `
  const r = await execa(process.execPath, ['--input-type=module', '-e', script], {env: {NODE_OPTIONS: ''}})
  return JSON.parse(r.stdout)
}

describe('host young generation hold', () => {
  it('keeps the new space small (without it, the same churn grows it to its maximum)', async () => {
    const [held, free] = await Promise.all([newSpaceAfterChurn(true), newSpaceAfterChurn(false)])
    assert.equal(held.held, true)
    // V8 still takes its first step (1 -> 2 MB on Node 20), then stops; unheld it doubles up to 32 MB
    assert.ok(held.after <= 2 * held.before, `held: ${held.before} -> ${held.after} MB`)
    assert.ok(free.after >= 4 * held.after, `unheld: ${free.before} -> ${free.after} MB (held: ${held.after} MB)`)
  })

  it('leaves a semi-space setting of the command line or NODE_OPTIONS alone', () => {
    assert.equal(holdHostYoungGeneration(['--max-semi-space-size=8'], ''), false)
    assert.equal(holdHostYoungGeneration([], '--max-old-space-size=512 --min-semi-space-size=4'), false)
    assert.equal(holdHostYoungGeneration(['--semi_space_growth_factor=3'], ''), false)
  })
})
