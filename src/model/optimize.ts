/**
 * ONNX Runtime's CPU graph optimisation done ahead of time, in parts, and kept beside the conversion cache, so that
 * loading a model for `icc serve` costs about one copy of its weights.
 *
 * Why: creating a session from the converted model parses it, optimises the graph (the NCHWc transform writes a
 * reordered copy of every convolution's weights) and copies the result into ONNX Runtime's own tensors: a peak of about
 * twice the weights, plus the runtime (ResNet-152: 575 MB for 236 MB of weights; docs/performance.md). A model saved
 * after optimisation, its weights in an external file, loads with optimisation off and its weights mapped from that
 * file: about the weights plus 100 MB. Saving it costs the same double peak once, so it is made part by part
 * (./onnx-export/split.ts splitPlan: at most partBytesFor's weights each, cut where one tensor alone flows on), each
 * part optimised and saved by a session of its own, and the parts joined into one model. The optimised model is
 * specific to this machine's CPU and ONNX Runtime version (its cache key says so).
 */
import {randomBytes} from 'node:crypto'
import {existsSync} from 'node:fs'
import {readFile, rm, stat, writeFile} from 'node:fs/promises'
import {cpus} from 'node:os'
import {basename, join} from 'node:path'
import onnxProto from 'onnx-proto'

import type {Plan} from './onnx-export/index.js'

import {atomicWrite, CACHE, sha256, sha256Files} from './cache.js'
import {makeWritableDir} from './disk-errors.js'
import {byteLength, EXTERNAL_MIN_BYTES, writePlan} from './onnx-export/index.js'
import {nativeVersions, openSession} from './session.js'

const {onnx} = onnxProto

/** Weights per part at most: the parts' own peak stays well under the weights of a deep model. */
export const PART_BYTES = 32 * 1024 * 1024

/** Parts no smaller than this: a small model is not cut into many parts (each cut costs a reorder when it runs). */
const MIN_PART_BYTES = 4 * 1024 * 1024

/**
 * The most weights of one part for a model of `weightBytes`: PART_BYTES, and a quarter of the weights of a smaller
 * model. Why: a part's session peaks at about three times the part's weights above the runtime (the file's bytes,
 * ONNX Runtime's tensors, the NCHWc copies), the final load at about the whole weights plus the activations, so
 * parts of a quarter keep the preparation of a model under its load (ResNet-18, 45 MB: a part of 43 MB peaked at
 * 217 MB, parts of at most 11 MB at about 160 MB, as the cached load; docs/performance.md).
 */
export function partBytesFor(weightBytes: number): number {
  return Math.min(PART_BYTES, Math.max(MIN_PART_BYTES, Math.floor(weightBytes / 4)))
}

/** The weights of a plan, in bytes. */
export function planBytes(plan: Plan): number {
  return plan.inits.reduce((sum, t) => sum + byteLength(t.dims), 0)
}

/** The weights file of a part written by writeParts. */
const inputData = (input: string) => `${input}.data`

/**
 * Write each part as a model of its own: `${base}.${k}.in.onnx`, its weights in `${base}.${k}.in.onnx.data` (mapped
 * by the part's session rather than parsed with the model: a part of 19 MB peaked 9 MB lower). Returns their paths.
 */
export async function writeParts(parts: Plan[], base: string): Promise<string[]> {
  const paths: string[] = []
  for (const [k, part] of parts.entries()) {
    const path = `${base}.${k}.in.onnx`
    await writePlan(part, path, {minBytes: EXTERNAL_MIN_BYTES, path: inputData(path)})
    paths.push(path)
  }

  return paths
}

/**
 * Optimise each part written by writeParts (ONNX Runtime, CPU, level `all`) and join the results into `${base}.onnx`,
 * whose weights lie in `${base}.${k}.data`. Returns the joined model's path and the files it needs.
 */
export async function optimizeParts(inputs: string[], base: string): Promise<{files: string[]; path: string}> {
  const graphs: onnxProto.onnx.IModelProto[] = []
  const files: string[] = []
  try {
    for (const [k, input] of inputs.entries()) {
      const out = `${base}.${k}.onnx`
      await optimizePart(input, out, `${basename(base)}.${k}.data`)
      await rm(input, {force: true})
      await rm(inputData(input), {force: true})
      graphs.push(onnx.ModelProto.decode(await readFile(out)))
      await rm(out, {force: true})
      // a part without an initializer of EXTERNAL_MIN_BYTES has no data file
      if (existsSync(`${base}.${k}.data`)) files.push(`${base}.${k}.data`)
    }

    const path = `${base}.onnx`
    await writeFile(path, onnx.ModelProto.encode(joinParts(graphs)).finish())
    return {files: [...files, path], path}
  } catch (error) {
    // nothing of a preparation that failed stays in the cache: the parts, their weights, what was made of them
    const made = inputs.flatMap((input, k) => [input, inputData(input), `${base}.${k}.onnx`, `${base}.${k}.data`])
    await Promise.all([...made, `${base}.onnx`].map(async (f) => rm(f, {force: true})))
    throw error
  }
}

