/**
 * `FullyConnected`: with flatten (the default) Gemm on the input flattened to 2-D; without, MatMul by the
 * transposed weight over the last axis, plus the bias.
 */
import type {OpContext, OpHandler, ParamRef} from '../context.js'

import {le32} from '../../mxnet-params.js'
import {parseBool} from '../../mxnet-symbol.js'
import {int} from '../context.js'

const fullyConnected: OpHandler = (c) => {
  const w = c.param(1, 'weight')
  const b = parseBool(c.attrs.no_bias, false) ? undefined : c.param(2, 'bias')
  if (parseBool(c.attrs.flatten, true)) gemm(c, w, b)
  else matMul(c, w, b)
}

function gemm(c: OpContext, w: ParamRef, b: ParamRef | undefined): void {
  let x = c.input(0)
  if (c.rank !== 2) {
    const f = c.tmp(`${c.out}_flatten`)
    c.emit('Flatten', [x], [f], f, [int('axis', 1)])
    x = f
  }

  const input = [x, c.init(w.name, w.shape, w.bytes)]
  if (b) input.push(c.init(b.name, b.shape, b.bytes))
  c.emit('Gemm', input, [c.out], c.out, [int('transB', 1)])
}

function matMul(c: OpContext, w: ParamRef, b: ParamRef | undefined): void {
  const [nh, inF] = w.shape
  const transposed = () => {
    const wd = w.p.data
    const wt = new Float32Array(nh * inF)
    for (let r = 0; r < nh; r++) for (let k = 0; k < inF; k++) wt[k * nh + r] = wd[r * inF + k]
    return le32(wt)
  }

  const y = c.out
  const mm = b ? c.tmp(`${y}_matmul`) : y
  c.emit('MatMul', [c.input(0), c.init(`${w.name}__T`, [inF, nh], transposed)], [mm], mm)
  if (b) c.emit('Add', [mm, c.init(b.name, b.shape, b.bytes)], [y], y)
}

export const denseOps: Record<string, OpHandler> = {FullyConnected: fullyConnected}
