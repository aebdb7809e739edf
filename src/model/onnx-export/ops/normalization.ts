/**
 * `BatchNorm` -> BatchNormalization: eps 1e-3 when absent; fix_gamma (default True) makes gamma 1 whatever is
 * stored; axis 1 only.
 */
import type {OpHandler} from '../context.js'

import {ModelError} from '../../../errors.js'
import {le32} from '../../mxnet-params.js'
import {opName, parseBool, parseNumber} from '../../mxnet-symbol.js'
import {float} from '../context.js'

const batchNorm: OpHandler = (c) => {
  const a = c.attrs
  const y = c.out
  const axis = parseNumber(a.axis, 1)
  if (axis !== 1) c.unsupported(`axis=${axis} is not supported`)
  const gamma = c.param(1, 'gamma')
  const beta = c.param(2, 'beta')
  const mean = c.param(3, 'moving_mean')
  const v = c.param(4, 'moving_var')
  const n = beta.size
  for (const p of [gamma, mean, v]) {
    if (p.size !== n) {
      throw new ModelError(
        'BAD_PARAMS',
        `${c.source}: ${opName(c.node)}: ${p.name} has ${p.size} values, expected ${n}`,
      )
    }
  }

  const g = parseBool(a.fix_gamma, true)
    ? c.init(`${y}__gamma_fixed`, [n], () => le32(new Float32Array(n).fill(1)))
    : c.init(gamma.name, [n], gamma.bytes)
  const inputs = [
    c.input(0),
    g,
    c.init(beta.name, [n], beta.bytes),
    c.init(mean.name, [n], mean.bytes),
    c.init(v.name, [n], v.bytes),
  ]
  c.emit('BatchNormalization', inputs, [y], y, [float('epsilon', parseNumber(a.eps, 1e-3))])
}

export const normalizationOps: Record<string, OpHandler> = {BatchNorm: batchNorm}