/** Have ONNX Runtime optimise one part and save it to `out`, its weights in `data` (a name beside `out`). */
async function optimizePart(input: string, out: string, data: string): Promise<void> {
  // writing an optimised model is onnxruntime-node's (the wasm runtime cannot): native, whatever --runtime says
  const session = await openSession(
    input,
    {
      executionProviders: ['cpu'],
      extra: {
        session: {
          optimized_model_external_initializers_file_name: data,
          optimized_model_external_initializers_min_size_in_bytes: String(EXTERNAL_MIN_BYTES),
        },
      },
      graphOptimizationLevel: 'all',
      intraOpNumThreads: 1,
      logSeverityLevel: 3,
      optimizedModelFilePath: out,
    },
    'native',
  )
  await session.release()
}

/**
 * One model from consecutive parts: the nodes, initializers and value infos of all, each part's inner names given a
 * prefix of their own (the optimiser names what it adds alike in every part), the first's input, the last's output.
 */
export function joinParts(parts: onnxProto.onnx.IModelProto[]): onnxProto.onnx.IModelProto {
  const node: onnxProto.onnx.INodeProto[] = []
  const initializer: onnxProto.onnx.ITensorProto[] = []
  const valueInfo: onnxProto.onnx.IValueInfoProto[] = []
  const opsets = new Map<string, number>()
  for (const [k, part] of parts.entries()) {
    const g = part.graph!
    const boundary = new Set([...g.input!, ...g.output!].map((v) => v.name!))
    const rename = (name: string) => (name === '' || boundary.has(name) ? name : `p${k}/${name}`)
    for (const n of g.node ?? []) {
      node.push({
        ...n,
        input: n.input!.map((x) => rename(x)),
        name: `p${k}/${n.name}`,
        output: n.output!.map((x) => rename(x)),
      })
    }

    for (const t of g.initializer ?? []) initializer.push({...t, name: rename(t.name!)})
    for (const v of g.valueInfo ?? []) if (!boundary.has(v.name!)) valueInfo.push({...v, name: rename(v.name!)})
    for (const o of part.opsetImport ?? []) {
      const domain = o.domain ?? ''
      opsets.set(domain, Math.max(opsets.get(domain) ?? 0, Number(o.version)))
    }
  }

  const first = parts[0]
  const graph = {...first.graph, initializer, node, output: parts.at(-1)!.graph!.output, valueInfo}
  const opsetImport = [...opsets].map(([domain, version]) => ({domain, version}))
  return onnx.ModelProto.create({...first, graph, opsetImport})
}

interface OptimizedSidecar {
  files: {length: number; name: string; sha256: string}[]
  path: string
}

/** The key of the optimised model for a converted one: this machine's CPU and ONNX Runtime version are part of it. */
export async function optimizedKey(key: string): Promise<string> {
  const cpu = cpus()[0]?.model ?? ''
  const versions = JSON.stringify(await nativeVersions())
  return sha256(OPTIMIZER_VERSION, '\0', key, '\0', versions, '\0', process.arch, '\0', cpu)
}

const OPTIMIZER_VERSION = '1'

/**
 * The optimised model kept for `key` in `${cacheDir}/onnx-cpu` (checked against the lengths and SHA-256s recorded
 * beside it, streamed), or made with `build` (which gets the base path to pass to writeParts/optimizeParts).
 */
export async function cachedOptimized(
  cacheDir: string,
  key: string,
  build: (base: string) => Promise<{files: string[]; path: string}>,
): Promise<string> {
  const dir = join(cacheDir, 'onnx-cpu')
  const base = join(dir, await optimizedKey(key))
  let side: OptimizedSidecar | undefined
  try {
    side = JSON.parse(await readFile(`${base}.json`, 'utf8')) as OptimizedSidecar
    let ok = true
    for (const f of side.files) {
      const path = join(dir, f.name)
      ok &&= (await stat(path)).size === f.length && (await sha256Files(path)) === f.sha256
    }

    if (ok) return join(dir, side.path)
  } catch {
    // absent or unreadable: made again
  }

  // a damaged entry's files go; the new ones get names of their own, so that two runners making the same entry at
  // once never write the same file (the last sidecar written wins)
  for (const f of side?.files ?? []) await rm(join(dir, f.name), {force: true})
  await makeWritableDir(dir, CACHE)
  const made = await build(`${base}.${process.pid}-${randomBytes(4).toString('hex')}`)
  const files = await Promise.all(
    made.files.map(async (f) => ({length: (await stat(f)).size, name: basename(f), sha256: await sha256Files(f)})),
  )
  await atomicWrite(`${base}.json`, JSON.stringify({files, path: basename(made.path)} satisfies OptimizedSidecar))
  return made.path
}
