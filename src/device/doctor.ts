/**
 * `icc doctor`: check that a core device has everything the Image Classification connector (and `icc serve`)
 * needs, and say how to fix what is missing.
 *
 * Two verdicts, each check saying which tool it is for (`for`):
 * - "the original connector's runtime" (`connector`): the platform; every library of the platform's table in the
 *   connector catalog, found and defining the minimum symbol versions (ELF `.gnu.version_d`; CUDA 9.0 and cuDNN 7
 *   on the Jetson TX2); Python 2.7 (connector version 1) or 3.7+ (version 2) as /usr/bin/python2.7 or
 *   /usr/bin/python3 under the root (the interpreter icc install-deps installs for) with numpy, scipy and cv2;
 *   AWS IoT Greengrass core 1.7+; cgroups with the memory controller;
 * - "icc serve is ready" (`icc`): Node.js, the ONNX Runtime binding and sharp, the memory-limit mode serve will
 *   use, the CUDA provider where onnxruntime-node has one, and with `model` a real runner's load (./doctor-icc.ts).
 *
 * Each check is `pass`, `fail`, `warn` (fails only with `strict`) or `skip`; `verdict` (default `icc`) picks
 * which verdicts decide `ok`.
 */
import {access, constants, readdir, stat} from 'node:fs/promises'
import {createRequire} from 'node:module'
import {dirname, join} from 'node:path'

import type {Runtime} from '../model/session.js'
import type {CheckFor, CheckStatus, DoctorCheck, DoctorVerdictChoice, Verdict} from './doctor-types.js'

import {connectorForPlatform, type ConnectorVersion, type PlatformId} from '../connector/catalog.js'
import {IccError} from '../errors.js'
import {run} from '../system.js'
import {checkCudaProvider, checkMemoryMode, checkModel, checkNode, checkRuntime} from './doctor-icc.js'
import {checkBinary, checkLibrary, type LibraryCheck, type LibrarySearchOptions} from './libraries.js'
import {defaultRoot, type DetectedPlatform, detectPlatform, readUnderRoot} from './platform.js'
import {compareNumbers, parseVersionName} from './versions.js'

export type {CheckFor, CheckStatus, DoctorCheck, DoctorVerdictChoice, Verdict} from './doctor-types.js'

export interface DoctorOptions {
  connectorVersion?: ConnectorVersion
  /** Extra library directories searched first. */
  libDirs?: string[]
  /** Skip the ldconfig cache and the standard directories (only libDirs and LD_LIBRARY_PATH): tests. */
  libDirsOnly?: boolean
  /** Greengrass root (default /greengrass). */
  greengrassRoot?: string
  /** Machine override (default: `$ICC_MACHINE` or os.machine()). */
  machine?: string
  /** With `model`: the runner's input shape (C,H,W) for a model without model-shapes.json. */
  inputShape?: number[]
  /** With `model`: the batch the runner warms up with (default serve's DEFAULT_MAX_BATCH). */
  maxBatch?: number
  /** With `model`: fail when the measured peak of a complete load is above this (KB). */
  memoryLimitKb?: number
  model?: string
  platform?: 'auto' | PlatformId
  /** Python executables to try instead of the defaults (python2.7/python2/python or python3/python). */
  pythons?: string[]
  /** Root override for /proc, /sys and /etc (default `$ICC_ROOT` or `/`). */
  root?: string
  /** The ONNX Runtime `icc serve` would use (default: $ICC_RUNTIME, else auto; ../model/session.ts). */
  runtime?: Runtime
  /** Warnings count as failures. */
  strict?: boolean
  /** Which verdicts decide `ok` (default `icc`). */
  verdict?: DoctorVerdictChoice
}

export interface DoctorResult {
  checks: DoctorCheck[]
  connectorVersion: ConnectorVersion
  detected?: DetectedPlatform
  /** The selected verdict(s) passed (`verdict`). */
  ok: boolean
  platform?: PlatformId
  strict: boolean
  summary: Record<CheckStatus, number>
  verdict: DoctorVerdictChoice
  /** Each tool's own verdict: "icc serve is ready" and "the original connector's runtime". */
  verdicts: Record<CheckFor, Verdict>
}

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

interface PythonFound {
  executable: string
  path?: string
  version: string
}

async function pythonVersion(exe: string): Promise<{error?: string; found?: PythonFound}> {
  try {
    const r = await run(
      exe,
      ['-c', 'import sys; print("%d.%d.%d" % tuple(sys.version_info[:3])); print(sys.executable)'],
      {
        timeoutMs: 20_000,
      },
    )
    if (r.exitCode !== 0)
      return {error: `${exe} exited with ${r.exitCode}: ${(r.stderr || r.stdout).trim().split('\n')[0]}`}
    const [version, path] = r.stdout.trim().split('\n')
    return {found: {executable: exe, path: path?.trim(), version: version.trim()}}
  } catch (error) {
    const missing = exe.includes('/') ? 'not found' : 'not found on PATH'
    return {error: error instanceof IccError ? `${exe}: ${missing}` : `${exe}: ${(error as Error).message}`}
  }
}

