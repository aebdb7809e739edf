/** Operators that reshape or join tensors: `Flatten` / `flatten` (to 2-D at axis 1), `Concat` / `concat` (`dim`). */
import type {OpHandler} from '../context.js'

import {parseNumber} from '../../mxnet-symbol.js'
import {int} from '../context.js'

const flatten: OpHandler = (c) => c.emit('Flatten', [c.input(0)], [c.out], c.out, [int('axis', 1)])

const concat: OpHandler = (c) =>
  c.emit(
    'Concat',
    c.node.inputs.map((_, k) => c.input(k)),
    [c.out],
    c.out,
    [int('axis', parseNumber(c.attrs.dim, 1))],
  )

export const shapeOps: Record<string, OpHandler> = {Concat: concat, Flatten: flatten, concat, flatten}
