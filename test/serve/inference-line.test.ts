// @tier unit: needs neither ../shared nor child processes (npm run test:unit)
/**
 * The runner's inference line (src/serve/inference-line.ts) with real asynchronous work: decodes are jobs on
 * libuv's thread pool (as sharp's are), and a run can hold the JavaScript thread the way onnxruntime-node's
 * session.run does. Checked: arrival order, batches only from decoded requests at the head, failures answered in
 * order, that decodes finishing during a blocking run all join the next batch, and the bounded wait of a decoded
 * head for the requests behind it (never for a request alone).
 */
import assert from 'node:assert/strict'
import {pbkdf2} from 'node:crypto'
import {promisify} from 'node:util'

import {InferenceLine} from '../../src/serve/inference-line.js'

const pbkdf2Async = promisify(pbkdf2)

/** A decode that is one job on the thread pool (as a sharp pipeline is): resolves with `value` when it is done. */
async function poolJob(value: string): Promise<string> {
  await pbkdf2Async(value, 'salt', 2000, 32, 'sha256')
  return value
}

/** Hold the JavaScript thread, as a synchronous ONNX Runtime run does. */
function block(ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) {
    // busy: nothing else runs on this thread meanwhile
  }
}

function delayed<T>(value: T, ms: number): Promise<T> {
  return new Promise((resolve) => {
    setTimeout(() => resolve(value), ms)
  })
}

/** A line whose runs and failures are recorded; `onRun` may add work or block during a run. */
function recorder(
  maxBatch: number,
  onRun?: (batch: string[], runIndex: number) => Promise<void> | void,
  maxWaitMs?: number,
) {
  const runs: string[][] = []
  const failures: string[] = []
  const answered: string[] = []
  let settle: () => void = () => {}
  let expected = 0
  const done = new Promise<void>((resolve) => {
    settle = resolve
  })
  const check = () => {
    if (answered.length === expected) settle()
  }

  const line = new InferenceLine<string, string>({
    fail(header, error) {
      failures.push(`${header}: ${(error as Error).message}`)
      answered.push(header)
      check()
    },
    maxBatch,
    maxWaitMs,
    async run(batch) {
      const names = batch.map((b) => b.header)
      runs.push(names)
      for (const b of batch) assert.equal(b.value, `decoded ${b.header}`)
      await onRun?.(names, runs.length - 1)
      answered.push(...names)
      check()
    },
  })
  return {
    add(header: string, decoding: Promise<string>) {
      expected++
      line.add(header, decoding)
    },
    answered,
    done,
    failures,
    line,
    runs,
  }
}

