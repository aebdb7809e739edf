/**
 * MXNet model writer: `.params` files in every record format (legacy, V1, V2, V3; float16/32/64) and symbols of
 * SageMaker's image-classification ResNet (pre-activation ResNet v2, the structure of MXNet's `resnet.py` that
 * the algorithm uses), plus deterministic seeded weights. Used by the tests and to build the bundled default model.
 */
import type {ParamDType, RecordFormat} from './mxnet-params.js'

import {UsageError} from '../errors.js'
import {LIST_MAGIC, RECORD_MAGIC, TYPE_FLAG} from './mxnet-params.js'
import {inferShapes, type MxSymbol, parseSymbol} from './mxnet-symbol.js'

export interface WriteArray {
  data: Float32Array | number[]
  /** Full name as stored, e.g. `arg:conv0_weight` (omit for a file without names). */
  name?: string
  shape: number[]
}

export interface WriteParamsOptions {
  dtype?: ParamDType
  format?: RecordFormat
  /** Write the name list even when no array has a name (MXNet writes an empty list). */
  names?: boolean
}

function floatToHalf(v: number): number {
  const f = new Float32Array([v])
  const x = new Uint32Array(f.buffer)[0]
  const sign = (x >>> 16) & 0x80_00
  const e = ((x >>> 23) & 0xff) - 127 + 15
  let m = x & 0x7f_ff_ff
  if (e >= 31) return sign | 0x7c_00
  if (e <= 0) {
    if (e < -10) return sign
    m |= 0x80_00_00
    const shift = 14 - e
    let half = m >> shift
    if ((m >> (shift - 1)) & 1) half += 1
    return sign | half
  }

  let half = sign | (e << 10) | (m >> 13)
  if (m & 0x10_00) half += 1 // round half up (carries into the exponent correctly)
  return half
}

/** Serialise arrays as an MXNet NDArray list file. */
export function writeParams(arrays: WriteArray[], options: WriteParamsOptions = {}): Uint8Array {
  const format = options.format ?? 'V2'
  const dtype = options.dtype ?? 'float32'
  const parts: Uint8Array[] = []
  const u32 = (v: number) => parts.push(new Uint8Array(new Uint32Array([v]).buffer))
  const i32 = (v: number) => parts.push(new Uint8Array(new Int32Array([v]).buffer))
  const u64 = (v: number) => parts.push(new Uint8Array(new BigUint64Array([BigInt(v)]).buffer))
  const i64 = u64
  u64(LIST_MAGIC)
  u64(0)
  u64(arrays.length)
  for (const a of arrays) {
    if (format !== 'legacy') u32(RECORD_MAGIC[format])
    if (format === 'V2' || format === 'V3') i32(0)
    if (format === 'V3') i32(a.shape.length)
    else u32(a.shape.length)
    for (const d of a.shape)
      if (format === 'legacy') u32(d)
      else i64(d)
    i32(1) // cpu
    i32(0)
    i32(TYPE_FLAG[dtype])
    const data = a.data instanceof Float32Array ? a.data : Float32Array.from(a.data)
    if (dtype === 'float32') parts.push(new Uint8Array(new Float32Array(data).buffer))
    else if (dtype === 'float64') parts.push(new Uint8Array(Float64Array.from(data).buffer))
    else parts.push(new Uint8Array(Uint16Array.from(data, (v) => floatToHalf(v)).buffer))
  }

  const named = arrays.some((a) => a.name !== undefined)
  if (named || options.names) {
    u64(named ? arrays.length : 0)
    const enc = new TextEncoder()
    if (named) {
      for (const a of arrays) {
        const b = enc.encode(a.name ?? '')
        u64(b.length)
        parts.push(b)
      }
    }
  }

  const total = parts.reduce((s, p) => s + p.length, 0)
  const out = new Uint8Array(total)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }

  return out
}

// ---------------------------------------------------------------------------------------------------------------
// Symbol generator

interface GenNode {
  attrs?: Record<string, string>
  inputs: [number, number, number][]
  name: string
  op: string
}

export const IMAGENET_LAYERS = [18, 34, 50, 101, 152, 200] as const
export const CIFAR_LAYERS = [20, 32, 44, 56, 110] as const

export interface ResNetOptions {
  /** Input [C, H, W] (default 3x224x224). H <= 32 gives the CIFAR stem (3x3 conv0, no max pool). */
  imageShape?: [number, number, number]
  /** Node attributes key: `attrs` (MXNet >= 1.0, default) or `attr` (0.12 and older). */
  legacyAttrKey?: boolean
  numClasses: number
  numLayers: number
}

/** Units per stage, filters (stem, then each stage) and the unit kind of a ResNet depth. */
interface ResNetLayout {
  bottleneck: boolean
  filters: number[]
  units: number[]
}

