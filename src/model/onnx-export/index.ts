/**
 * MXNet symbol + parameters -> ONNX model (opset 13), with MXNet's exact inference semantics and defaults.
 *
 * ./plan.ts infers the shapes, checks the graph (./activations.ts: the memory its tensors need) and converts each
 * node with its operator's handler (./registry.ts, ./ops/ by family; the registry's keys are the supported ops);
 * ./write.ts encodes the plan in memory or streams it to a file; ./split.ts cuts it into parts (./optimize.ts), or a
 * node list (../quantize-calibrate.ts).
 */
import type {MxSymbol} from '../mxnet-symbol.js'
import type {ExportOptions, ExportResult} from './types.js'
import type {WriteResult} from './write.js'

import {plan} from './plan.js'
import {encodePlan, writePlan} from './write.js'

export {type ActivationPeak, checkActivations, DEFAULT_ACTIVATION_BYTES} from './activations.js'
export {activationBound, CONVERTER_VERSION, OPSET, plan, valueInfo} from './plan.js'
export {SUPPORTED_OPS} from './registry.js'
export {cutGraph, type CutGraph, type Span, splitPlan} from './split.js'
export type {ExportOptions, ExportParam, ExportResult, Plan} from './types.js'
export {
  alignedOffset,
  byteLength,
  EXTERNAL_MIN_BYTES,
  type ExternalData,
  externalHeader,
  type StreamedTensor,
  writeModel,
  writePlan,
  type WriteResult,
} from './write.js'

/** The model encoded in memory. */
export function exportOnnx(sym: MxSymbol, options: ExportOptions): ExportResult {
  return encodePlan(plan(sym, options))
}

/** The model streamed to `path` (created or truncated), each initializer's bytes asked for as it is written. */
export async function writeOnnx(sym: MxSymbol, options: ExportOptions, path: string): Promise<WriteResult> {
  return writePlan(plan(sym, options), path)
}
