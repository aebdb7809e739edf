/**
 * `icc doctor`'s checks of what `icc serve` loads (`for: "icc"`): the C library against what Node.js, sharp and
 * ONNX Runtime need on this platform (the catalog's platform table), which ONNX Runtime backend serve will use,
 * the ONNX Runtime binding (and the system libraries it needs) and the sharp image decoder.
 */
import type {CheckStatus, DoctorCheck} from './doctor-types.js'

import {iccMinimumGlibc, type IccSupport} from '../connector/catalog.js'
import {resolveRuntime, type Runtime} from '../model/session.js'
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

/**
 * Which ONNX Runtime backend `icc serve` will use: the session factory's own answer (../model/session.ts
 * resolveRuntime) for `runtime` (default: $ICC_RUNTIME, else auto), here or, with `arch`, for another architecture
 * from what is installed for it; the platform table's backend for this architecture beside it as evidence.
 */
export async function checkBackend(
  options: {arch?: string; runtime?: Runtime; support?: IccSupport} = {},
): Promise<DoctorCheck> {
  const title = 'ONNX Runtime backend (icc serve --runtime)'
  const evidence = {
    arch: options.arch ?? process.arch,
    platformTable: options.support?.backend,
    runtime: options.runtime ?? (process.env.ICC_RUNTIME || 'auto'),
  }
  try {
    const {backend, note} = await resolveRuntime(options.runtime, options.arch ? {arch: options.arch} : undefined)
    return {
      evidence: {...evidence, backend, note},
      for: 'icc',
      id: 'backend',
      message:
        backend === 'native'
          ? 'icc serve will use onnxruntime-node (native)'
          : `icc serve will use the WebAssembly runtime (onnxruntime-web)${note ? `: ${note}` : ''}`,
      status: 'pass',
      title,
    }
  } catch (error) {
    const e = error as Error & {suggestions?: string[]}
    return {
      evidence: {...evidence, error: e.message},
      fix: e.suggestions?.join(' '),
      for: 'icc',
      id: 'backend',
      message: e.message,
      status: 'fail',
      title,
    }
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
