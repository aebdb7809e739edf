/**
 * Test helper: an independent float64 reference implementation of the MXNet operators that the converter
 * handles (Convolution, BatchNorm, Pooling incl. `full` convention and padded averages, Activation, LeakyReLU,
 * FullyConnected, softmaxes, Flatten, add, Concat, Dropout). It reads the symbol JSON itself and runs it with
 * plain loops; it shares no code with src/model, so comparing both checks the converter against MXNet semantics.
 */

export interface Tensor {
  data: Float64Array
  shape: number[]
}

type Params = Map<string, {data: ArrayLike<number>; shape: number[]}>

function tuple(s: string | undefined, d: number[]): number[] {
  if (s === undefined) return d
  const t = s.replaceAll(/[()[\]\s]/g, '')
  return t === '' ? d : t.split(',').filter(Boolean).map(Number)
}

function bool(s: string | undefined, d: boolean): boolean {
  return s === undefined ? d : s === 'True' || s === 'true' || s === '1'
}

const size = (s: number[]) => s.reduce((a, b) => a * b, 1)

function conv(x: Tensor, w: Tensor, b: Float64Array | undefined, a: Record<string, string>): Tensor {
  const [n, c, h, wd] = x.shape
  const [f, cg, kh, kw] = w.shape
  const [sh, sw] = tuple(a.stride, [1, 1])
  const [ph, pw] = tuple(a.pad, [0, 0])
  const [dh, dw] = tuple(a.dilate, [1, 1])
  const g = Number(a.num_group ?? 1)
  const oh = Math.floor((h + 2 * ph - dh * (kh - 1) - 1) / sh) + 1
  const ow = Math.floor((wd + 2 * pw - dw * (kw - 1) - 1) / sw) + 1
  const out = new Float64Array(n * f * oh * ow)
  const fpg = f / g
  for (let b0 = 0; b0 < n; b0++)
    for (let o = 0; o < f; o++) {
      const grp = Math.floor(o / fpg)
      for (let y = 0; y < oh; y++)
        for (let xx = 0; xx < ow; xx++) {
          let s = b ? b[o] : 0
          for (let ci = 0; ci < cg; ci++) {
            const cin = grp * cg + ci
            for (let i = 0; i < kh; i++) {
              const iy = y * sh - ph + i * dh
              if (iy < 0 || iy >= h) continue
              for (let j = 0; j < kw; j++) {
                const ix = xx * sw - pw + j * dw
                if (ix < 0 || ix >= wd) continue
                s += x.data[((b0 * c + cin) * h + iy) * wd + ix] * w.data[((o * cg + ci) * kh + i) * kw + j]
              }
            }
          }

          out[((b0 * f + o) * oh + y) * ow + xx] = s
        }
    }

  return {data: out, shape: [n, f, oh, ow]}
}

