/**
 * The short version of `npm run soak` (test/bench/soak.ts): a few seconds of concurrent load on the real
 * `icc serve` with the bundled default model, then an overload burst. Checks answers, not speed: every request
 * answered exactly once, no error but deliberate backpressure, and 503 OVERLOADED with Retry-After beyond the
 * queue limit. (Latency and RSS growth are reported by `npm run soak`, not asserted here.)
 */
import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {runSoak} from '../bench/soak.js'

describe('soak (short)', function () {
  this.timeout(180_000)
  let cacheDir: string
  before(async () => {
    cacheDir = await mkdtemp(join(tmpdir(), 'icc-soak-cache-'))
  })
  after(async () => {
    await rm(cacheDir, {force: true, recursive: true})
  })

  it('answers every request of 8 concurrent clients for 3 s, then sheds an overload burst with 503 + Retry-After', async () => {
    const r = await runSoak({cacheDir, concurrency: 8, durationMs: 3000, queueLimit: 4, warmupMs: 500})
    assert.ok(r.requests > 8, `only ${r.requests} requests`)
    assert.equal(r.unexpected, 0, JSON.stringify(r.answers))
    assert.equal(
      Object.values(r.answers).reduce((a, b) => a + b, 0),
      r.requests,
    )
    assert.ok(r.overload.overloaded > 0, JSON.stringify(r.overload))
    assert.equal(r.overload.withRetryAfter, r.overload.overloaded)
    assert.ok(r.overload.answered - r.overload.overloaded > 0, 'the admitted requests of the burst were served')
  })
})
