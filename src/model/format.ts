/**
 * The connector's response body, `[p0,p1,...]` with no spaces, where each value is the shortest decimal that
 * reads back (as a JavaScript or Python float, then float32) as the same float32: clients lose nothing and bodies
 * stay short. Non-finite values are written `NaN`, `Infinity`, `-Infinity`, which Python's `json.loads` reads.
 *
 * This runs once per class on every response of `icc serve`, on the host's event loop and on the critical path
 * of each request, so it avoids the costly part of the obvious method (`toPrecision(d)` + `Number()` per digit
 * count, ~0.5 µs a value, 0.5-1 ms for a 1000-class model): it scales the value and the two ends of its float32
 * rounding interval to nine integer digits with exact powers of ten and picks the fewest digits whose nearest
 * candidate lies inside the interval, with plain double arithmetic. The scaled figures carry a rounding error
 * below 1e-6 of a unit of the ninth digit; whenever a decision falls within 1e-4 of a unit of a boundary (a
 * candidate near an end of the interval, or a value half-way between two candidates) the value is handed to the
 * exact method ({@link formatFloat32Exact}), so the result never depends on that error. The digits are written as
 * ASCII bytes into one reused buffer, read out once as a flat string: no string per value, no concatenation.
 * 1000 softmax outputs take ~0.1 ms (0.2 ms with strings per value, 1.2 ms by the exact method).
 */

const F32 = new Float32Array(1)
const U32 = new Uint32Array(F32.buffer)

/** Exact powers of ten as doubles (10^22 is the last one a double holds exactly). */
const POW10 = Array.from({length: 23}, (_, i) => 10 ** i)

/** x * 10^p in at most four correctly rounded steps (so the relative error stays below 5 * 2^-53). */
function scale10(x: number, p: number): number {
  let v = x
  let q = p
  while (q > 22) {
    v *= POW10[22]
    q -= 22
  }

  while (q < -22) {
    v /= POW10[22]
    q += 22
  }

  return q >= 0 ? v * POW10[q] : v / POW10[-q]
}

const LOG10_2 = Math.log10(2)

/** Margin, in units of the ninth significant digit, under which a decision is left to the exact method. */
const EPS = 1e-4

/**
 * Shortest decimal that reads back as the same float32, by the exact method: the nearest decimal of 1, 2, ... 9
 * significant digits (`toPrecision`) until one reads back. Slow (up to nine conversions); kept as the reference
 * for the fast path and for the rare values that the fast path cannot decide.
 */
export function formatFloat32Exact(value: number): string {
  const f = Math.fround(value)
  if (!Number.isFinite(f)) return Number.isNaN(f) ? 'NaN' : f > 0 ? 'Infinity' : '-Infinity'
  if (f === 0) return '0'
  for (let digits = 1; digits <= 9; digits++) {
    const n = Number(f.toPrecision(digits))
    if (Math.fround(n) === f) return String(n)
  }

  return String(f) // not reached: nine digits always read back for float32
}

/** Shortest decimal string that reads back as the same float32 (see the module comment). */
export function formatFloat32(value: number): string {
  const n = writeFloat32(SCRATCH, 0, value)
  return SCRATCH.toString('latin1', 0, n)
}

/** Room for one value: the longest is `-0.00000` + nine digits (17 bytes); with margin. */
const MAX_VALUE_BYTES = 24
const SCRATCH = Buffer.allocUnsafe(MAX_VALUE_BYTES)

/** Write the shortest decimal of a float32 as ASCII at `pos`; return the position after it. */
function writeFloat32(out: Buffer, pos: number, value: number): number {
  const f = Math.fround(value)
  if (f === 0) {
    out[pos] = 0x30
    return pos + 1
  }

  if (!shortest(f)) return pos + out.write(formatFloat32Exact(f), pos, 'latin1')
  let p = pos
  if (f < 0) out[p++] = 0x2d
  return writeDecimal(out, p, best.digits, best.exponent)
}

/** The shortest candidate found so far by {@link shortest}: `digits x 10^exponent` (no allocation per value). */
const best = {digits: 0, exponent: 0}

/**
 * The fast path: set `best` to the shortest decimal of |f| and return true, or return false when it cannot
 * decide safely (and for NaN, infinities and the largest float32, whose interval is open above).
 */
function shortest(value: number): boolean {
  const f = Math.abs(value)
  F32[0] = f
  const bits = U32[0]
  if (bits >= 0x7f_7f_ff_ff || bits === 0) return false
  U32[0] = bits + 1
  const next = F32[0]
  U32[0] = bits - 1
  const previous = F32[0] // 0 below the smallest subnormal
  // the float32 rounding interval: exact in double (25 significant bits at most); its ends round to even
  const lo = (previous + f) / 2
  const hi = (f + next) / 2
  // decimal exponent of f: f = 0.d1d2... x 10^(k+1) with d1 != 0; the estimate may be off by one
  // from the binary exponent (normal numbers): log10(f) is within [E, E + 1) x log10(2), so this is k or k - 1
  const biased = bits >>> 23
  let k = biased === 0 ? Math.floor(Math.log10(f)) : Math.floor((biased - 127) * LOG10_2)
  let v = scale10(f, 8 - k)
  if (v >= 1e9) {
    k++
    v = scale10(f, 8 - k)
  } else if (v < 1e8) {
    k--
    v = scale10(f, 8 - k)
  }

  const vlo = scale10(lo, 8 - k)
  const vhi = scale10(hi, 8 - k)
  // Fewest digits: with a candidate spacing under the interval's width a candidate is always inside, so start
  // there, then drop digits while a candidate is still inside (if none of d digits is, none of d - 1 is: those
  // are d-digit decimals too).
  let d = 9
  while (d > 1 && POW10[10 - d] < vhi - vlo - 2 * EPS) d--
  let ok = false
  for (; d >= 1; d--) {
    const unit = POW10[9 - d]
    const x = v / unit
    const floor = Math.floor(x)
    const frac = x - floor
    if (Math.abs(frac - 0.5) * unit < EPS) return false // half-way between two candidates
    // the nearest candidate first, then the other neighbour (the interval is lopsided at powers of two)
    const near = frac < 0.5 ? floor : floor + 1
    const chosen = pick(near, frac < 0.5 ? floor + 1 : floor, unit, vlo, vhi)
    if (chosen === UNSURE) return false
    if (chosen === NONE) break
    ok = true
    best.digits = chosen
    best.exponent = k + 1 - d
  }

  return ok
}