/**
 * The interpreter icc install-deps installs the modules for (install-scripts/: the distribution's packages and
 * pip, i.e. /usr/bin/python2.7 or /usr/bin/python3), under `root`: doctor checks that one, not the first on PATH.
 */
export function systemPython(version: ConnectorVersion, root: string): string {
  return join(root, version === 1 ? '/usr/bin/python2.7' : '/usr/bin/python3')
}

async function checkPython(
  version: ConnectorVersion,
  root: string,
  pythons?: string[],
): Promise<{check: DoctorCheck; python?: PythonFound}> {
  const candidates = pythons ?? [systemPython(version, root)]
  const want = version === 1 ? '2.7' : '3.7+'
  const seen: string[] = []
  for (const exe of candidates) {
    const r = await pythonVersion(exe)
    if (!r.found) {
      seen.push(r.error ?? `${exe}: unusable`)
      continue
    }

    const [major, minor] = r.found.version.split('.').map(Number)
    const ok = version === 1 ? major === 2 && minor === 7 : major === 3 && minor >= 7
    seen.push(`${exe}: Python ${r.found.version}`)
    if (ok) {
      return {
        check: {
          evidence: {candidates: seen, executable: exe, path: r.found.path, version: r.found.version},
          for: 'connector',
          id: 'python',
          message: `${exe} is Python ${r.found.version} (${r.found.path})`,
          status: 'pass',
          title: `Python ${want}`,
        },
        python: r.found,
      }
    }
  }

  return {
    check: {
      evidence: {candidates: seen},
      fix:
        version === 1
          ? `Connector version 1 runs on Python 2.7 as ${candidates.join(', ')}: install python2.7 (apt-get install python2.7 / yum install python27). Version 2 of the connector uses Python 3.7+ (--connector-version 2). icc serve does not need Python.`
          : `Install Python 3.7 or later as ${candidates.join(', ')} (apt-get install python3), the interpreter icc install-deps installs numpy, scipy and OpenCV for. icc serve does not need Python.`,
      for: 'connector',
      id: 'python',
      message: `no Python ${want} (${seen.join('; ')})`,
      status: 'fail',
      title: `Python ${want}`,
    },
  }
}

const MODULES: {module: string; name: string; pip: string; apt: string}[] = [
  {apt: 'python3-numpy', module: 'numpy', name: 'numpy', pip: 'numpy'},
  {apt: 'python3-scipy', module: 'scipy', name: 'scipy', pip: 'scipy'},
  {apt: 'python3-opencv', module: 'cv2', name: 'OpenCV (cv2)', pip: 'opencv-python'},
]

async function checkModules(version: ConnectorVersion, python?: PythonFound): Promise<DoctorCheck[]> {
  const out: DoctorCheck[] = []
  for (const m of MODULES) {
    const id = `python-module:${m.module}`
    const fix =
      version === 1
        ? `Run icc install-deps (or: pip install ${m.pip === 'numpy' ? 'numpy==1.15.0' : m.pip}).`
        : `Run icc install-deps (or: apt-get install ${m.apt}, or python3 -m pip install ${m.pip}).`
    if (!python) {
      out.push({
        evidence: {},
        fix,
        for: 'connector',
        id,
        message: 'not checked: no suitable Python',
        status: 'fail',
        title: m.name,
      })
      continue
    }

    const r = await run(python.executable, ['-c', `import ${m.module}; print(${m.module}.__version__)`], {
      timeoutMs: 60_000,
    }).catch((error: Error) => ({exitCode: -1, stderr: error.message, stdout: ''}))
    const ok = r.exitCode === 0
    const lastErr = r.stderr.trim().split('\n').at(-1) ?? ''
    out.push({
      evidence: ok
        ? {python: python.executable, version: r.stdout.trim()}
        : {error: lastErr, python: python.executable},
      fix: ok ? undefined : fix,
      for: 'connector',
      id,
      message: ok ? `${m.module} ${r.stdout.trim()}` : `import ${m.module} failed: ${lastErr}`,
      status: ok ? 'pass' : 'fail',
      title: m.name,
    })
  }

  return out
}

