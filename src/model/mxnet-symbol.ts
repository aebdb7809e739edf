/**
 * Reader of MXNet symbol files (`*-symbol.json`) of every era, plus shape inference over the graph.
 *
 * Handles node attributes under `attrs` (MXNet >= 1.0), `attr` (0.9-0.12) or `param` (0.8), inputs of two or
 * three elements, files with or without `mxnet_version`, and MXNet's attribute strings (`"(3, 3)"`, `"True"`,
 * `"1"`). The graph is validated: inputs must point to earlier nodes (so it cannot be cyclic), and the file and
 * node count are bounded.
 */
import {ModelError} from '../errors.js'

export interface SymbolNode {
  attrs: Record<string, string>
  inputs: [number, number][]
  name: string
  op: string
}

export interface MxSymbol {
  argNodes: number[]
  heads: [number, number][]
  /** e.g. 10600 for MXNet 1.6.0, when recorded. */
  mxnetVersion?: number
  nodes: SymbolNode[]
}

export const MAX_SYMBOL_BYTES = 64 * 1024 * 1024
export const MAX_NODES = 100_000

function bad(source: string, what: string): never {
  throw new ModelError('BAD_SYMBOL', `${source}: ${what}`, {
    suggestions: ['The symbol file must be the *-symbol.json that MXNet wrote next to the .params file.'],
  })
}

function pair(v: unknown, source: string, where: string): [number, number] {
  if (!Array.isArray(v) || v.length < 2 || v.length > 3 || !v.every((x) => Number.isInteger(x) && x >= 0)) {
    bad(source, `${where}: expected [node, output(, version)]`)
  }

  return [v[0] as number, v[1] as number]
}

export function parseSymbol(text: string, source = 'symbol file'): MxSymbol {
  if (text.length > MAX_SYMBOL_BYTES) bad(source, `larger than ${MAX_SYMBOL_BYTES} bytes`)
  // counted before parsing: a million nodes would take hundreds of MB as objects (one "op" key per node)
  const ops = countOf(text, '"op"')
  if (ops > MAX_NODES) bad(source, `about ${ops} nodes (limit ${MAX_NODES})`)
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    bad(source, `not valid JSON (${(error as Error).message})`)
  }

  const doc = json as {arg_nodes?: unknown; attrs?: {mxnet_version?: unknown}; heads?: unknown; nodes?: unknown}
  if (!doc || typeof doc !== 'object' || !Array.isArray(doc.nodes)) bad(source, 'no "nodes" array')
  if (doc.nodes.length === 0) bad(source, '"nodes" is empty')
  if (doc.nodes.length > MAX_NODES) bad(source, `${doc.nodes.length} nodes (limit ${MAX_NODES})`)
  const nodes: SymbolNode[] = doc.nodes.map((n: unknown, i: number) => {
    const node = n as {attr?: unknown; attrs?: unknown; inputs?: unknown; name?: unknown; op?: unknown; param?: unknown}
    if (!node || typeof node !== 'object' || Array.isArray(node)) bad(source, `node ${i} is not an object`)
    if (typeof node.op !== 'string' || typeof node.name !== 'string') bad(source, `node ${i} lacks "op" or "name"`)
    const attrs: Record<string, string> = {}
    for (const bag of [node.param, node.attr, node.attrs]) {
      if (bag && typeof bag === 'object' && !Array.isArray(bag)) {
        for (const [k, v] of Object.entries(bag)) if (typeof v === 'string') attrs[k] = v
      }
    }

    if (!Array.isArray(node.inputs)) bad(source, `node ${i} (${node.name}) has no "inputs" array`)
    const inputs = node.inputs.map((x, j) => pair(x, source, `node ${i} (${node.name}) input ${j}`))
    for (const [src] of inputs) {
      if (src >= i) bad(source, `node ${i} (${node.name}) takes input from node ${src}, which is not an earlier node`)
    }

    return {attrs, inputs, name: node.name, op: node.op}
  })
  checkNames(nodes, source)
  const heads = Array.isArray(doc.heads) ? doc.heads.map((h, j) => pair(h, source, `head ${j}`)) : []
  if (heads.length === 0) heads.push([nodes.length - 1, 0])
  for (const [h] of heads) if (h >= nodes.length) bad(source, `head points to node ${h}, which does not exist`)
  const argNodes = Array.isArray(doc.arg_nodes)
    ? doc.arg_nodes.filter((x): x is number => Number.isInteger(x))
    : nodes.flatMap((n, i) => (n.op === 'null' ? [i] : []))
  const v = doc.attrs?.mxnet_version
  const mxnetVersion = Array.isArray(v) && typeof v[1] === 'number' ? v[1] : undefined
  return {argNodes, heads, mxnetVersion, nodes}
}