/** What {@link pick} returns when neither candidate is inside, or when one is too close to an end to tell. */
const NONE = -1
const UNSURE = -2

/**
 * The first of two candidates (in units of `unit` of the scaled figures) inside the scaled interval (vlo, vhi) by
 * more than the safety margin; NONE when both are outside by more than it, UNSURE otherwise.
 */
function pick(first: number, second: number, unit: number, vlo: number, vhi: number): number {
  const a = inside(first * unit, vlo, vhi)
  if (a !== NONE) return a === UNSURE ? UNSURE : first
  const b = inside(second * unit, vlo, vhi)
  return b === UNSURE ? UNSURE : b === NONE ? NONE : second
}

/** 0 when c is inside (vlo, vhi) by more than the margin, NONE when outside by more, UNSURE otherwise. */
function inside(c: number, vlo: number, vhi: number): number {
  if (c > vlo + EPS && c < vhi - EPS) return 0
  return c >= vlo - EPS && c <= vhi + EPS ? UNSURE : NONE
}

/** The digits of the value being written, right-aligned (nine at most). */
const DIGITS = new Uint8Array(9)

/**
 * `digits x 10^exponent` (digits < 10^9) written as JavaScript writes that number (Number::toString), as ASCII
 * at `pos`, without building strings; returns the position after it.
 */
function writeDecimal(out: Buffer, pos: number, digits: number, exponent: number): number {
  let d = digits | 0 // below 10^9: int32 arithmetic
  let e = exponent
  let q = (d / 10) | 0
  while (d === q * 10) {
    d = q
    q = (d / 10) | 0
    e++
  }

  let k = 0 // significant digits, at the end of DIGITS
  while (d > 0) {
    q = (d / 10) | 0
    DIGITS[8 - k++] = 0x30 + d - q * 10
    d = q
  }

  const s = 9 - k // DIGITS[s + i] is the i-th digit
  const n = e + k // the value is 0.DIGITS x 10^n
  let p = pos
  if (k <= n && n <= 21) {
    for (let i = 0; i < k; i++) out[p++] = DIGITS[s + i]
    for (let i = k; i < n; i++) out[p++] = 0x30
  } else if (n > 0 && n <= 21) {
    for (let i = 0; i < k; i++) {
      if (i === n) out[p++] = 0x2e
      out[p++] = DIGITS[s + i]
    }
  } else if (n > -6 && n <= 0) {
    out[p++] = 0x30
    out[p++] = 0x2e
    for (let i = n; i < 0; i++) out[p++] = 0x30
    for (let i = 0; i < k; i++) out[p++] = DIGITS[s + i]
  } else {
    out[p++] = DIGITS[s]
    if (k > 1) out[p++] = 0x2e
    for (let i = 1; i < k; i++) out[p++] = DIGITS[s + i]
    out[p++] = 0x65 // e
    const exp = n - 1
    out[p++] = exp < 0 ? 0x2d : 0x2b
    const a = Math.abs(exp)
    if (a >= 10) out[p++] = 0x30 + Math.floor(a / 10)
    out[p++] = 0x30 + (a % 10)
  }

  return p
}

/** Scratch space of the body writer, grown to the largest body so far. */
let body = Buffer.allocUnsafe(1024 * MAX_VALUE_BYTES + 2)

/**
 * The connector's response body: `[p0,p1,...]`, no spaces, each value the shortest float32 round trip. Written as
 * bytes into one reused buffer and read out as one flat string (no string per value, no concatenation).
 */
export function formatProbabilities(values: ArrayLike<number>): string {
  const need = values.length * (MAX_VALUE_BYTES + 1) + 2
  if (body.length < need) body = Buffer.allocUnsafe(need)
  const out = body
  let p = 0
  out[p++] = 0x5b // [
  if (values.length > 0) p = writeFloat32(out, p, values[0])
  for (let i = 1; i < values.length; i++) {
    out[p++] = 0x2c // ,
    p = writeFloat32(out, p, values[i])
  }

  out[p++] = 0x5d // ]
  return out.toString('latin1', 0, p)
}

/** One of the top classes: its index, its label when there are labels, and its probability as written on the wire. */
export interface TopClass {
  index: number
  label?: string
  probability: number
}

/**
 * The k most probable classes (index, label, probability), highest first; ties keep the lower index first. The
 * probability is the float32 value as the connector's body writes it (formatFloat32): `icc serve`'s verbose
 * answer and `icc predict` agree with the body to the digit.
 */
export function topK(probabilities: ArrayLike<number>, k: number, labels?: string[]): TopClass[] {
  const p = Float32Array.from(probabilities)
  const order = Array.from(p.keys()).sort((a, b) => p[b] - p[a] || a - b)
  return order.slice(0, Math.max(0, Math.min(k, p.length))).map((index) => ({
    index,
    ...(labels?.[index] === undefined ? {} : {label: labels[index]}),
    probability: Number(formatFloat32(p[index])),
  }))
}
