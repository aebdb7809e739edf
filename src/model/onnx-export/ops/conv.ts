/** `Convolution` -> Conv (1-D to 3-D, grouped, dilated; NC* layouts only). */
import type {OpHandler} from '../context.js'

import {parseBool, parseNumber, windowOf} from '../../mxnet-symbol.js'
import {int, ints} from '../context.js'

const convolution: OpHandler = (c) => {
  const a = c.attrs
  const w = c.param(1, 'weight')
  const {dilate, kernel, pad, stride} = windowOf(c.node, c.source)
  const input = [c.input(0), c.init(w.name, w.shape, w.bytes)]
  if (!parseBool(a.no_bias, false)) {
    const b = c.param(2, 'bias')
    input.push(c.init(b.name, b.shape, b.bytes))
  }

  if (a.layout && !['NCDHW', 'NCHW', 'NCW', 'None'].includes(a.layout))
    c.unsupported(`layout ${a.layout} is not supported`)
  c.emit('Conv', input, [c.out], c.out, [
    ints('kernel_shape', kernel),
    ints('strides', stride),
    ints('pads', [...pad, ...pad].slice(0, 2 * kernel.length)),
    ints('dilations', dilate),
    int('group', parseNumber(a.num_group, 1)),
  ])
}

export const convOps: Record<string, OpHandler> = {Convolution: convolution}