function countOf(text: string, what: string): number {
  let n = 0
  for (let at = text.indexOf(what); at !== -1; at = text.indexOf(what, at + what.length)) n++
  return n
}

/** Node names are unique (they name the ONNX tensors): a repeated one is BAD_SYMBOL naming it. */
function checkNames(nodes: SymbolNode[], source: string): void {
  const seen = new Map<string, number>()
  for (const [i, n] of nodes.entries()) {
    const first = seen.get(n.name)
    if (first !== undefined) bad(source, `"${n.name}" names nodes ${first} and ${i}; node names must be unique`)
    seen.set(n.name, i)
  }
}

/** `"(3, 3)", `"(3,3)"`, `"[1, 2]"`, `"3"` -> numbers. */
export function parseTuple(value: string | undefined, fallback: number[] = []): number[] {
  if (value === undefined) return fallback
  const inner = value
    .trim()
    .replace(/^[([]/, '')
    .replace(/[)\]]$/, '')
  if (inner.trim() === '') return []
  return inner
    .split(',')
    .filter((s) => s.trim() !== '')
    .map((s) => {
      const t = s.trim()
      return t === 'None' ? -1 : Number(t.replace(/L$/, ''))
    })
}

export function parseBool(value: string | undefined, fallback: boolean): boolean {
  if (value === undefined) return fallback
  const v = value.trim().toLowerCase()
  if (v === 'true' || v === '1') return true
  if (v === 'false' || v === '0') return false
  return fallback
}

export function parseNumber(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  return Number.isFinite(n) ? n : fallback
}

/** Names of the inputs of `nodes[i]` that are parameters (variables that are not the data/label inputs). */
export function opName(node: SymbolNode): string {
  return `${node.op} node "${node.name}"`
}

function outSize(x: number, k: number, p: number, s: number, d: number, ceil: boolean): number {
  const span = x + 2 * p - (d * (k - 1) + 1)
  return 1 + (ceil ? Math.ceil(span / s) : Math.floor(span / s))
}

/** The sliding window of a Convolution or a (non-global) Pooling node, MXNet's defaults filled in. */
export interface Window {
  dilate: number[]
  kernel: number[]
  pad: number[]
  stride: number[]
}

function symbolError(source: string, node: SymbolNode, what: string): ModelError {
  return new ModelError('BAD_SYMBOL', `${source}: ${opName(node)}: ${what}`, {
    details: {node: node.name, op: node.op},
    suggestions: ['The symbol file must be the *-symbol.json that MXNet wrote next to the .params file.'],
  })
}

/**
 * The node's kernel, stride (default 1), pad (default 0) and dilate (default 1), checked as MXNet checks them: one
 * to three kernel dimensions, each tuple as long as the kernel, kernel/stride/dilate positive integers, pad a
 * non-negative integer. Anything else (`stride (0,0)`, `dilate (NaN,NaN)`) is BAD_SYMBOL naming the node.
 */
