/**
 * `icc doctor`'s Python checks for the original connector (`for: "connector"`): Python 2.7 (connector version 1)
 * or 3.7+ (version 2) as the interpreter icc install-deps installs for, and its numpy, scipy and cv2 modules.
 */
import {join} from 'node:path'

import type {DoctorCheck} from './doctor-types.js'

import {type ConnectorVersion} from '../connector/catalog.js'
import {IccError} from '../errors.js'
import {run} from '../system.js'

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

export async function checkPython(
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

export async function checkModules(version: ConnectorVersion, python?: PythonFound): Promise<DoctorCheck[]> {
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