async function checkGreengrass(ggRoot: string): Promise<DoctorCheck> {
  const seen: {source: string; version: string}[] = []
  const packages = join(ggRoot, 'ggc', 'packages')
  try {
    for (const name of await readdir(packages)) {
      if (/^\d+\.\d+\.\d+$/.test(name) && (await stat(join(packages, name))).isDirectory()) {
        seen.push({source: join(packages, name), version: name})
      }
    }
  } catch {
    // no packages folder
  }

  for (const exe of ['greengrassd', join(ggRoot, 'ggc', 'core', 'greengrassd')]) {
    try {
      const r = await run(exe, ['--version'], {timeoutMs: 10_000})
      const m = /(\d+\.\d+\.\d+)/.exec(`${r.stdout}\n${r.stderr}`)
      if (m) seen.push({source: `${exe} --version`, version: m[1]})
      break
    } catch {
      // not there
    }
  }

  const title = 'AWS IoT Greengrass core >= 1.7'
  if (seen.length === 0) {
    return {
      evidence: {greengrassRoot: ggRoot, looked: [packages, 'greengrassd on PATH']},
      fix: `Only needed to run the original connector: install AWS IoT Greengrass core 1.7+ (or pass --greengrass-root if it lives elsewhere than ${ggRoot}). icc serve runs without it.`,
      for: 'connector',
      id: 'greengrass',
      message: `not found under ${ggRoot}`,
      status: 'warn',
      title,
    }
  }

  const newest = seen.reduce((a, b) =>
    compareNumbers(a.version.split('.').map(Number), b.version.split('.').map(Number)) >= 0 ? a : b,
  )
  const ok = compareNumbers(newest.version.split('.').map(Number), [1, 7, 0]) >= 0
  return {
    evidence: {greengrassRoot: ggRoot, versions: seen},
    fix: ok ? undefined : 'Upgrade AWS IoT Greengrass core to 1.7 or later (the connectors need 1.7+).',
    for: 'connector',
    id: 'greengrass',
    message: `version ${newest.version} (${newest.source})`,
    status: ok ? 'pass' : 'fail',
    title,
  }
}

async function writable(path: string): Promise<boolean> {
  try {
    await access(path, constants.W_OK)
    return true
  } catch {
    return false
  }
}

async function checkCgroups(root: string): Promise<DoctorCheck> {
  const title = 'cgroups memory controller'
  const fix =
    'Enable the memory cgroup: add "cgroup_enable=memory cgroup_memory=1" to the kernel command line (/boot/cmdline.txt on a Raspberry Pi) and reboot; run as root so limits can be set.'
  const v2 = await readUnderRoot(root, '/sys/fs/cgroup/cgroup.controllers')
  if (v2 !== undefined) {
    const controllers = v2.trim().split(/\s+/).filter(Boolean)
    const hasMemory = controllers.includes('memory')
    const canWrite = await writable(join(root, '/sys/fs/cgroup'))
    return {
      evidence: {controllers, version: 2, writable: canWrite},
      fix: hasMemory && canWrite ? undefined : fix,
      for: 'connector',
      id: 'cgroups',
      message: hasMemory
        ? `cgroup v2 with memory controller${canWrite ? '' : ' (not writable by this user)'}`
        : `cgroup v2 without the memory controller (${controllers.join(' ') || 'none'})`,
      status: hasMemory && canWrite ? 'pass' : 'warn',
      title,
    }
  }

  const procCgroups = (await readUnderRoot(root, '/proc/cgroups')) ?? ''
  const memLine = procCgroups.split('\n').find((l) => l.startsWith('memory\t') || l.startsWith('memory '))
  const enabled = memLine ? memLine.trim().split(/\s+/)[3] === '1' : undefined
  const memDir = join(root, '/sys/fs/cgroup/memory')
  const limitFile = await readUnderRoot(root, '/sys/fs/cgroup/memory/memory.limit_in_bytes')
  const ok = limitFile !== undefined && enabled !== false
  const canWrite = ok && (await writable(memDir))
  return {
    evidence: {
      enabledInProcCgroups: enabled,
      memoryHierarchy: limitFile === undefined ? undefined : memDir,
      version: 1,
      writable: canWrite,
    },
    fix: ok && canWrite ? undefined : fix,
    for: 'connector',
    id: 'cgroups',
    message: ok
      ? `cgroup v1 memory controller at ${memDir}${canWrite ? '' : ' (not writable by this user)'}`
      : 'no memory cgroup controller found (neither cgroup v2 cgroup.controllers nor v1 memory hierarchy)',
    status: ok && canWrite ? 'pass' : 'warn',
    title,
  }
}