export function windowOf(node: SymbolNode, source = 'symbol'): Window {
  const a = node.attrs
  const kernel = parseTuple(a.kernel)
  const nd = kernel.length
  const check = (key: string, v: number[], min: number) => {
    if (v.length !== nd || !v.every((x) => Number.isInteger(x) && x >= min)) {
      const want = min > 0 ? 'positive integers' : 'non-negative integers'
      throw symbolError(
        source,
        node,
        `${key} ${a[key] ?? '(missing)'} must be ${nd || 'one to three'} ${want} (one per kernel dimension)`,
      )
    }

    return v
  }

  if (nd < 1 || nd > 3)
    throw symbolError(source, node, `kernel ${a.kernel ?? '(missing)'} must have one to three dimensions`)
  const given = (key: string, fallback: number) => {
    const v = parseTuple(a[key], [])
    return v.length > 0 ? v : kernel.map(() => fallback)
  }

  return {
    dilate: check('dilate', given('dilate', 1), 1),
    kernel: check('kernel', kernel, 1),
    pad: check('pad', given('pad', 0), 0),
    stride: check('stride', given('stride', 1), 1),
  }
}

export interface ShapeInference {
  /** Output shape of each node (output 0), indexed like `nodes`. */
  nodeShapes: (number[] | undefined)[]
  /** Shapes of the variables, by name (parameters and inputs). */
  varShapes: Map<string, number[]>
}

/** What a shape rule sees of one node. */
interface ShapeStep {
  a: Record<string, string>
  fail: (what: string) => never
  /** The input shapes. */
  ins: (number[] | undefined)[]
  node: SymbolNode
  /** The data input's shape (BAD_SYMBOL when unknown). */
  needX: () => number[]
  /** Record the shape the node implies for the variable that is its input `k`. */
  setParam: (k: number, shape: number[]) => void
  source: string
}

const product = (s: number[]) => s.reduce((p, q) => p * q, 1)

function convolutionShape(t: ShapeStep): number[] {
  const xs = t.needX()
  const {a} = t
  const w = windowOf(t.node, t.source)
  const nf = parseNumber(a.num_filter, Number.NaN)
  const g = parseNumber(a.num_group, 1)
  if (!Number.isInteger(nf) || nf <= 0) t.fail('num_filter is missing')
  if (!Number.isInteger(g) || g <= 0) t.fail(`num_group ${a.num_group} must be a positive integer`)
  if (xs.length !== w.kernel.length + 2) t.fail(`kernel ${a.kernel} does not fit input shape (${xs.join(',')})`)
  if (xs[1] % g !== 0) t.fail(`${xs[1]} channels cannot be split into ${g} groups`)
  if (nf % g !== 0) t.fail(`num_filter ${nf} cannot be split into ${g} groups`)
  t.setParam(1, [nf, xs[1] / g, ...w.kernel])
  if (!parseBool(a.no_bias, false) && t.node.inputs[2]) t.setParam(2, [nf])
  const sp = w.kernel.map((k, d) => outSize(xs[d + 2], k, w.pad[d], w.stride[d], w.dilate[d], false))
  if (sp.some((v) => v <= 0)) t.fail(`input (${xs.join(',')}) is too small for the kernel`)
  return [xs[0], nf, ...sp]
}

function poolingShape(t: ShapeStep): number[] {
  const xs = t.needX()
  if (parseBool(t.a.global_pool, false)) return [xs[0], xs[1], ...xs.slice(2).map(() => 1)]
  const w = windowOf(t.node, t.source)
  if (xs.length !== w.kernel.length + 2) t.fail(`kernel ${t.a.kernel} does not fit input shape (${xs.join(',')})`)
  const ceil = (t.a.pooling_convention ?? 'valid') === 'full'
  const sp = w.kernel.map((k, d) => outSize(xs[d + 2], k, w.pad[d], w.stride[d], 1, ceil))
  if (sp.some((v) => v <= 0)) t.fail(`input (${xs.join(',')}) is too small for the kernel`)
  return [xs[0], xs[1], ...sp]
}

