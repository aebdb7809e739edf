/**
 * `icc doctor`'s checks of what `icc serve` loads (`for: "icc"`): the ONNX Runtime binding (and the system
 * libraries it needs) and the sharp image decoder.
 */
import {readdir, stat} from 'node:fs/promises'
import {createRequire} from 'node:module'
import {dirname, join} from 'node:path'

import type {CheckStatus, DoctorCheck} from './doctor-types.js'

import {checkBinary} from './libraries.js'

export async function checkOnnxRuntime(): Promise<DoctorCheck[]> {
  const out: DoctorCheck[] = []
  const title = 'ONNX Runtime binding (icc serve)'
  try {
    const ort = await import('onnxruntime-node')
    const require = createRequire(import.meta.url)
    const pkgDir = dirname(require.resolve('onnxruntime-node/package.json'))
    const arch = process.arch === 'arm' ? 'arm' : process.arch
    let binding: string | undefined
    for (const napi of (await readdir(join(pkgDir, 'bin')).catch(() => [] as string[])).sort().reverse()) {
      const p = join(pkgDir, 'bin', napi, process.platform, arch, 'onnxruntime_binding.node')
      if (
        await stat(p).then(
          () => true,
          () => false,
        )
      ) {
        binding = p
        break
      }
    }

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

    out.push({evidence, fix, for: 'icc', id: 'onnxruntime', message, status, title})
  } catch (error) {
    out.push({
      evidence: {error: (error as Error).message},
      fix: 'Reinstall icc (npm install -g icc) so that onnxruntime-node downloads its binary for this platform.',
      for: 'icc',
      id: 'onnxruntime',
      message: `cannot load onnxruntime-node: ${(error as Error).message}`,
      status: 'fail',
      title,
    })
  }

  try {
    const sharp = (await import('sharp')).default
    out.push({
      evidence: {versions: {sharp: sharp.versions.sharp, vips: sharp.versions.vips}},
      for: 'icc',
      id: 'sharp',
      message: `sharp ${sharp.versions.sharp ?? ''} (libvips ${sharp.versions.vips})`,
      status: 'pass',
      title: 'sharp image decoder (icc serve)',
    })
  } catch (error) {
    out.push({
      evidence: {error: (error as Error).message},
      fix: 'Reinstall icc so that sharp installs its prebuilt libvips for this platform (npm install --include=optional).',
      for: 'icc',
      id: 'sharp',
      message: `cannot load sharp: ${(error as Error).message}`,
      status: 'fail',
      title: 'sharp image decoder (icc serve)',
    })
  }

  return out
}