function cifarLayout(numLayers: number): ResNetLayout {
  if ((numLayers - 2) % 9 === 0 && numLayers >= 164) {
    return {bottleneck: true, filters: [16, 64, 128, 256], units: Array.from({length: 3}, () => (numLayers - 2) / 9)}
  }

  if ((numLayers - 2) % 6 === 0 && numLayers < 164) {
    return {bottleneck: false, filters: [16, 16, 32, 64], units: Array.from({length: 3}, () => (numLayers - 2) / 6)}
  }

  throw new UsageError('BAD_LAYERS', `No CIFAR ResNet with ${numLayers} layers`, {
    suggestions: [`Use one of ${CIFAR_LAYERS.join(', ')} (or 9n+2 >= 164 for bottleneck units).`],
  })
}

const IMAGENET_UNITS: Record<number, number[]> = {
  18: [2, 2, 2, 2],
  34: [3, 4, 6, 3],
  50: [3, 4, 6, 3],
  101: [3, 4, 23, 3],
  152: [3, 8, 36, 3],
  200: [3, 24, 36, 3],
}

function resnetLayout(numLayers: number, height: number): ResNetLayout {
  if (height <= 32 || (CIFAR_LAYERS as readonly number[]).includes(numLayers)) return cifarLayout(numLayers)
  const units = IMAGENET_UNITS[numLayers]
  if (!units) {
    throw new UsageError('BAD_LAYERS', `No ResNet with ${numLayers} layers`, {
      suggestions: [`Use one of ${[...IMAGENET_LAYERS, ...CIFAR_LAYERS].join(', ')}.`],
    })
  }

  const bottleneck = numLayers >= 50
  return {bottleneck, filters: bottleneck ? [64, 256, 512, 1024, 2048] : [64, 64, 128, 256, 512], units}
}

/** The nodes of a SageMaker ResNet symbol as they are added, each builder returning its node's index. */
class ResNetGraph {
  readonly nodes: GenNode[] = []
  private plus = 0

  constructor(readonly bottleneck: boolean) {}

  bn(x: number, name: string, fixGamma = false): number {
    const vars = ['gamma', 'beta', 'moving_mean', 'moving_var'].map((v) => this.variable(`${name}_${v}`))
    return this.op('BatchNorm', name, [x, ...vars], {
      eps: '2e-05',
      fix_gamma: fixGamma ? 'True' : 'False',
      momentum: '0.9',
      use_global_stats: 'False',
    })
  }

  conv(x: number, name: string, nf: number, k: number, s: number, p: number): number {
    return this.op('Convolution', name, [x, this.variable(`${name}_weight`)], {
      cudnn_off: 'False',
      cudnn_tune: 'limited_workspace',
      dilate: '(1,1)',
      kernel: `(${k},${k})`,
      no_bias: 'True',
      num_filter: String(nf),
      num_group: '1',
      pad: `(${p},${p})`,
      stride: `(${s},${s})`,
      workspace: '512',
    })
  }

  op(o: string, name: string, inputs: number[], attrs?: Record<string, string>): number {
    this.nodes.push({attrs, inputs: inputs.map((j) => [j, 0, 0]), name, op: o})
    return this.nodes.length - 1
  }

  relu(x: number, name: string): number {
    return this.op('Activation', name, [x], {act_type: 'relu'})
  }

  /** A pre-activation residual unit (bottleneck or basic), with a projection shortcut unless `dimMatch`. */
  unit(x: number, nf: number, stride: number, dimMatch: boolean, name: string): number {
    const act1 = this.relu(this.bn(x, `${name}_bn1`), `${name}_relu1`)
    let out: number
    if (this.bottleneck) {
      const c1 = this.conv(act1, `${name}_conv1`, nf / 4, 1, 1, 0)
      const a2 = this.relu(this.bn(c1, `${name}_bn2`), `${name}_relu2`)
      const c2 = this.conv(a2, `${name}_conv2`, nf / 4, 3, stride, 1)
      const a3 = this.relu(this.bn(c2, `${name}_bn3`), `${name}_relu3`)
      out = this.conv(a3, `${name}_conv3`, nf, 1, 1, 0)
    } else {
      const c1 = this.conv(act1, `${name}_conv1`, nf, 3, stride, 1)
      const a2 = this.relu(this.bn(c1, `${name}_bn2`), `${name}_relu2`)
      out = this.conv(a2, `${name}_conv2`, nf, 3, 1, 1)
    }

    const shortcut = dimMatch ? x : this.conv(act1, `${name}_sc`, nf, 1, stride, 0)
    return this.op('elemwise_add', `_plus${this.plus++}`, [out, shortcut])
  }

  variable(name: string, attrs?: Record<string, string>): number {
    this.nodes.push({attrs, inputs: [], name, op: 'null'})
    return this.nodes.length - 1
  }
}

/** The stem: a 3x3 convolution for CIFAR-sized inputs, else 7x7 stride 2, BatchNorm, ReLU and a max pooling. */
function stem(g: ResNetGraph, data: number, filters: number, height: number): number {
  if (height <= 32) return g.conv(data, 'conv0', filters, 3, 1, 1)
  const body = g.relu(g.bn(g.conv(data, 'conv0', filters, 7, 2, 3), 'bn0'), 'relu0')
  return g.op('Pooling', 'pooling0', [body], {
    global_pool: 'False',
    kernel: '(3,3)',
    pad: '(1,1)',
    pool_type: 'max',
    pooling_convention: 'valid',
    stride: '(2,2)',
  })
}