function fullyConnectedShape(t: ShapeStep): number[] {
  const xs = t.needX()
  const nh = parseNumber(t.a.num_hidden, Number.NaN)
  if (!Number.isInteger(nh) || nh <= 0) t.fail('num_hidden is missing')
  const flatten = parseBool(t.a.flatten, true)
  t.setParam(1, [nh, flatten ? product(xs.slice(1)) : xs.at(-1)!])
  if (!parseBool(t.a.no_bias, false) && t.node.inputs[2]) t.setParam(2, [nh])
  return flatten ? [xs[0], nh] : [...xs.slice(0, -1), nh]
}

function concatShape(t: ShapeStep): number[] {
  const dim = parseNumber(t.a.dim, 1)
  const all = t.ins.map((s) => s ?? t.fail('the shape of an input is unknown'))
  const out = [...all[0]]
  out[dim] = all.reduce((p, s) => p + s[dim], 0)
  return out
}

/** Output shape rules of the ops that change shapes or imply parameter shapes; any other op keeps its input's. */
const SHAPE_RULES: Record<string, (t: ShapeStep) => number[]> = {
  BatchNorm(t) {
    const xs = t.needX()
    for (const k of t.node.inputs.keys()) if (k > 0) t.setParam(k, [xs[1]])
    return xs
  },
  Concat: concatShape,
  Convolution: convolutionShape,
  Flatten: (t) => [t.needX()[0], product(t.needX().slice(1))],
  FullyConnected: fullyConnectedShape,
  LeakyReLU(t) {
    const xs = t.needX()
    if ((t.a.act_type ?? 'leaky') === 'prelu' && t.node.inputs[1]) t.setParam(1, [xs[1]])
    return xs
  },
  Pooling: poolingShape,
}

/**
 * Infer every node's output shape from the data input shape (and the known parameter shapes, if any). Fills in
 * the shapes of parameters the graph implies (conv/FC weights, BatchNorm vectors, PReLU slopes); a known parameter
 * whose shape differs from the implied one is BAD_PARAMS naming it.
 */
export function inferShapes(
  sym: MxSymbol,
  inputs: Record<string, number[]>,
  known: Map<string, number[]> = new Map(),
  source = 'symbol',
): ShapeInference {
  const shapes: (number[] | undefined)[] = []
  const varShapes = new Map<string, number[]>()
  const setVar = (idx: number, shape: number[]) => {
    const n = sym.nodes[idx]
    if (n.op !== 'null') return
    varShapes.set(n.name, shape)
    shapes[idx] = shape
  }

  for (const [i, node] of sym.nodes.entries()) {
    if (node.op === 'null') {
      const a = node.attrs
      const s = inputs[node.name] ?? known.get(node.name)
      if (s) setVar(i, s)
      else if (a.__shape__ && !parseTuple(a.__shape__).includes(0)) setVar(i, parseTuple(a.__shape__))
      continue
    }

    const ins = node.inputs.map(([j]) => shapes[j])
    const fail = (what: string): never => {
      throw new ModelError('BAD_SYMBOL', `${source}: ${opName(node)}: ${what}`)
    }

    const setParam = (k: number, shape: number[]) => {
      const v = sym.nodes[node.inputs[k][0]]
      const have = known.get(v.name)
      if (v.op === 'null' && have && have.join('x') !== shape.join('x')) {
        throw new ModelError(
          'BAD_PARAMS',
          `${source}: ${opName(node)}: parameter ${v.name} is ${have.join('x')} in the params file, the graph needs ${shape.join('x')}`,
          {
            details: {have, name: v.name, need: shape, node: node.name},
            suggestions: [
              'Use the .params file saved with this symbol (same model prefix and epoch), and the input shape it was trained with.',
            ],
          },
        )
      }

      setVar(node.inputs[k][0], shape)
    }

    const step = {
      a: node.attrs,
      fail,
      ins,
      node,
      needX: () => ins[0] ?? fail('the shape of its input is unknown'),
      setParam,
      source,
    }
    const rule = SHAPE_RULES[node.op]
    shapes[i] = rule ? rule(step) : ins[0]
  }

  return {nodeShapes: shapes, varShapes}
}
