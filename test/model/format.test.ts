// @tier unit: needs neither ../shared nor child processes (npm run test:unit)
/**
 * The connector body's number format (src/model/format.ts): the fast path against the exact method, on values
 * chosen to be hard (every power of two and its neighbours, subnormals, the largest float32, decimal round
 * numbers, half-way cases) and on a large deterministic sample of every float32 bit pattern and of softmax-like
 * outputs.
 */
import assert from 'node:assert/strict'

import {formatFloat32, formatFloat32Exact, formatProbabilities} from '../../src/model/format.js'

const F32 = new Float32Array(1)
const U32 = new Uint32Array(F32.buffer)
const fromBits = (bits: number) => {
  U32[0] = bits >>> 0
  return F32[0]
}

/** Significant digits of a decimal string. */
const digits = (s: string) => s.replace(/e.*$/, '').replaceAll(/[^\d]/g, '').replace(/^0+/, '').length

function check(value: number): void {
  const f = Math.fround(value)
  const fast = formatFloat32(f)
  const exact = formatFloat32Exact(f)
  assert.equal(Math.fround(Number(fast)), f, `${fast} does not read back as ${f}`)
  // what JavaScript itself prints for that number: no exponent or zero padding of our own making
  assert.equal(String(Number(fast)), fast, `${fast} is not in JavaScript's own notation`)
  if (fast === exact) return
  // the exact method takes the nearest decimal of each length; next to a power of two the rounding interval is
  // lopsided and a shorter decimal on the far side can read back too: the fast path finds it
  assert.ok(digits(fast) < digits(exact), `${f}: fast ${fast} vs exact ${exact}`)
}

describe('connector number format: the fast path against the exact method', () => {
  it('every power of two, its float32 neighbours, subnormals and the largest float32', () => {
    for (let e = -149; e <= 127; e++) {
      const p = 2 ** e
      F32[0] = p
      const bits = U32[0]
      for (const b of [bits - 1, bits, bits + 1]) if (b > 0 && b < 0x7f_80_00_00) check(fromBits(b))
    }

    for (const bits of [1, 2, 3, 0x00_7f_ff_ff, 0x00_80_00_00, 0x7f_7f_ff_fe, 0x7f_7f_ff_ff]) check(fromBits(bits))
    assert.equal(formatFloat32(fromBits(0x7f_7f_ff_ff)), '3.4028235e+38')
    assert.equal(formatFloat32(fromBits(1)), '1e-45')
  })

  it('decimal round numbers, half-way cases and the notation switches (1e-7 and 1e21)', () => {
    for (let e = -45; e <= 38; e++) {
      for (const m of [1, 1.5, 2, 2.5, 3, 5, 7.5, 9.999_999, 9.999_999_9]) check(m * 10 ** e)
    }

    for (const v of [0.125, 0.375, 0.5, 0.25, 1 / 3, 2 / 3, 0.1, 0.2, 0.3, 1e-7, 9.999_999e-8, 1e21, 9.999_999e20]) {
      check(v)
      check(-v)
    }

    assert.equal(formatFloat32(1e-7), '1e-7')
    assert.equal(formatFloat32(1.5e-6), '0.0000015')
    assert.equal(formatFloat32(1e21), '1e+21')
    assert.equal(formatFloat32(123_456_789_012), '123456790000')
    assert.equal(formatFloat32(-0.1), '-0.1')
  })

  it('agrees on 300 000 float32 bit patterns and 100 000 softmax-like values', () => {
    let seed = 20_261_125
    const next = () => {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0
      return seed
    }

    for (let i = 0; i < 300_000; i++) {
      const v = fromBits(next() ^ (next() << 16))
      if (Number.isFinite(v)) check(v)
    }

    for (let i = 0; i < 100_000; i++) check(Math.exp(-(next() % 40_000) / 1000))
  })

  it('zero, negative zero and the non-finite values (as Python reads them)', () => {
    assert.equal(formatFloat32(0), '0')
    assert.equal(formatFloat32(-0), '0')
    assert.equal(formatProbabilities([Number.NaN, Infinity, -Infinity, 0.5]), '[NaN,Infinity,-Infinity,0.5]')
  })

  it('a body: each value as the one-value format, commas between, the longest notations, any length', () => {
    let seed = 7
    const values: number[] = []
    for (let i = 0; i < 100_000; i++) {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0
      values.push(fromBits(seed ^ (seed << 13)))
    }

    // the longest ones: a sign, "0.00000" and nine digits; the exponent notations at both ends of float32
    values.push(-1.234_567_9e-6, -9.999_999e-7, -1.175_494_4e-38, -3.402_823_5e38, 1e-45, Number.NaN, -Infinity, 0)
    const text = formatProbabilities(values)
    assert.equal(text, `[${values.map((v) => formatFloat32(v)).join(',')}]`)
    assert.ok(text.endsWith(',-0.0000012345679,-9.999999e-7,-1.1754944e-38,-3.4028235e+38,1e-45,NaN,-Infinity,0]'))
    const back = text.slice(1, -1).split(',').map(Number)
    assert.equal(back.length, values.length)
    for (const [i, v] of values.entries()) {
      if (Number.isNaN(v)) assert.ok(Number.isNaN(back[i]))
      else assert.equal(Math.fround(back[i]), Math.fround(v), `value ${i}`)
    }

    // a short body after the long one: nothing of the earlier one is left over
    assert.equal(formatProbabilities([0.25, 1e-7]), '[0.25,1e-7]')
  })
})
