// @tier unit: needs neither ../shared nor child processes (npm run test:unit)
/**
 * The runner's decode memory budget (src/serve/decode-admission.ts) and the estimate it admits by
 * (src/model/decode-memory.ts): decodes that fit run together, a big one waits its turn in arrival order, one that
 * cannot fit alone is refused with the sizes, and the estimate follows the header (progressive, 16-bit, shrink).
 */
import assert from 'node:assert/strict'
import sharp from 'sharp'

import {isIccError} from '../../src/errors.js'
import {decodeMemoryBytes} from '../../src/model/decode-memory.js'
import {readImageHeader} from '../../src/model/image-header.js'
import {DecodeAdmission} from '../../src/serve/decode-admission.js'

const MB = 1024 * 1024
const size = {height: 100, width: 100}

describe('decode admission (the runner memory budget)', () => {
  it('runs decodes that fit together; a big one waits, in arrival order, until the memory is given back', async () => {
    const admission = new DecodeAdmission(100 * MB, 200 * MB, 300_000)
    const a = await admission.reserve(40 * MB, size)
    const b = await admission.reserve(40 * MB, size)
    assert.equal(admission.held, 80 * MB)
    const order: string[] = []
    const big = admission.reserve(90 * MB, size).then((release) => {
      order.push('big')
      return release
    })
    // a small one behind the big one waits too (arrival order: the big one is not starved)
    const small = admission.reserve(MB, size).then((release) => {
      order.push('small')
      return release
    })
    await new Promise((r) => {
      setImmediate(r)
    })
    assert.deepEqual(order, [])
    a()
    a() // released once only
    await new Promise((r) => {
      setImmediate(r)
    })
    assert.deepEqual(order, [])
    b()
    const releaseBig = await big
    const releaseSmall = await small
    assert.deepEqual(order, ['big', 'small'])
    assert.equal(admission.held, 91 * MB)
    releaseBig()
    releaseSmall()
    assert.equal(admission.held, 0)
  })

  it('lets one decode over the shared budget run alone, and refuses one over what the runner has alone', async () => {
    const admission = new DecodeAdmission(100 * MB, 200 * MB, 300_000)
    const alone = await admission.reserve(150 * MB, size)
    alone()
    await assert.rejects(admission.reserve(250 * MB, {height: 7000, width: 7000}), (error: unknown) => {
      assert.ok(isIccError(error))
      assert.equal(error.code, 'IMAGE_TOO_LARGE')
      assert.match(
        error.message,
        /too large for the memory limit: decoding its 7000x7000 pixels needs about 250 MB, and the runner has 200 MB .*LocalInferenceServiceMemoryLimitKB=300000/,
      )
      return true
    })
    assert.equal(admission.held, 0)
  })

  it('estimates from the header: progressive JPEG coefficients, 16-bit interlaced PNG, shrink-on-load in fast mode', async () => {
    const create = {background: {b: 3, g: 2, r: 1}, channels: 3 as const, height: 2000, width: 3000}
    const estimate = async (bytes: Buffer, type: 'image/jpeg' | 'image/png', mode: 'exact' | 'fast' = 'exact') =>
      decodeMemoryBytes(readImageHeader(bytes, type), {height: 224, mode, width: 224})
    const pixels = 3000 * 2000
    const baseline = await estimate(await sharp({create}).jpeg().toBuffer(), 'image/jpeg')
    assert.equal(baseline, Math.ceil(pixels * 3 * 1.15))
    // 4:2:0: 1.5 planes of 2-byte coefficients on top
    const progressive = await estimate(await sharp({create}).jpeg({progressive: true}).toBuffer(), 'image/jpeg')
    assert.equal(progressive, Math.ceil((pixels * 3 + pixels * 1.5 * 2) * 1.15))
    // fast: libvips shrinks a baseline JPEG on load (3000x2000 to 224x224: by 8)
    const fast = await estimate(await sharp({create}).jpeg().toBuffer(), 'image/jpeg', 'fast')
    assert.equal(fast, Math.ceil(375 * 250 * 3 * 1.15))
    // 16-bit RGBA interlaced: the whole image at 2 bytes a sample, the 4-sample decode, its RGB copy
    const png16 = await sharp({create: {...create, background: {...create.background, alpha: 0.5}, channels: 4}})
      .toColourspace('rgb16')
      .png({progressive: true})
      .toBuffer()
    assert.equal(await estimate(png16, 'image/png'), Math.ceil((pixels * 4 + pixels * 4 * 2 + pixels * 3) * 1.15))
  })
})