async function checkOnnxRuntime(): Promise<DoctorCheck[]> {
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

/** Run every check. Never throws for a failed check: the result says what failed. */
export async function runDoctor(options: DoctorOptions = {}): Promise<DoctorResult> {
  const root = defaultRoot(options.root)
  const connectorVersion = options.connectorVersion ?? 1
  const checks: DoctorCheck[] = []

  let platform: PlatformId | undefined
  let detected: DetectedPlatform | undefined
  if (options.platform && options.platform !== 'auto') {
    platform = options.platform
    detected = await detectPlatform({machine: options.machine, root})
    const same = detected.platform === platform
    checks.push({
      evidence: {given: platform, machine: detected.machine, model: detected.model, platform: detected.platform},
      fix: same ? undefined : `Run icc doctor on the ${platform} device itself (its libraries are checked here).`,
      for: 'connector',
      id: 'platform',
      message: same
        ? `${platform} (given, matches this device)`
        : `${platform} (given; this device is ${detected.platform ?? detected.machine})`,
      status: same ? 'pass' : 'warn',
      title: 'platform',
    })
  } else {
    detected = await detectPlatform({machine: options.machine, root})
    platform = detected.platform
    checks.push({
      evidence: {machine: detected.machine, model: detected.model, platform},
      fix: platform ? undefined : 'No connector exists for this machine; pass --platform to check a table anyway.',
      for: 'connector',
      id: 'platform',
      message: platform ? `${platform}: ${detected.reason}` : detected.reason,
      status: platform ? 'pass' : 'fail',
      title: 'platform',
    })
  }

  if (platform) {
    const connector = connectorForPlatform(platform)
    const searchOptions: LibrarySearchOptions = {
      extraDirs: options.libDirs,
      ldconfig: options.libDirsOnly ? false : undefined,
      platform,
      root,
      standardDirs: !options.libDirsOnly,
    }
    for (const lib of connector.libraries) {
      const r = await checkLibrary(lib, searchOptions)
      await gccFromLibgcc(r, searchOptions)
      checks.push(libraryCheckToDoctor(r, platform))
    }
  }

  const py = await checkPython(connectorVersion, root, options.pythons)
  checks.push(
    py.check,
    ...(await checkModules(connectorVersion, py.python)),
    await checkGreengrass(options.greengrassRoot ?? '/greengrass'),
    await checkCgroups(root),
    checkNode(),
    ...(await checkOnnxRuntime()),
    await checkMemoryMode(),
    await checkRuntime(options.runtime),
  )
  const cuda = checkCudaProvider()
  if (cuda) checks.push(cuda)
  if (options.model) {
    checks.push(
      await checkModel(options.model, {
        inputShape: options.inputShape,
        maxBatch: options.maxBatch,
        memoryLimitKb: options.memoryLimitKb,
        runtime: options.runtime,
      }),
    )
  }

  const strict = Boolean(options.strict)
  const verdict = options.verdict ?? 'icc'
  const verdicts = {
    connector: summarizeChecks(
      checks.filter((c) => c.for === 'connector'),
      strict,
    ),
    icc: summarizeChecks(
      checks.filter((c) => c.for === 'icc'),
      strict,
    ),
  }
  const ok = verdict === 'all' ? verdicts.icc.ok && verdicts.connector.ok : verdicts[verdict].ok
  const {summary} = summarizeChecks(checks, strict)
  return {checks, connectorVersion, detected, ok, platform, strict, summary, verdict, verdicts}
}

/** Count the checks by status; ok when nothing failed (and, with `strict`, nothing warned). */
export function summarizeChecks(
  checks: readonly DoctorCheck[],
  strict: boolean,
): {ok: boolean; summary: Record<CheckStatus, number>} {
  const summary: Record<CheckStatus, number> = {fail: 0, pass: 0, skip: 0, warn: 0}
  for (const c of checks) summary[c.status]++
  return {ok: summary.fail === 0 && (!strict || summary.warn === 0), summary}
}

const MARK: Record<CheckStatus, string> = {fail: '✗', pass: '✔', skip: '-', warn: '!'}

/** The doctor's report as a text table, with the fix under each failure and warning. */
export function renderDoctor(result: DoctorResult): string {
  const width = Math.min(40, Math.max(...result.checks.map((c) => c.title.length)))
  const lines = [
    `icc doctor: ${result.platform ?? 'unknown platform'}, connector version ${result.connectorVersion}`,
    '',
  ]
  for (const c of result.checks) {
    lines.push(`${MARK[c.status]} ${c.title.padEnd(width)}  [${c.for}] ${c.message}`)
    if (c.fix && c.status !== 'pass') lines.push(`  ${' '.repeat(width)}  fix: ${c.fix}`)
  }

  const counts = (v: Verdict) =>
    `${v.summary.pass} passed, ${v.summary.fail} failed, ${v.summary.warn} warnings${result.strict ? ', strict: warnings fail' : ''}`
  const aside = (decides: boolean) => (decides ? '' : ' (not in the exit status: see --for)')
  const {connector, icc} = result.verdicts
  lines.push(
    '',
    `${icc.ok ? 'icc serve is ready' : 'icc serve is NOT READY'} (${counts(icc)})${aside(result.verdict !== 'connector')}`,
    `the original connector's runtime: ${connector.ok ? 'READY' : 'NOT READY'} (${counts(connector)})${aside(result.verdict !== 'icc')}`,
  )
  return lines.join('\n')
}
