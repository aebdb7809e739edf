/** Elementwise binary operators: the additions `elemwise_add`, `_Plus`, `_plus`, `broadcast_add` -> Add. */
import type {OpHandler} from '../context.js'

const add: OpHandler = (c) => c.emit('Add', [c.input(0), c.input(1)], [c.out], c.out)

export const elementwiseOps: Record<string, OpHandler> = {
  _Plus: add,
  _plus: add,
  broadcast_add: add,
  elemwise_add: add,
}
