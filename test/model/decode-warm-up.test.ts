/**
 * The decode pipeline's warm-up at load (src/model/decode-warm-up.ts): synthetic images go through the real
 * preprocessing (sharp's decoders, the resize, the tensor layout) with the service's own options.
 */
import assert from 'node:assert/strict'

import {warmUpDecode, warmUpPixels} from '../../src/model/decode-warm-up.js'

describe('decode warm-up', function () {
  this.timeout(60_000)

  it('decodes a JPEG at the input size twice, a larger JPEG (resized) and a PNG through the real pipeline', async () => {
    const [width, height] = [40, 30]
    const out = new Float32Array(3 * width * height)
    const infos = await warmUpDecode({channels: 3, height, width}, out)
    assert.deepEqual(
      infos.map((i) => [i.format, i.sourceWidth, i.sourceHeight]),
      [
        ['image/jpeg', width, height],
        ['image/jpeg', width, height],
        ['image/jpeg', 60, 45],
        ['image/png', width, height],
      ],
    )
    for (const i of infos) assert.ok(i.decodeMs > 0)
    // the last image is a lossless PNG at the input size: the tensor holds exactly its pixels, planar RGB
    const pixels = warmUpPixels(width, height)
    const plane = width * height
    const expected = new Float32Array(out.length)
    for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) expected[c * plane + p] = pixels[p * 3 + c]
    assert.deepEqual(out, expected)
  })

  it("uses the service's options: one channel, BGR with mean and scale, the fast resize", async () => {
    const grey = new Float32Array(16 * 16)
    const g = await warmUpDecode({channels: 1, height: 16, resize: 'fast', width: 16}, grey)
    assert.equal(g.length, 4)
    assert.ok(
      grey.some((v) => v !== grey[0]),
      'a grey tensor of the pattern, not a constant',
    )
    const spec = {channelOrder: 'BGR' as const, mean: [100], scale: 2}
    const scaled = new Float32Array(3 * 8 * 8)
    await warmUpDecode({channels: 3, height: 8, preprocessing: spec, width: 8}, scaled)
    const pixels = warmUpPixels(8, 8)
    // plane 0 is blue (BGR): (B - mean) x scale / std, as a request's
    assert.equal(scaled[0], pixels[2] * 2 - 100)
  })
})
