/**
 * `Pooling` -> MaxPool / AveragePool / their global forms: pooling_convention `full` is ceil mode, average pooling
 * counts the padding unless count_include_pad is False (MXNet's defaults).
 */
import type {OpHandler} from '../context.js'

import {parseBool, windowOf} from '../../mxnet-symbol.js'
import {int, ints} from '../context.js'

const pooling: OpHandler = (c) => {
  const a = c.attrs
  const type = a.pool_type ?? 'max'
  if (type !== 'max' && type !== 'avg') c.unsupported(`pool_type "${type}" is not supported`)
  if (parseBool(a.global_pool, false)) {
    c.emit(type === 'max' ? 'GlobalMaxPool' : 'GlobalAveragePool', [c.input(0)], [c.out], c.out)
    return
  }

  const {kernel, pad, stride} = windowOf(c.node, c.source)
  const convention = a.pooling_convention ?? 'valid'
  if (convention !== 'valid' && convention !== 'full') {
    c.unsupported(`pooling_convention "${convention}" is not supported`)
  }

  const attrs = [
    ints('kernel_shape', kernel),
    ints('strides', stride),
    ints('pads', [...pad, ...pad]),
    int('ceil_mode', convention === 'full' ? 1 : 0),
  ]
  if (type === 'avg') attrs.push(int('count_include_pad', parseBool(a.count_include_pad, true) ? 1 : 0))
  c.emit(type === 'max' ? 'MaxPool' : 'AveragePool', [c.input(0)], [c.out], c.out, attrs)
}

export const poolingOps: Record<string, OpHandler> = {Pooling: pooling}
