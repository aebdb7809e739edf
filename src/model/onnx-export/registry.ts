/**
 * The operator registry: MXNet op name -> its handler (./ops/, one file per family). Its keys are the supported
 * ops; an op without a handler is UNSUPPORTED_OP. To add an operator, see docs/development.md.
 */
import type {OpHandler} from './context.js'

import {activationOps} from './ops/activation.js'
import {convOps} from './ops/conv.js'
import {copyOps} from './ops/copy.js'
import {denseOps} from './ops/dense.js'
import {elementwiseOps} from './ops/elementwise.js'
import {normalizationOps} from './ops/normalization.js'
import {poolingOps} from './ops/pooling.js'
import {shapeOps} from './ops/shape.js'
import {softmaxOps} from './ops/softmax.js'

const FAMILIES = [
  copyOps,
  normalizationOps,
  convOps,
  activationOps,
  poolingOps,
  elementwiseOps,
  shapeOps,
  denseOps,
  softmaxOps,
]

export const OP_HANDLERS: ReadonlyMap<string, OpHandler> = new Map(FAMILIES.flatMap((f) => Object.entries(f)))

/** The MXNet ops the exporter converts: exactly the registry's keys. */
export const SUPPORTED_OPS: readonly string[] = [...OP_HANDLERS.keys()]
