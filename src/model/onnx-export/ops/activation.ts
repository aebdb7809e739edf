/**
 * Activations: `Activation` (relu, sigmoid, tanh, softrelu, softsign), the bare `relu` / `sigmoid` / `tanh`, and
 * `LeakyReLU` (leaky and elu with `slope` default 0.25, rrelu at inference = the mean of its bounds, prelu).
 */
import type {OpHandler} from '../context.js'

import {parseNumber} from '../../mxnet-symbol.js'
import {float} from '../context.js'

const ACT_TYPES: Record<string, string> = {
  relu: 'Relu',
  sigmoid: 'Sigmoid',
  softrelu: 'Softplus',
  softsign: 'Softsign',
  tanh: 'Tanh',
}

const activation: OpHandler = (c) => {
  const t = c.node.op === 'Activation' ? c.attrs.act_type : c.node.op
  const op = ACT_TYPES[t ?? '']
  if (!op) c.unsupported(`act_type "${t}" is not supported`)
  c.emit(op, [c.input(0)], [c.out], c.out)
}

const leakyRelu: OpHandler = (c) => {
  const a = c.attrs
  const y = c.out
  const t = a.act_type ?? 'leaky'
  const slope = parseNumber(a.slope, 0.25)
  switch (t) {
    case 'elu':
    case 'leaky': {
      c.emit(t === 'elu' ? 'Elu' : 'LeakyRelu', [c.input(0)], [y], y, [float('alpha', slope)])
      break
    }

    case 'prelu': {
      const g = c.param(1, 'gamma')
      const dims = c.rank > 2 ? [g.size, ...Array.from({length: c.rank - 2}, () => 1)] : [g.size]
      c.emit('PRelu', [c.input(0), c.init(`${g.name}__bcast`, dims, g.bytes)], [y], y)
      break
    }

    case 'rrelu': {
      const mid = (parseNumber(a.lower_bound, 0.125) + parseNumber(a.upper_bound, 0.334)) / 2
      c.emit('LeakyRelu', [c.input(0)], [y], y, [float('alpha', mid)])
      break
    }

    default: {
      c.unsupported(`act_type "${t}" is not supported`)
    }
  }
}

export const activationOps: Record<string, OpHandler> = {
  Activation: activation,
  LeakyReLU: leakyRelu,
  relu: activation,
  sigmoid: activation,
  tanh: activation,
}