function pool(x: Tensor, a: Record<string, string>): Tensor {
  const [n, c, h, w] = x.shape
  const type = a.pool_type ?? 'max'
  if (bool(a.global_pool, false)) {
    const out = new Float64Array(n * c)
    for (let i = 0; i < n * c; i++) {
      let s = type === 'max' ? -Infinity : 0
      for (let k = 0; k < h * w; k++) {
        const v = x.data[i * h * w + k]
        s = type === 'max' ? Math.max(s, v) : s + v
      }

      out[i] = type === 'max' ? s : s / (h * w)
    }

    return {data: out, shape: [n, c, 1, 1]}
  }

  const [kh, kw] = tuple(a.kernel, [1, 1])
  const [sh, sw] = tuple(a.stride, [1, 1])
  const [ph, pw] = tuple(a.pad, [0, 0])
  const full = a.pooling_convention === 'full'
  const r = full ? Math.ceil : Math.floor
  const oh = r((h + 2 * ph - kh) / sh) + 1
  const ow = r((w + 2 * pw - kw) / sw) + 1
  const countPad = bool(a.count_include_pad, true)
  const out = new Float64Array(n * c * oh * ow)
  for (let p = 0; p < n * c; p++)
    for (let y = 0; y < oh; y++)
      for (let xx = 0; xx < ow; xx++) {
        // MXNet: window [start, start+k) clipped to the padded extent; padding counts for avg if count_include_pad.
        const y0 = y * sh - ph
        const x0 = xx * sw - pw
        const y1 = Math.min(y0 + kh, h + ph)
        const x1 = Math.min(x0 + kw, w + pw)
        const padded = (y1 - y0) * (x1 - x0)
        let s = type === 'max' ? -Infinity : 0
        let cnt = 0
        for (let iy = Math.max(y0, 0); iy < Math.min(y1, h); iy++)
          for (let ix = Math.max(x0, 0); ix < Math.min(x1, w); ix++) {
            const v = x.data[(p * h + iy) * w + ix]
            s = type === 'max' ? Math.max(s, v) : s + v
            cnt++
          }

        out[(p * oh + y) * ow + xx] = type === 'max' ? s : s / (countPad ? padded : cnt)
      }

  return {data: out, shape: [n, c, oh, ow]}
}

function softmaxRows(d: Float64Array, rows: number, cols: number, stride = 1, inner = 1): Float64Array {
  // softmax over `cols` elements spaced by `stride`, for `rows` groups of `inner` positions
  const out = new Float64Array(d.length)
  for (let r = 0; r < rows; r++)
    for (let q = 0; q < inner; q++) {
      const base = r * cols * inner + q
      let m = -Infinity
      for (let k = 0; k < cols; k++) m = Math.max(m, d[base + k * stride])
      let s = 0
      for (let k = 0; k < cols; k++) s += Math.exp(d[base + k * stride] - m)
      for (let k = 0; k < cols; k++) out[base + k * stride] = Math.exp(d[base + k * stride] - m) / s
    }

  return out
}

