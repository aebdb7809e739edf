/**
 * `icc doctor`'s library checks for the original connector (`for: "connector"`): each library of the platform's
 * table in the connector catalog, found and defining the minimum symbol versions, with how to get it in words.
 */
import type {DoctorCheck} from './doctor-types.js'

import {connectorForPlatform, type PlatformId} from '../connector/catalog.js'
import {checkLibrary, type LibraryCheck, type LibrarySearchOptions} from './libraries.js'
import {type DetectedPlatform, detectPlatform} from './platform.js'
import {parseVersionName} from './versions.js'

const GLIBC_LIBS = new Set(['ld-linux-aarch64.so.1', 'ld-linux-armhf.so.3', 'ld-linux-x86-64.so.2', 'libc.so.6'])
for (const s of ['libm.so.6', 'libpthread.so.0', 'librt.so.1']) GLIBC_LIBS.add(s)

/** How to get each library of the tables, in words. */
function libraryFix(soname: string, platform: PlatformId, found: boolean): string {
  if (/^lib(cu|cudnn)/.test(soname)) {
    return 'Install CUDA Toolkit 9.0 and cuDNN 7 with NVIDIA JetPack 3.2/3.3; make sure /usr/local/cuda-9.0/lib64 is in the ldconfig cache (ldconfig) or LD_LIBRARY_PATH.'
  }

  if (soname === 'libgfortran.so.3') {
    return platform === 'x86_64'
      ? 'Install libgfortran3 (Ubuntu 18.04 and older, Debian 9 and older) or compat-gcc-48-libgfortran (Amazon Linux); newer distributions ship only libgfortran.so.5, so take libgfortran.so.3 from an older release. icc serve (ONNX Runtime) does not need it.'
      : 'Install libgfortran3 (Raspbian Buster and older); newer releases ship only libgfortran.so.5. icc serve (ONNX Runtime) does not need it.'
  }

  if (soname === 'libstdc++.so.6') {
    return found
      ? 'Upgrade libstdc++6 (GCC 5 or later provides GLIBCXX_3.4.21 and CXXABI_1.3.8).'
      : 'Install libstdc++6.'
  }

  if (soname === 'libgcc_s.so.1') return 'Install libgcc1 (libgcc-s1 on newer releases).'
  if (soname === 'libgomp.so.1') return 'Install libgomp1 (GCC 4.9 or later for GOMP_4.0 and OMP_1.0).'
  if (GLIBC_LIBS.has(soname)) {
    return found
      ? 'The C library is older than the connector needs: upgrade the operating system (libc6 / glibc).'
      : 'The C library was not found where expected: is this the right --platform? Install libc6 (glibc).'
  }

  return 'Run icc install-deps, or install the package that provides it.'
}

function libraryCheckToDoctor(lib: LibraryCheck, platform: PlatformId): DoctorCheck {
  const versions = lib.requirements.map(
    (r) =>
      `${r.required}${r.providedBy ? ` ok via ${r.providedBy.split('/').pop()}` : r.ok ? ` ok (${r.highest})` : r.highest ? ` too old (highest ${r.highest})` : ' missing'}`,
  )
  let message: string
  if (!lib.path) {
    message = `not found${lib.skipped.length > 0 ? ` (skipped: ${lib.skipped.map((s) => `${s.path}: ${s.reason}`).join('; ')})` : ''}`
  } else if (lib.requirements.length === 0) {
    message = `${lib.path} (presence only)`
  } else {
    message = `${lib.path}: ${versions.join(', ')}`
  }

  return {
    evidence: {
      defined: lib.defined,
      elfSoname: lib.elfSoname,
      path: lib.path,
      requirements: lib.requirements,
      searched: lib.path ? undefined : lib.searched,
      skipped: lib.skipped.length > 0 ? lib.skipped : undefined,
      source: lib.source,
    },
    fix: lib.ok ? undefined : libraryFix(lib.soname, platform, Boolean(lib.path)),
    for: 'connector',
    id: `library:${lib.soname}`,
    message,
    status: lib.ok ? 'pass' : 'fail',
    title: lib.soname,
  }
}

/**
 * The x86_64 table lists `GCC_4.0.0` under `ld-linux-x86-64.so.2`, but no dynamic linker defines `GCC_*` versions:
 * they are libgcc_s's. When a library defines no version of the GCC family at all, look for it in libgcc_s.so.1
 * and record where it was found (`providedBy`).
 */
async function gccFromLibgcc(check: LibraryCheck, options: LibrarySearchOptions): Promise<void> {
  if (!check.path || check.soname === 'libgcc_s.so.1') return
  for (const req of check.requirements) {
    if (req.ok || req.highest || parseVersionName(req.required)?.family !== 'GCC') continue
    const gcc = await checkLibrary({minimumVersions: [req.required], soname: 'libgcc_s.so.1'}, options)
    if (gcc.ok && gcc.path) {
      req.ok = true
      req.highest = gcc.requirements[0].highest
      req.providedBy = gcc.path
    }
  }

  check.ok = check.requirements.every((r) => r.ok)
}

/** The platform check: the given one (a warning when this device is another) or the detected one. */
export async function checkPlatform(
  given: 'auto' | PlatformId | undefined,
  options: {machine?: string; root: string},
): Promise<{check: DoctorCheck; detected: DetectedPlatform; platform?: PlatformId}> {
  const detected = await detectPlatform(options)
  if (given && given !== 'auto') {
    const same = detected.platform === given
    const check: DoctorCheck = {
      evidence: {given, machine: detected.machine, model: detected.model, platform: detected.platform},
      fix: same ? undefined : `Run icc doctor on the ${given} device itself (its libraries are checked here).`,
      for: 'connector',
      id: 'platform',
      message: same
        ? `${given} (given, matches this device)`
        : `${given} (given; this device is ${detected.platform ?? detected.machine})`,
      status: same ? 'pass' : 'warn',
      title: 'platform',
    }
    return {check, detected, platform: given}
  }

  const {platform} = detected
  const check: DoctorCheck = {
    evidence: {machine: detected.machine, model: detected.model, platform},
    fix: platform ? undefined : 'No connector exists for this machine; pass --platform to check a table anyway.',
    for: 'connector',
    id: 'platform',
    message: platform ? `${platform}: ${detected.reason}` : detected.reason,
    status: platform ? 'pass' : 'fail',
    title: 'platform',
  }
  return {check, detected, platform}
}

/** Every library of the platform's table in the connector catalog. */
export async function checkLibraryTable(platform: PlatformId, options: LibrarySearchOptions): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = []
  for (const lib of connectorForPlatform(platform).libraries) {
    const r = await checkLibrary(lib, options)
    await gccFromLibgcc(r, options)
    checks.push(libraryCheckToDoctor(r, platform))
  }

  return checks
}