describe('InferenceLine (runner: arrival order and dynamic batching)', () => {
  it('refuses a batch size that is not a positive integer, and a negative wait', () => {
    for (const maxBatch of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => new InferenceLine({fail() {}, maxBatch, async run() {}}), /maxBatch must be/)
    }

    for (const maxWaitMs of [-1, Number.NaN]) {
      assert.throws(() => new InferenceLine({fail() {}, maxBatch: 2, maxWaitMs, async run() {}}), /maxWaitMs must be/)
    }
  })

  it('runs a lone request at once, alone', async () => {
    // however long the line would wait for company, a request alone in it never waits
    const r = recorder(4, undefined, 60_000)
    const started = performance.now()
    r.add('a', poolJob('decoded a'))
    await r.done
    assert.deepEqual(r.runs, [['a']])
    assert.ok(performance.now() - started < 1000, `the lone request took ${performance.now() - started} ms`)
  })

  it('lets a decoded head wait for the request behind it that is still decoding, so both share a run', async () => {
    const r = recorder(2, undefined, 5000)
    r.add('a', Promise.resolve('decoded a'))
    r.add('b', delayed('decoded b', 60))
    await r.done
    assert.deepEqual(r.runs, [['a', 'b']])
  })

  it('waits for the requests already in the line up to maxBatch, not for more', async () => {
    const r = recorder(4, undefined, 5000)
    r.add('a', Promise.resolve('decoded a'))
    r.add('b', delayed('decoded b', 30))
    r.add('c', delayed('decoded c', 60))
    await r.done
    assert.deepEqual(r.runs, [['a', 'b', 'c']])
  })

  it('waits no longer than maxWaitMs: a slow decode delays the head only that long', async () => {
    const times: number[] = []
    const started = performance.now()
    const r = recorder(
      2,
      () => {
        times.push(performance.now() - started)
      },
      40,
    )
    r.add('a', Promise.resolve('decoded a'))
    r.add('b', delayed('decoded b', 400))
    await r.done
    assert.deepEqual(r.runs, [['a'], ['b']])
    assert.ok(times[0] >= 35 && times[0] < 300, `the head ran after ${times[0]} ms, not after ~40 ms`)
  })

  it('keeps arrival order: a request decoded early waits for the ones ahead of it', async () => {
    const r = recorder(1)
    r.add('a', delayed('decoded a', 60))
    r.add('b', Promise.resolve('decoded b'))
    r.add('c', delayed('decoded c', 20))
    await r.done
    assert.deepEqual(r.runs, [['a'], ['b'], ['c']])
  })

  it('batches only decoded requests at the head, at most maxBatch per run', async () => {
    const r = recorder(2)
    // the head is slow: everything behind it is decoded by the time it is, so runs of 2, 2, 1 follow
    r.add('a', delayed('decoded a', 80))
    for (const name of ['b', 'c', 'd', 'e']) r.add(name, Promise.resolve(`decoded ${name}`))
    await r.done
    assert.deepEqual(r.runs, [['a', 'b'], ['c', 'd'], ['e']])
    assert.equal(r.line.length, 0)
  })

  it('answers a failed decode in its place in the line, and the others are run', async () => {
    const r = recorder(3)
    r.add('a', delayed('decoded a', 40))
    r.add('bad', Promise.reject(new Error('not an image')))
    r.add('c', Promise.resolve('decoded c'))
    // nothing is answered before the head is decoded, not even the failure behind it
    await delayed(undefined, 20)
    assert.deepEqual(r.answered, [])
    await r.done
    assert.deepEqual(r.failures, ['bad: not an image'])
    // the failure is answered on the way; the requests around it share one run
    assert.deepEqual(r.runs, [['a', 'c']])
  })

  it('goes on after a run that fails', async () => {
    const r = recorder(1, (batch) => {
      if (batch[0] === 'a') throw new Error('session failed')
    })
    r.add('a', Promise.resolve('decoded a'))
    r.add('b', Promise.resolve('decoded b'))
    // 'a' is never answered by the recorder (its run threw), so wait for 'b' only
    await new Promise((resolve) => {
      setTimeout(resolve, 100)
    })
    assert.deepEqual(r.runs, [['a'], ['b']])
    assert.deepEqual(r.answered, ['b'])
  })

  it('puts every decode that finished during a blocking run into the next batch', async () => {
    // during the first run two decodes start and finish on the thread pool while the run holds the JavaScript
    // thread: they can only report afterwards, one after the other, and must still share the next run
    const r = recorder(2, (_batch, i) => {
      if (i !== 0) return
      r.add('b', poolJob('decoded b'))
      r.add('c', poolJob('decoded c'))
      block(300)
    })
    r.add('a', Promise.resolve('decoded a'))
    await r.done
    assert.deepEqual(r.runs, [['a'], ['b', 'c']])
  })

  it('puts decodes that finish together while the line is idle into one batch', async () => {
    // the thread is held by something else (another image's tensor, a garbage collection) while two decodes finish
    const r = recorder(2)
    r.add('a', poolJob('decoded a'))
    r.add('b', poolJob('decoded b'))
    block(300)
    await r.done
    assert.deepEqual(r.runs, [['a', 'b']])
  })

  it('adds a decode that finished during a blocking run to a request already decoded before it', async () => {
    // 'b' is decoded before the run ends; 'c' finishes on the thread pool during it: one run of 2, not 1 + 1
    const r = recorder(2, (_batch, i) => {
      if (i !== 0) return
      r.add('b', Promise.resolve('decoded b'))
      r.add('c', poolJob('decoded c'))
      block(300)
    })
    r.add('a', Promise.resolve('decoded a'))
    await r.done
    assert.deepEqual(r.runs, [['a'], ['b', 'c']])
  })
})
