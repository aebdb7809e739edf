/** Operators that copy their input (inference-time no-ops): `_copy`, `identity`, `BlockGrad`, `Dropout`. */
import type {OpHandler} from '../context.js'

const identity: OpHandler = (c) => c.emit('Identity', [c.input(0)], [c.out], c.out)

export const copyOps: Record<string, OpHandler> = {
  _copy: identity,
  BlockGrad: identity,
  Dropout: identity,
  identity,
}
