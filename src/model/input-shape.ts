/**
 * The input shape of an MXNet model without model-shapes.json, inferred from its parameters where the graph allows:
 * the channels from the first convolution's weight (O x C x kh x kw), the height and width as the square size whose
 * path through the graph's strides and poolings gives the first fully connected layer the input size its weight
 * was trained with. And the check that a shape fits the parameters (a mismatch is a model error naming both).
 */
import type {ParamsFile} from './mxnet-params.js'

import {ModelError} from '../errors.js'
import {inferShapes, type MxSymbol} from './mxnet-symbol.js'

/** A parameter whose stored shape differs from what the graph needs for the input shape. */
export interface ShapeMismatch {
  have: number[]
  name: string
  need: number[]
}

/** The parameters that do not fit `shape` ([N, C, H, W]); undefined when the graph cannot take that shape at all. */
export function shapeMismatches(sym: MxSymbol, params: ParamsFile, shape: number[]): ShapeMismatch[] | undefined {
  const stored = new Map(params.arrays.filter((a) => a.name).map((a) => [a.name, a.shape]))
  let varShapes: Map<string, number[]>
  try {
    varShapes = inferShapes(sym, {data: shape}).varShapes
  } catch {
    return undefined
  }

  const out: ShapeMismatch[] = []
  for (const [name, need] of varShapes) {
    const have = stored.get(name)
    if (name !== 'data' && have && have.join('x') !== need.join('x')) out.push({have, name, need})
  }

  return out
}

/** Sizes tried first (the usual image-classification inputs), then every other size up to 1024. */
const COMMON_SIZES = [224, 28, 32, 299, 227, 256, 64, 96, 128, 112, 160, 192, 320, 384, 448, 512]

/** [1, C, H, W] from the parameters, or undefined when the graph does not tell (no convolution, no fit). */
export function inferInputShape(sym: MxSymbol, params: ParamsFile): number[] | undefined {
  const stored = new Map(params.arrays.filter((a) => a.name).map((a) => [a.name, a.shape]))
  const firstConv = sym.nodes.find((n) => n.op === 'Convolution')
  const weight = firstConv?.inputs.map(([i]) => sym.nodes[i]).find((n) => n.op === 'null' && n.name.endsWith('weight'))
  const channels = weight ? stored.get(weight.name)?.[1] : undefined
  if (!channels) return undefined
  const others = Array.from({length: 1024}, (_, i) => i + 1).filter((s) => !COMMON_SIZES.includes(s))
  for (const size of [...COMMON_SIZES, ...others]) {
    const shape = [1, channels, size, size]
    if (shapeMismatches(sym, params, shape)?.length === 0) return shape
  }

  return undefined
}

/** The model error for parameters that do not fit the input shape: both shapes of each, and the way out. */
export function mismatchError(mismatches: ShapeMismatch[], shape: number[], source: string): ModelError {
  const list = mismatches.map((m) => `${m.name} is ${m.have.join('x')}, the graph needs ${m.need.join('x')}`)
  return new ModelError(
    'SHAPE_MISMATCH',
    `The parameters of ${source} do not fit the input shape ${shape.slice(1).join('x')}: ${list.join('; ')}`,
    {
      details: {inputShape: shape.slice(1), mismatches},
      suggestions: ['Pass the input shape the model was trained with: --input-shape C,H,W (e.g. 1,28,28).'],
    },
  )
}
