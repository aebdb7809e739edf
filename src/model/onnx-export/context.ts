/**
 * What an operator handler (./ops/) works with: the MXNet node being converted, and the calls that read its inputs
 * and parameters and emit ONNX nodes and initializers into the plan. ./plan.ts makes one context per node.
 */
import onnxProto from 'onnx-proto'

import type {SymbolNode} from '../mxnet-symbol.js'
import type {ExportParam} from './types.js'

import {ModelError} from '../../errors.js'
import {opName} from '../mxnet-symbol.js'

const {onnx} = onnxProto
const AT = onnx.AttributeProto.AttributeType
export type Attr = onnxProto.onnx.IAttributeProto

export function ints(name: string, v: number[]): Attr {
  return {ints: v, name, type: AT.INTS}
}

export function int(name: string, v: number): Attr {
  return {i: v, name, type: AT.INT}
}

export function float(name: string, v: number): Attr {
  return {f: v, name, type: AT.FLOAT}
}

/** A parameter input of a node, found in the params file. */
export interface ParamRef {
  /** Its float32 little-endian bytes, made when written. */
  bytes: () => Uint8Array
  name: string
  p: ExportParam
  shape: number[]
  /** Number of values. */
  size: number
}

export interface OpContext {
  /** The node's MXNet attributes (strings). */
  attrs: Record<string, string>
  /** Emit an ONNX node. */
  emit: (opType: string, input: string[], output: string[], name: string, attribute?: Attr[]) => void
  /** Add an initializer (once per name) and return its name. */
  init: (name: string, dims: number[], bytes: () => Uint8Array) => string
  /** The ONNX tensor that is the node's input `k`. */
  input: (k: number) => string
  node: SymbolNode
  /** The node's output tensor: its name (ONNX nodes producing it are named the same). */
  out: string
  /** The parameter that is the node's input `k` (`what` names it in the error when the params file lacks it). */
  param: (k: number, what: string) => ParamRef
  /** Rank of the node's first input (0 when unknown). */
  rank: number
  /** The symbol file's name, for messages. */
  source: string
  /** A fresh name for an intermediate tensor. */
  tmp: (base: string) => string
  /** Throw UNSUPPORTED_OP naming the node: `what` it uses that the exporter does not support. */
  unsupported: (what: string) => never
}

/** An operator handler: emits the ONNX nodes computing one MXNet node, with MXNet's semantics and defaults. */
export type OpHandler = (c: OpContext) => void

export function unsupportedError(source: string, node: SymbolNode, what: string): ModelError {
  return new ModelError('UNSUPPORTED_OP', `${source}: ${opName(node)}: ${what}`)
}
