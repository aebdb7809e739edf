/**
 * `icc doctor`'s checks of what `icc serve` loads (`for: "icc"`): the C library against what Node.js, sharp and
 * ONNX Runtime need on this platform (the catalog's platform table), which ONNX Runtime backend serve will use,
 * the ONNX Runtime binding (and the system libraries it needs) and the sharp image decoder.
 */
import {readdir, stat} from 'node:fs/promises'
import {createRequire} from 'node:module'
import {dirname, join} from 'node:path'

import type {CheckStatus, DoctorCheck} from './doctor-types.js'

import {iccMinimumGlibc, type IccSupport} from '../connector/catalog.js'
import {loadSharp, sharpFix} from '../model/sharp.js'
import {checkBinary} from './libraries.js'
import {glibcAtLeast} from './platform.js'

/** What the runtime checks look at; tests inject a fake glibc or architecture. */
export interface RuntimeFacts {
  /** The running glibc (undefined: not glibc, e.g. musl, or unknown). */
  glibc?: string
  /** What icc needs on this Node's architecture (undefined: no connector platform has it). */
  support?: IccSupport
}

const require = createRequire(import.meta.url)

/** The parts of the platform table whose minimum glibc `glibc` is below, as "sharp needs 2.36". */
function glibcShortfalls(glibc: string, support: IccSupport): string[] {
  return Object.entries(support.minimumGlibc)
    .filter(([, needed]) => needed !== undefined && !glibcAtLeast(glibc, needed))
    .map(([part, needed]) => `${part === 'node' ? "Node.js's official build" : part} needs ${needed}`)
}

/** glibc against what Node.js, ONNX Runtime and sharp need on this platform (measured: see the catalog). */
export function checkGlibc(facts: RuntimeFacts): DoctorCheck {
  const title = 'glibc for Node.js, ONNX Runtime, sharp'
  const {glibc, support} = facts
  const evidence = {found: glibc, minimum: support?.minimumGlibc}
  if (!support || !glibc) {
    const why = support ? 'this is not a glibc system (musl?)' : `no connector platform runs Node.js ${process.arch}`
    return {evidence, for: 'icc', id: 'glibc', message: `not checked: ${why}`, status: 'skip', title}
  }

  const short = glibcShortfalls(glibc, support)
  return {
    evidence,
    fix:
      short.length === 0
        ? undefined
        : `Upgrade the operating system to one with glibc >= ${iccMinimumGlibc(support)}. ${support.notes.join(' ')}`,
    for: 'icc',
    id: 'glibc',
    message:
      short.length === 0
        ? `glibc ${glibc} (needs ${Object.entries(support.minimumGlibc)
            .map(([p, v]) => `${p} ${v}`)
            .join(', ')})`
        : `glibc ${glibc} is too old: ${short.join(', ')}`,
    status: short.length === 0 ? 'pass' : 'fail',
    title,
  }
}

/** onnxruntime-node's binding for this platform and architecture, when its package ships one. */
export async function findOnnxBinding(arch: string = process.arch): Promise<string | undefined> {
  let pkgDir: string
  try {
    pkgDir = dirname(require.resolve('onnxruntime-node/package.json'))
  } catch {
    return undefined
  }

  for (const napi of (await readdir(join(pkgDir, 'bin')).catch(() => [] as string[])).sort().reverse()) {
    const p = join(pkgDir, 'bin', napi, process.platform, arch, 'onnxruntime_binding.node')
    if (
      await stat(p).then(
        () => true,
        () => false,
      )
    )
      return p
  }

  return undefined
}

