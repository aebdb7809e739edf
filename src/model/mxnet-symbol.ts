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

/** `"(3, 3)"`, `"(3,3)"`, `"[1, 2]"`, `"3"` -> numbers. */
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

export interface ShapeInference {
  /** Output shape of each node (output 0), indexed like `nodes`. */
  nodeShapes: (number[] | undefined)[]
  /** Shapes of the variables, by name (parameters and inputs). */
  varShapes: Map<string, number[]>
}

/**
 * Infer every node's output shape from the data input shape (and the known parameter shapes, if any). Fills in
 * the shapes of parameters the graph implies (conv/FC weights, BatchNorm vectors, PReLU slopes).
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
    const a = node.attrs
    const ins = node.inputs.map(([j]) => shapes[j])
    const x = ins[0]
    const fail = (what: string): never => {
      throw new ModelError('BAD_SYMBOL', `${source}: ${opName(node)}: ${what}`)
    }

    const needX = (): number[] => x ?? fail('the shape of its input is unknown')
    switch (node.op) {
      case 'null': {
        const s = inputs[node.name] ?? known.get(node.name)
        if (s) setVar(i, s)
        else if (a.__shape__ && !parseTuple(a.__shape__).includes(0)) setVar(i, parseTuple(a.__shape__))
        break
      }

      case 'Convolution': {
        const xs = needX()
        const k = parseTuple(a.kernel)
        const nd = k.length
        const stride = parseTuple(a.stride, []).length > 0 ? parseTuple(a.stride) : k.map(() => 1)
        const pad = parseTuple(a.pad, []).length > 0 ? parseTuple(a.pad) : k.map(() => 0)
        const dil = parseTuple(a.dilate, []).length > 0 ? parseTuple(a.dilate) : k.map(() => 1)
        const nf = parseNumber(a.num_filter, Number.NaN)
        const g = parseNumber(a.num_group, 1)
        if (!Number.isInteger(nf) || nf <= 0) fail('num_filter is missing')
        if (xs.length !== nd + 2) fail(`kernel ${a.kernel} does not fit input shape (${xs.join(',')})`)
        if (xs[1] % g !== 0) fail(`${xs[1]} channels cannot be split into ${g} groups`)
        setVar(node.inputs[1][0], [nf, xs[1] / g, ...k])
        if (!parseBool(a.no_bias, false) && node.inputs[2]) setVar(node.inputs[2][0], [nf])
        const sp = k.map((kk, d) => outSize(xs[d + 2], kk, pad[d] ?? 0, stride[d] ?? 1, dil[d] ?? 1, false))
        if (sp.some((v) => v <= 0)) fail(`input (${xs.join(',')}) is too small for the kernel`)
        shapes[i] = [xs[0], nf, ...sp]
        break
      }

      case 'BatchNorm': {
        const xs = needX()
        for (const [j] of node.inputs.slice(1)) setVar(j, [xs[1]])
        shapes[i] = xs
        break
      }

      case 'Pooling': {
        const xs = needX()
        if (parseBool(a.global_pool, false)) {
          shapes[i] = [xs[0], xs[1], ...xs.slice(2).map(() => 1)]
          break
        }

        const k = parseTuple(a.kernel)
        const stride = parseTuple(a.stride, []).length > 0 ? parseTuple(a.stride) : k.map(() => 1)
        const pad = parseTuple(a.pad, []).length > 0 ? parseTuple(a.pad) : k.map(() => 0)
        const ceil = (a.pooling_convention ?? 'valid') === 'full'
        const sp = k.map((kk, d) => outSize(xs[d + 2], kk, pad[d] ?? 0, stride[d] ?? 1, 1, ceil))
        if (sp.some((v) => v <= 0)) fail(`input (${xs.join(',')}) is too small for the kernel`)
        shapes[i] = [xs[0], xs[1], ...sp]
        break
      }

      case 'FullyConnected': {
        const xs = needX()
        const nh = parseNumber(a.num_hidden, Number.NaN)
        if (!Number.isInteger(nh) || nh <= 0) fail('num_hidden is missing')
        const flatten = parseBool(a.flatten, true)
        const inF = flatten ? xs.slice(1).reduce((p, q) => p * q, 1) : xs.at(-1)!
        setVar(node.inputs[1][0], [nh, inF])
        if (!parseBool(a.no_bias, false) && node.inputs[2]) setVar(node.inputs[2][0], [nh])
        shapes[i] = flatten ? [xs[0], nh] : [...xs.slice(0, -1), nh]
        break
      }

      case 'LeakyReLU': {
        const xs = needX()
        if ((a.act_type ?? 'leaky') === 'prelu' && node.inputs[1]) setVar(node.inputs[1][0], [xs[1]])
        shapes[i] = xs
        break
      }

      case 'Flatten': {
        const xs = needX()
        shapes[i] = [xs[0], xs.slice(1).reduce((p, q) => p * q, 1)]
        break
      }

      case 'Concat': {
        const dim = parseNumber(a.dim, 1)
        const all = ins.map((s) => s ?? fail('the shape of an input is unknown'))
        const out = [...all[0]]
        out[dim] = all.reduce((p, s) => p + s[dim], 0)
        shapes[i] = out
        break
      }

      default: {
        shapes[i] = x
      }
    }
  }

  return {nodeShapes: shapes, varShapes}
}
