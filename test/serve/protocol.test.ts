// @tier unit: needs neither ../shared nor child processes (npm run test:unit)
/**
 * The host <-> runner frame protocol and the connector body format, checked on their own.
 */
import assert from 'node:assert/strict'
import {PassThrough, Writable} from 'node:stream'

import {formatConnectorBody, formatFloat32, topK} from '../../src/serve/format.js'
import {type Frame, FrameDecoder, payloadToFloat32, writeFrame} from '../../src/serve/protocol.js'

describe('serve protocol and format', () => {
  it('round-trips frames with binary payloads however the stream splits them', () => {
    const stream = new PassThrough()
    const bytes: Buffer[] = []
    stream.on('data', (c: Buffer) => bytes.push(c))
    const image = Buffer.from(Array.from({length: 3000}, (_, i) => (i * 7) % 256))
    const probs = new Float32Array([0.25, 0.5, 0.125, 0.125])
    writeFrame(stream, {id: 1, t: 'infer'}, image)
    writeFrame(stream, {id: 2, t: 'result'}, new Uint8Array(probs.buffer))
    writeFrame(stream, {id: 3, t: 'ready'})
    const all = Buffer.concat(bytes)
    for (const step of [1, 5, 13, all.length]) {
      const frames: Frame<{id: number; t: string}>[] = []
      const decoder = new FrameDecoder<{id: number; t: string}>((f) => frames.push(f))
      for (let i = 0; i < all.length; i += step) decoder.push(all.subarray(i, i + step))
      assert.deepEqual(
        frames.map((f) => f.header),
        [
          {id: 1, t: 'infer'},
          {id: 2, t: 'result'},
          {id: 3, t: 'ready'},
        ],
      )
      assert.deepEqual(frames[0].payload, image)
      assert.deepEqual([...payloadToFloat32(frames[1].payload)], [...probs])
      assert.equal(frames[2].payload.length, 0)
    }
  })

  it('hands a frame to the stream in one writev, and the frames of a corked run together', () => {
    // what node:net does with it: one writev system call, so the reader is not woken up for the prefix alone
    const calls: {chunks: number; via: string}[] = []
    const stream = new Writable({
      write(_chunk, _encoding, callback) {
        calls.push({chunks: 1, via: 'write'})
        callback()
      },
      writev(chunks, callback) {
        calls.push({chunks: chunks.length, via: 'writev'})
        callback()
      },
    })
    writeFrame(stream, {id: 1, t: 'infer'}, Buffer.alloc(5000, 1))
    stream.cork()
    writeFrame(stream, {id: 2, t: 'result'}, new Uint8Array(4000))
    writeFrame(stream, {id: 3, t: 'result'}, new Uint8Array(4000))
    stream.uncork()
    writeFrame(stream, {id: 4, t: 'ready'})
    assert.deepEqual(calls, [
      {chunks: 2, via: 'writev'},
      {chunks: 4, via: 'writev'},
      {chunks: 1, via: 'write'},
    ])
    assert.equal(stream.writableCorked, 0)
  })

  it('rejects a frame length that cannot be right', () => {
    const decoder = new FrameDecoder(() => {})
    const head = Buffer.alloc(8)
    head.writeUInt32BE(0xff_ff_ff_f0, 0)
    assert.throws(() => decoder.push(head), /protocol error/)
  })

  it('prints each probability as the shortest decimal that parses back to the same float32', () => {
    const values = new Float32Array([0.1, 1 / 3, 1e-8, 0.999_999_9, 0, 1, 2 ** -30, 0.300_000_01])
    const body = formatConnectorBody(values)
    assert.match(body, /^\[[^\s]+\]$/)
    const parsed = body.slice(1, -1).split(',').map(Number)
    assert.deepEqual(
      parsed.map((v) => Math.fround(v)),
      [...values],
    )
    assert.equal(formatFloat32(0.1), '0.1')
    assert.equal(formatFloat32(0.5), '0.5')
    for (const [i, s] of body.slice(1, -1).split(',').entries()) {
      // one digit fewer would not round-trip
      const digits = s.replaceAll(/^0\.0*|e.*$|\./g, '').length
      if (digits > 1) assert.notEqual(Math.fround(Number(Number(s).toPrecision(digits - 1))), values[i], s)
    }
  })

  it('ranks the top classes with labels', () => {
    const top = topK(new Float32Array([0.1, 0.6, 0.3]), 2, ['red', 'green', 'blue'])
    assert.deepEqual(top, [
      {index: 1, label: 'green', probability: 0.6},
      {index: 2, label: 'blue', probability: 0.3},
    ])
  })
})
