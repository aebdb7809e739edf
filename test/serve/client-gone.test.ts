// @tier unit: needs neither ../shared nor child processes (npm run test:unit)
/**
 * The per-request client-gone signal of both front ends (src/serve/types.ts, ClientGone), side by side with a real
 * AbortSignal: the service relies on the same behaviour from either.
 */
import assert from 'node:assert/strict'

import {ClientGone, type ClientGoneSignal} from '../../src/serve/types.js'

/** What the service sees of a signal: the calls of its listeners, and `aborted` before and after. */
function observe(signal: ClientGoneSignal, abort: () => void): {after: boolean; before: boolean; calls: string[]} {
  const calls: string[] = []
  signal.addEventListener('abort', () => calls.push('first'), {once: true})
  signal.addEventListener('abort', () => calls.push('second'), {once: true})
  const before = signal.aborted
  abort()
  abort()
  signal.addEventListener('abort', () => calls.push('late'), {once: true})
  abort()
  return {after: signal.aborted, before, calls}
}

describe('client-gone signal', () => {
  it('calls each listener once, in order, on the first abort only, and never one added afterwards, as AbortSignal does', () => {
    const controller = new AbortController()
    const reference = observe(controller.signal, () => controller.abort())
    const gone = new ClientGone()
    const ours = observe(gone, () => gone.abort())
    assert.deepEqual(reference, {after: true, before: false, calls: ['first', 'second']})
    assert.deepEqual(ours, reference)
  })
})
