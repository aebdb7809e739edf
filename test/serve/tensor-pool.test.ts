// @tier unit: needs neither ../shared nor child processes (npm run test:unit)
/**
 * The runner's input tensor pool (src/serve/tensor-pool.ts): tensors come back for reuse, the pool stays bounded,
 * and the runner's use of it (decode into a taken tensor, run, give back) leaves the answers unchanged.
 */
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'

import {preprocessImage, preprocessInto} from '../../src/model/preprocess.js'
import {TensorPool} from '../../src/serve/tensor-pool.js'
import {REPO_ROOT} from '../helpers/cli.js'

describe('runner tensor pool', () => {
  it('hands back the tensors it was given, newest first, and allocates when empty', () => {
    const pool = new TensorPool(12, 2)
    const a = pool.take()
    const b = pool.take()
    assert.notEqual(a, b)
    assert.equal(a.length, 12)
    assert.equal(pool.held, 0)
    pool.give(a)
    pool.give(b)
    assert.equal(pool.held, 2)
    assert.equal(pool.take(), b)
    assert.equal(pool.take(), a)
    const c = pool.take()
    assert.notEqual(c, a)
    assert.notEqual(c, b)
  })

  it('keeps at most `keep` tensors, ignores other sizes and a tensor given twice', () => {
    const pool = new TensorPool(8, 2)
    const [a, b, c] = [pool.take(), pool.take(), pool.take()]
    pool.give(a)
    pool.give(a)
    assert.equal(pool.held, 1)
    pool.give(new Float32Array(9))
    assert.equal(pool.held, 1)
    pool.give(b)
    pool.give(c)
    assert.equal(pool.held, 2)
    const none = new TensorPool(8, 0)
    none.give(none.take())
    assert.equal(none.held, 0)
  })

  it('keeps one input buffer per batch size', () => {
    const pool = new TensorPool(5, 1)
    const two = pool.batch(2)
    assert.equal(two.length, 10)
    assert.equal(pool.batch(2), two)
    assert.equal(pool.batch(3).length, 15)
    assert.notEqual(pool.batch(3), two)
  })

  it('refuses sizes that cannot be right', () => {
    assert.throws(() => new TensorPool(0, 1), RangeError)
    assert.throws(() => new TensorPool(1.5, 1), RangeError)
    assert.throws(() => new TensorPool(4, -1), RangeError)
  })

  it('a reused tensor holds exactly the next image, nothing of the one before', async () => {
    // what the runner does: decode into a taken tensor, give it back after the run, decode the next image into it
    const options = {channels: 3, height: 32, width: 32}
    const dir = join(REPO_ROOT, 'assets', 'samples')
    const [first, second] = ['sky.jpg', 'grass.png'].map((f) => readFileSync(join(dir, f)))
    const pool = new TensorPool(3 * 32 * 32, 1)
    const tensor = await pool.fill((t) => preprocessInto(first, options, t, 0))
    assert.deepEqual(tensor, await preprocessImage(first, options))
    pool.give(tensor)
    const again = await pool.fill((t) => preprocessInto(second, options, t, 0))
    assert.equal(again, tensor)
    assert.deepEqual(again, await preprocessImage(second, options))
  })

  it('gives the tensor back when the image cannot be written into it, and the error goes on', async () => {
    const pool = new TensorPool(3 * 32 * 32, 1)
    const garbage = Buffer.from('not an image at all')
    await assert.rejects(
      pool.fill((t) => preprocessInto(garbage, {channels: 3, height: 32, width: 32}, t, 0)),
      /not a JPEG or PNG image/,
    )
    assert.equal(pool.held, 1)
  })
})
