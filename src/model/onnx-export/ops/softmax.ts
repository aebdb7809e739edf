/**
 * Softmax: `softmax` (over `axis`, default -1), `SoftmaxOutput` (the label input ignored; multi_output = over the
 * channels) and `SoftmaxActivation` (mode `channel` = over the channels). In instance mode on an input of rank > 2,
 * MXNet normalises over everything but the batch axis and keeps the shape.
 */
import type {OpHandler} from '../context.js'

import {parseBool, parseNumber} from '../../mxnet-symbol.js'
import {int} from '../context.js'

const softmax: OpHandler = (c) => {
  const {attrs: a, node: n, out: y} = c
  const x = c.input(0)
  const multi =
    (n.op === 'SoftmaxOutput' && parseBool(a.multi_output, false)) ||
    (n.op === 'SoftmaxActivation' && a.mode === 'channel')
  if (n.op === 'softmax') {
    c.emit('Softmax', [x], [y], y, [int('axis', parseNumber(a.axis, -1))])
  } else if (multi || c.rank <= 2) {
    c.emit('Softmax', [x], [y], y, [int('axis', 1)])
  } else {
    const f = c.tmp(`${y}_flat`)
    const s = c.tmp(`${y}_softmax`)
    const shape = c.tmp(`${y}_shape`)
    c.emit('Flatten', [x], [f], f, [int('axis', 1)])
    c.emit('Softmax', [f], [s], s, [int('axis', 1)])
    c.emit('Shape', [x], [shape], shape)
    c.emit('Reshape', [s, shape], [y], y)
  }
}

export const softmaxOps: Record<string, OpHandler> = {
  SoftmaxActivation: softmax,
  SoftmaxOutput: softmax,
  softmax,
}