/** The head: BatchNorm, ReLU, global average pooling, the classifier and SoftmaxOutput. */
function head(g: ResNetGraph, body: number, numClasses: number): number {
  body = g.relu(g.bn(body, 'bn1'), 'relu1')
  body = g.op('Pooling', 'pool1', [body], {
    global_pool: 'True',
    kernel: '(7,7)',
    pad: '(0,0)',
    pool_type: 'avg',
    pooling_convention: 'valid',
    stride: '(1,1)',
  })
  body = g.op('Flatten', 'flatten0', [body])
  body = g.op('FullyConnected', 'fc1', [body, g.variable('fc1_weight'), g.variable('fc1_bias')], {
    num_hidden: String(numClasses),
  })
  return g.op('SoftmaxOutput', 'softmax', [body, g.variable('softmax_label')])
}

/** The symbol JSON of SageMaker's image-classification ResNet. */
export function resnetSymbol(options: ResNetOptions): string {
  const {numClasses, numLayers} = options
  const [, height] = options.imageShape ?? [3, 224, 224]
  const {bottleneck, filters, units} = resnetLayout(numLayers, height)
  const g = new ResNetGraph(bottleneck)
  let body = stem(g, g.bn(g.variable('data'), 'bn_data', true), filters[0], height)
  for (const [i, u] of units.entries()) {
    body = g.unit(body, filters[i + 1], i === 0 ? 1 : 2, false, `stage${i + 1}_unit1`)
    for (let j = 0; j < u - 1; j++) body = g.unit(body, filters[i + 1], 1, true, `stage${i + 1}_unit${j + 2}`)
  }

  body = head(g, body, numClasses)
  const key = options.legacyAttrKey ? 'attr' : 'attrs'
  const {nodes} = g
  const json = {
    arg_nodes: nodes.flatMap((n, i) => (n.op === 'null' ? [i] : [])),
    attrs: {mxnet_version: ['int', 10_600]},
    heads: [[body, 0, 0]],
    node_row_ptr: Array.from({length: nodes.length + 1}, (_, i) => i),
    nodes: nodes.map((n) => ({inputs: n.inputs, name: n.name, op: n.op, ...(n.attrs ? {[key]: n.attrs} : {})})),
  }
  return JSON.stringify(json, null, 2)
}

// ---------------------------------------------------------------------------------------------------------------
// Weights

/** Deterministic PRNG (mulberry32) in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d_2b_79_f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

export interface NamedArray {
  data: Float32Array
  name: string
  shape: number[]
}

/**
 * Random but well-scaled weights for every parameter of `symbolJson` (shapes from shape inference), as MXNet
 * would save them (`arg:` / `aux:` names). Inputs in 0..255 give non-degenerate class probabilities.
 */
export function generateWeights(symbolJson: string, inputShape: number[], seed = 1): NamedArray[] {
  const sym: MxSymbol = parseSymbol(symbolJson)
  const dataName = 'data'
  const inf = inferShapes(sym, {[dataName]: inputShape})
  const rand = rng(seed)
  const normal = () => {
    const u = Math.max(rand(), 1e-12)
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand())
  }

  const labels = new Set<string>()
  for (const n of sym.nodes)
    if (n.op === 'SoftmaxOutput') for (const [j] of n.inputs.slice(1)) labels.add(sym.nodes[j].name)
  const out: NamedArray[] = []
  for (const n of sym.nodes) {
    if (n.op !== 'null' || n.name === dataName || labels.has(n.name)) continue
    const shape = inf.varShapes.get(n.name)
    if (!shape) continue
    const size = shape.reduce((p, q) => p * q, 1)
    const data = new Float32Array(size)
    const isData = n.name.startsWith('bn_data')
    const aux = n.name.endsWith('_moving_mean') || n.name.endsWith('_moving_var')
    if (n.name.endsWith('_moving_mean'))
      for (let i = 0; i < size; i++) data[i] = isData ? 110 + 30 * rand() : 0.2 * normal()
    else if (n.name.endsWith('_moving_var'))
      for (let i = 0; i < size; i++) data[i] = isData ? 3000 + 1000 * rand() : 0.6 + 0.8 * rand()
    else if (n.name.endsWith('_gamma')) for (let i = 0; i < size; i++) data[i] = 0.6 + 0.5 * rand()
    else if (n.name.endsWith('_beta') || n.name.endsWith('_bias'))
      for (let i = 0; i < size; i++) data[i] = 0.1 * normal()
    else {
      const fanIn = shape.slice(1).reduce((p, q) => p * q, 1)
      // Fully connected layers get larger weights so the class probabilities spread out.
      const std = Math.sqrt(1 / fanIn) * (shape.length === 2 ? 3 : 1)
      for (let i = 0; i < size; i++) data[i] = std * normal()
    }

    out.push({data, name: `${aux ? 'aux' : 'arg'}:${n.name}`, shape})
  }

  return out
}