/** Which ONNX Runtime backend `icc serve` will use here: native where onnxruntime-node has a binary, else wasm. */
export function checkBackend(binding: string | undefined, facts: RuntimeFacts): DoctorCheck {
  const title = 'ONNX Runtime backend (icc serve)'
  if (binding) {
    return {
      evidence: {backend: 'native', binding, platformTable: facts.support?.backend},
      for: 'icc',
      id: 'backend',
      message: `icc serve will use native ONNX Runtime (onnxruntime-node ${process.platform}-${process.arch})`,
      status: 'pass',
      title,
    }
  }

  let web: string | undefined
  try {
    web = require.resolve('onnxruntime-web/package.json')
  } catch {
    // not installed
  }

  const why = `onnxruntime-node has no binary for ${process.platform}-${process.arch}`
  return {
    evidence: {backend: 'wasm', onnxruntimeWeb: web, platformTable: facts.support?.backend},
    fix: web
      ? undefined
      : "Install icc's optional dependency onnxruntime-web (npm install onnxruntime-web in icc's folder), or use an icc version with the WebAssembly backend.",
    for: 'icc',
    id: 'backend',
    message: web
      ? `icc serve will use ONNX Runtime WebAssembly (onnxruntime-web): ${why}`
      : `${why}, and onnxruntime-web (the WebAssembly backend) is not installed`,
    status: web ? 'pass' : 'fail',
    title,
  }
}

/**
 * onnxruntime-node loads, and its binding finds the system libraries it needs. Where it has no binary (armv7) it is
 * a warning, not a failure: serve uses the WebAssembly runtime there. Tests inject `load`.
 */
export async function checkOnnxRuntime(
  binding: string | undefined,
  load: () => Promise<typeof import('onnxruntime-node')> = () => import('onnxruntime-node'),
): Promise<DoctorCheck> {
  const title = 'ONNX Runtime binding (icc serve)'
  try {
    const ort = await load()
    const evidence: Record<string, unknown> = {
      binding,
      backends: ort.listSupportedBackends?.(),
      versions: ort.env.versions,
    }
    let status: CheckStatus = 'pass'
    let message = `onnxruntime-node ${ort.env.versions.node ?? ''} loaded`
    let fix: string | undefined
    if (binding) {
      try {
        const b = await checkBinary(binding)
        evidence.libraryNeeds = b.needs
        evidence.unresolved = b.unresolved
        if (!b.ok) {
          status = 'fail'
          const missing = b.needs.filter((n) => !n.ok).map((n) => `${n.soname}: ${n.missing.join(', ')}`)
          message = `binding needs what this system lacks: ${[...b.unresolved, ...missing].join('; ')}`
          fix =
            'Upgrade the C/C++ runtime libraries (libc6, libstdc++6) or use an onnxruntime-node build for this system.'
        }
      } catch (error) {
        evidence.lddError = (error as Error).message
      }
    }

    return {evidence, fix, for: 'icc', id: 'onnxruntime', message, status, title}
  } catch (error) {
    return {
      evidence: {error: (error as Error).message},
      fix: binding
        ? 'Reinstall icc (npm install -g icc) so that onnxruntime-node downloads its binary for this platform.'
        : `onnxruntime-node has no binary for ${process.platform}-${process.arch}: icc serve uses the WebAssembly backend instead (see the backend check).`,
      for: 'icc',
      id: 'onnxruntime',
      message: `cannot load onnxruntime-node: ${(error as Error).message}`,
      // Where no binary exists the WebAssembly backend stands in: not a failure of its own.
      status: binding ? 'fail' : 'warn',
      title,
    }
  }
}

/** sharp loads; when it does not and glibc is below what its prebuilt needs, say both versions. */
export async function checkSharp(facts: RuntimeFacts): Promise<DoctorCheck> {
  const title = 'sharp image decoder (icc serve)'
  try {
    const sharp = await loadSharp()
    return {
      evidence: {versions: {sharp: sharp.versions.sharp, vips: sharp.versions.vips}},
      for: 'icc',
      id: 'sharp',
      message: `sharp ${sharp.versions.sharp ?? ''} (libvips ${sharp.versions.vips})`,
      status: 'pass',
      title,
    }
  } catch (error) {
    return {
      evidence: {error: (error as Error).message, glibc: facts.glibc, needs: facts.support?.minimumGlibc.sharp},
      fix: sharpFix(facts),
      for: 'icc',
      id: 'sharp',
      message: (error as Error).message,
      status: 'fail',
      title,
    }
  }
}
