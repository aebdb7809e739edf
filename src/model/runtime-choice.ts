/**
 * Which ONNX Runtime a machine's sessions run on (docs/runtimes.md), decided in one place for ./session.ts (this
 * machine: each runtime is there when it loads) and for `icc doctor` on another architecture (each runtime is
 * there when it is installed for it: onnxruntime-node's binary for that architecture, onnxruntime-web), and the one
 * error of a runtime that is not there (RUNTIME_UNAVAILABLE) with its fix.
 */
import {readdir, stat} from 'node:fs/promises'
import {createRequire} from 'node:module'
import {dirname, join} from 'node:path'

import {DependencyError} from '../errors.js'

/** What `--runtime` and ICC_RUNTIME take: `auto` is native where its binary loads, else wasm. */
export const RUNTIMES = ['auto', 'native', 'wasm'] as const
export type Runtime = (typeof RUNTIMES)[number]
/** The runtime a session runs on. */
export type Backend = Exclude<Runtime, 'auto'>

/** The runtime chosen, with a note when auto fell back to WebAssembly (why native is not there). */
export interface RuntimeChoice {
  backend: Backend
  note?: string
}

/** Why a runtime is not there (undefined: it is), and the error that said so. */
export type Absence = undefined | {cause?: unknown; why: string}

/** Whether a runtime is there on the machine decided for. */
export type RuntimeProbe = (backend: Backend) => Promise<Absence>

const require = createRequire(import.meta.url)

/** The one error of a runtime that is not there on `where` (`linux-arm64`), and its fix. */
export function runtimeUnavailable(backend: Backend, where: string, absence: NonNullable<Absence>): DependencyError {
  return new DependencyError(
    'RUNTIME_UNAVAILABLE',
    backend === 'native'
      ? `onnxruntime-node does not load on ${where}: ${absence.why}`
      : `The WebAssembly runtime (onnxruntime-web) does not load: ${absence.why}`,
    {
      cause: absence.cause,
      suggestions: [
        backend === 'native'
          ? 'Use --runtime wasm (or ICC_RUNTIME=wasm), or reinstall icc so that onnxruntime-node has its binary.'
          : 'Install the optional dependency: npm install onnxruntime-web (icc installs it unless --omit=optional).',
      ],
    },
  )
}

/**
 * The runtime `asked` resolves to on `where`, given `probe` (nothing else is read): the one asked for, or with
 * auto native where it is there, else wasm (with a note saying why). Probes only what the answer needs.
 * @throws DependencyError RUNTIME_UNAVAILABLE
 */
export async function chooseRuntime(asked: Runtime, probe: RuntimeProbe, where: string): Promise<RuntimeChoice> {
  if (asked !== 'auto') {
    const absence = await probe(asked)
    if (absence) throw runtimeUnavailable(asked, where, absence)
    return {backend: asked}
  }

  const native = await probe('native')
  if (!native) return {backend: 'native'}
  const wasm = await probe('wasm')
  if (wasm) throw runtimeUnavailable('wasm', where, wasm)
  const why = runtimeUnavailable('native', where, native).message
  return {backend: 'wasm', note: `${why}; using the WebAssembly runtime (onnxruntime-web).`}
}

/** onnxruntime-node's binding for linux (this platform) and `arch`, when its package ships one. */
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

/**
 * onnxruntime-web's entry for Node (resolved, not loaded), when it is installed: one build for every architecture.
 * (Its package.json is not among its exports: resolving that fails even where it is installed.)
 */
export function findOnnxRuntimeWeb(): string | undefined {
  try {
    return require.resolve('onnxruntime-web')
  } catch {
    return undefined
  }
}

/** What is installed for `arch` (another machine's: nothing is loaded), as a probe for {@link chooseRuntime}. */
export function installedProbe(arch: string): RuntimeProbe {
  return async (backend) => {
    if (backend === 'native') {
      return (await findOnnxBinding(arch)) ? undefined : {why: `it has no binary for ${process.platform}-${arch}`}
    }

    return findOnnxRuntimeWeb() ? undefined : {why: 'it is not installed'}
  }
}
