/**
 * The host's young-generation hold (src/serve/tuning.ts, holdHostYoungGeneration), in real Node processes: set at
 * run time, it keeps V8's new space small under an allocation pattern that makes it grow otherwise (objects that
 * survive a few scavenges, as in-flight requests do); a semi-space flag of the user's wins. And the serving
 * processes' lower interrupt budget (tierUpServingCode): set at run time, a request-shaped function reaches TurboFan
 * after far fewer calls.
 */
import {execa} from 'execa'
import assert from 'node:assert/strict'
import {join} from 'node:path'

import {holdHostYoungGeneration, SERVING_INTERRUPT_BUDGET, tierUpServingCode} from '../../src/serve/tuning.js'
import {REPO_ROOT} from '../helpers/cli.js'

const TUNING = join(REPO_ROOT, 'dist', 'src', 'serve', 'tuning.js')

/** Run an ES module script in a fresh Node process (no NODE_OPTIONS) and parse the JSON it prints. */
async function inFreshNode<T>(script: string, nodeFlags: string[] = []): Promise<T> {
  const r = await execa(process.execPath, [...nodeFlags, '--input-type=module', '-e', script], {
    env: {NODE_OPTIONS: ''},
  })
  return JSON.parse(r.stdout) as T
}

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
  return inFreshNode(script)
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

/**
 * Calls, one per event-loop turn as requests come, until a request-handler-shaped function is optimized by TurboFan,
 * in a fresh Node process (optimization on the main thread, so the count does not depend on a background compile's
 * timing).
 */
async function callsToTurboFan(lower: boolean): Promise<{calls: number; set: boolean}> {
  const script = `
    import {tierUpServingCode} from ${JSON.stringify(TUNING)}
    const set = ${lower} ? tierUpServingCode([], '') : false
    function handle(req) {
      const out = {id: req.id, path: req.url.split('?')[0], type: req.headers['content-type'] ?? 'application/octet-stream'}
      if (out.path.startsWith('/services/')) out.name = out.path.slice(10, -12)
      out.timing = 'queue;dur=' + (req.id % 7).toFixed(2) + ', total;dur=' + (req.id / 3).toFixed(2)
      return JSON.stringify(out).length
    }
    const TURBOFANNED = 64 // V8's OptimizationStatus::kTurboFanned
    let calls = 0
    while (calls < 20000) {
      handle({id: calls, url: '/services/x/invocations?top_k=3', headers: {'content-type': 'image/jpeg'}})
      calls++
      await new Promise((r) => setImmediate(r))
      if (%GetOptimizationStatus(handle) & TURBOFANNED) break
    }
    console.log(JSON.stringify({calls, set}))
  `
  return inFreshNode(script, ['--allow-natives-syntax', '--no-concurrent-recompilation'])
}

describe('serving interrupt budget', () => {
  it('gets a request handler to TurboFan in far fewer calls than V8 by default', async () => {
    const [lowered, byDefault] = await Promise.all([callsToTurboFan(true), callsToTurboFan(false)])
    assert.equal(lowered.set, true)
    assert.equal(byDefault.set, false)
    assert.ok(byDefault.calls < 20_000, `never optimized by default within ${byDefault.calls} calls`)
    // the budget is ~16 times smaller; the ticks V8 wants per function are the same
    assert.ok(
      lowered.calls * 4 <= byDefault.calls,
      `budget ${SERVING_INTERRUPT_BUDGET}: ${lowered.calls} calls, V8's default: ${byDefault.calls} calls`,
    )
  })

  it('leaves an interrupt budget of the command line alone', () => {
    assert.equal(tierUpServingCode(['--interrupt-budget=100000'], ''), false)
    assert.equal(tierUpServingCode(['--interrupt_budget=8192'], ''), false)
  })
})
