/**
 * The exporter's shared types: what a caller gives (ExportOptions, ExportParam), the plan it makes (Plan, one graph
 * plus each initializer as a function that gives its bytes), and what a caller gets back (ExportResult).
 */
import type onnxProto from 'onnx-proto'

import type {ActivationPeak} from './activations.js'

export interface ExportOptions {
  /** Name of the data input (default: the first variable that is not a parameter or label). */
  dataName?: string
  /** [N, C, H, W] (N is ignored: the batch dimension is dynamic). */
  inputShape: number[]
  /**
   * Most bytes the graph's tensors may need at once for one image (./activations.ts); default
   * DEFAULT_ACTIVATION_BYTES. A graph over it is BAD_SYMBOL, refused before anything is written.
   */
  maxActivationBytes?: number
  params: Map<string, ExportParam>
  source?: string
}

/** A parameter: its values, or (from a lazily read params file) its size and float32 little-endian bytes. */
export interface ExportParam {
  readonly data: Float32Array
  raw?: () => Uint8Array
  shape: number[]
  size?: number
}

/** An initializer of the plan: its bytes are made (or viewed in the params file) only when written. */
export interface PlannedInit {
  bytes: () => Uint8Array
  dims: number[]
  name: string
}

export interface Plan {
  /** The peak of the graph's tensor bytes for one image (./activations.ts). */
  activation: ActivationPeak
  inits: PlannedInit[]
  inputName: string
  /** The model without its initializers. */
  model: onnxProto.onnx.IModelProto
  outputNames: string[]
  outputShapes: number[][]
  /** Shapes (batch 1) of the tensors of known shape: the input and the MXNet nodes' outputs. */
  shapes: Map<string, number[]>
}

export interface ExportResult {
  /** The peak of the graph's tensor bytes for one image (./activations.ts). */
  activation: ActivationPeak
  bytes: Uint8Array
  inputName: string
  outputNames: string[]
  /** Output shapes for batch 1. */
  outputShapes: number[][]
}