/** Run the symbol on `input` (NCHW) in float64; returns the outputs of the heads. */
export function referenceRun(symbolJson: string, params: Params, input: Tensor): Tensor[] {
  const doc = JSON.parse(symbolJson) as {
    heads: number[][]
    nodes: {
      attr?: Record<string, string>
      attrs?: Record<string, string>
      inputs: number[][]
      name: string
      op: string
      param?: Record<string, string>
    }[]
  }
  const vals: (Tensor | undefined)[] = []
  const P = (name: string): Tensor => {
    const p = params.get(name)
    if (!p) throw new Error(`reference: no param ${name}`)
    return {data: Float64Array.from(p.data), shape: p.shape}
  }

  for (const [i, node] of doc.nodes.entries()) {
    const a = {...node.param, ...node.attr, ...node.attrs}
    const inName = (k: number) => doc.nodes[node.inputs[k][0]].name
    const X = () => vals[node.inputs[0][0]]!
    const unary = (f: (v: number) => number): Tensor => ({data: X().data.map((v) => f(v)), shape: X().shape})
    switch (node.op) {
      case 'null': {
        vals[i] = params.has(node.name) ? P(node.name) : node.name.endsWith('label') ? undefined : input
        break
      }

      case 'Convolution': {
        vals[i] = conv(X(), P(inName(1)), bool(a.no_bias, false) ? undefined : P(inName(2)).data, a)
        break
      }

      case 'BatchNorm': {
        const x = X()
        const [n, c] = x.shape
        const inner = size(x.shape.slice(2))
        const gamma = bool(a.fix_gamma, true) ? undefined : P(inName(1)).data
        const beta = P(inName(2)).data
        const mean = P(inName(3)).data
        const v = P(inName(4)).data
        const eps = a.eps === undefined ? 1e-3 : Number(a.eps)
        const out = new Float64Array(x.data.length)
        for (let b = 0; b < n; b++)
          for (let ch = 0; ch < c; ch++) {
            const sc = (gamma ? gamma[ch] : 1) / Math.sqrt(v[ch] + eps)
            for (let k = 0; k < inner; k++) {
              const idx = (b * c + ch) * inner + k
              out[idx] = (x.data[idx] - mean[ch]) * sc + beta[ch]
            }
          }

        vals[i] = {data: out, shape: x.shape}
        break
      }

      case 'Activation': {
        const t = a.act_type
        vals[i] = unary(
          t === 'relu'
            ? (v) => Math.max(v, 0)
            : t === 'sigmoid'
              ? (v) => 1 / (1 + Math.exp(-v))
              : t === 'tanh'
                ? Math.tanh
                : t === 'softrelu'
                  ? (v) => Math.log1p(Math.exp(v))
                  : () => Number.NaN,
        )
        break
      }

      case 'LeakyReLU': {
        const t = a.act_type ?? 'leaky'
        const slope = a.slope === undefined ? 0.25 : Number(a.slope)
        if (t === 'prelu') {
          const g = P(inName(1)).data
          const x = X()
          const c = x.shape[1]
          const inner = size(x.shape.slice(2))
          vals[i] = {data: x.data.map((v, idx) => (v > 0 ? v : v * g[Math.floor(idx / inner) % c])), shape: x.shape}
        } else if (t === 'elu') vals[i] = unary((v) => (v > 0 ? v : slope * (Math.exp(v) - 1)))
        else vals[i] = unary((v) => (v > 0 ? v : v * slope))
        break
      }

      case 'Pooling': {
        vals[i] = pool(X(), a)
        break
      }

      case '_Plus':
      case 'broadcast_add':
      case 'elemwise_add': {
        const y = vals[node.inputs[1][0]]!
        vals[i] = {data: X().data.map((v, k) => v + y.data[k]), shape: X().shape}
        break
      }

      case 'Flatten': {
        vals[i] = {data: X().data, shape: [X().shape[0], size(X().shape.slice(1))]}
        break
      }

      case 'FullyConnected': {
        const x = X()
        const w = P(inName(1))
        const b = bool(a.no_bias, false) ? undefined : P(inName(2)).data
        const n = x.shape[0]
        const [nh, inF] = w.shape
        const out = new Float64Array(n * nh)
        for (let r = 0; r < n; r++)
          for (let o = 0; o < nh; o++) {
            let s = b ? b[o] : 0
            for (let k = 0; k < inF; k++) s += x.data[r * inF + k] * w.data[o * inF + k]
            out[r * nh + o] = s
          }

        vals[i] = {data: out, shape: [n, nh]}
        break
      }

      case 'SoftmaxActivation':
      case 'SoftmaxOutput': {
        const x = X()
        const channel = a.mode === 'channel' || bool(a.multi_output, false)
        vals[i] = channel
          ? {
              data: softmaxRows(x.data, x.shape[0], x.shape[1], size(x.shape.slice(2)), size(x.shape.slice(2))),
              shape: x.shape,
            }
          : {data: softmaxRows(x.data, x.shape[0], size(x.shape.slice(1))), shape: x.shape}
        break
      }

      case 'Dropout':
      case '_copy': {
        vals[i] = X()
        break
      }

      case 'Concat': {
        const parts = node.inputs.map(([j]) => vals[j]!)
        const n = parts[0].shape[0]
        const chunks: number[] = []
        for (let b = 0; b < n; b++)
          for (const p of parts) {
            const per = size(p.shape.slice(1))
            chunks.push(...p.data.subarray(b * per, (b + 1) * per))
          }

        const shape = [...parts[0].shape]
        shape[1] = parts.reduce((s, p) => s + p.shape[1], 0)
        vals[i] = {data: Float64Array.from(chunks), shape}
        break
      }

      default: {
        throw new Error(`reference: op ${node.op} not implemented`)
      }
    }
  }

  return doc.heads.map(([j]) => vals[j]!)
}
