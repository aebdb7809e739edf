import {execa} from 'execa'
import assert from 'node:assert/strict'
import {chmod, mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {runDoctor, summarizeChecks} from '../../src/device/doctor.js'
import {findLibrary} from '../../src/device/libraries.js'
import {CUDA_PROVIDER_FIX, missingCudaProviderFiles} from '../../src/model/index.js'
import {memoryMode} from '../../src/serve/memory-mode.js'
import {memoryLimitSuggestions} from '../../src/serve/memory.js'
import {BIN, icc, iccJson, unwrap} from '../helpers/cli.js'
import {
  buildVersionedLibrary,
  hasCommand,
  readelfFacts,
  synthesizeElf,
  tempDir,
  writeStubs,
  writeTinyOnnx,
} from './fixtures.js'

describe('device: icc install-deps through the real binary', function () {
  this.timeout(60_000)

  it('--dry-run --platform x86_64 --json prints the plan of x86_64.sh', async () => {
    const {exitCode, json} = await iccJson(['install-deps', '--dry-run', '--platform', 'x86_64'])
    assert.equal(exitCode, 0)
    assert.equal(json.dryRun, true)
    assert.equal(json.plan.platform, 'x86_64')
    assert.match(json.plan.script, /install-scripts\/x86_64\.sh$/)
    const names = json.plan.steps.map((s: {name: string}) => s.name)
    assert.equal(names[0], 'detect operating system')
    assert.equal(names.at(-1), 'done')
  })

  it('detects a Jetson TX2 from ICC_ROOT fixture files and plans nvidiajtx2.sh against stub package managers', async () => {
    const root = await tempDir('cli-root')
    await mkdir(join(root, 'proc/device-tree'), {recursive: true})
    await mkdir(join(root, 'etc/apt'), {recursive: true})
    await writeFile(join(root, 'proc/device-tree/model'), 'NVIDIA Jetson TX2\0')
    await writeFile(
      join(root, 'etc/os-release'),
      'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="16.04"\nVERSION_CODENAME=xenial\n',
    )
    await writeFile(join(root, 'etc/apt/sources.list'), '')
    await writeStubs(join(root, 'stubs'))
    const {exitCode, json} = await iccJson(['install-deps', '--dry-run'], {
      env: {
        ICC_MACHINE: 'aarch64',
        ICC_ROOT: root,
        PATH: `${join(root, 'stubs')}:${process.env.PATH}`,
        STUB_AVAILABLE: 'python-dev',
        STUB_LOG: join(root, 'calls.log'),
      },
    })
    assert.equal(exitCode, 0)
    assert.equal(json.plan.platform, 'jtx2')
    assert.match(json.plan.detected.reason, /Jetson TX2/)
    const universe = json.plan.steps.find((s: {name: string}) => s.name === 'check universe repositories')
    assert.equal(universe.notes.length, 6) // two lines of explanation + the four lines to enable
    const commands = json.plan.steps.flatMap((s: {commands: string[]}) => s.commands)
    assert.ok(
      commands.includes('apt-get install -y liblapack3 libopenblas-dev liblapack-dev libatlas-base-dev python-dev'),
    )
  })

  it('says to use sudo when not root (exit 1), and needs --yes without a terminal (exit 2)', async function () {
    if (process.getuid?.() === 0) {
      if (!(await hasCommand('runuser'))) this.skip()
      const r = await execa(
        'runuser',
        ['-u', 'nobody', '--', process.execPath, BIN, 'install-deps', '--platform', 'x86_64', '--yes'],
        {
          env: {NO_COLOR: '1'},
          reject: false,
        },
      )
      assert.equal(r.exitCode, 1)
      assert.match(unwrap(r.stderr), /needs root: run icc install-deps with sudo/)
      const root = await tempDir('tty')
      await writeStubs(join(root, 'stubs'))
      const noTty = await icc(['install-deps', '--platform', 'x86_64'], {
        env: {PATH: `${join(root, 'stubs')}:${process.env.PATH}`, STUB_LOG: join(root, 'calls.log')},
        input: '',
      })
      assert.equal(noTty.exitCode, 2)
      assert.match(noTty.stderr, /--yes/)
    } else {
      const r = await icc(['install-deps', '--platform', 'x86_64', '--yes'])
      assert.equal(r.exitCode, 1)
      assert.match(r.stderr, /sudo/)
    }
  })
})

describe('device: icc doctor', function () {
  this.timeout(120_000)

  it('--json on this machine: accurate evidence for libc.so.6, exit 0 or 5 matching the checks', async () => {
    const {exitCode, json} = await iccJson(['doctor', '--platform', 'x86_64'])
    const libc = json.checks.find((c: {id: string}) => c.id === 'library:libc.so.6')
    const found = await findLibrary('libc.so.6', {platform: 'x86_64'})
    if (found.found) {
      assert.equal(libc.status, 'pass')
      assert.equal(libc.evidence.path, found.found.path)
      if (await hasCommand('readelf')) {
        assert.deepEqual([...libc.evidence.defined].sort(), [...(await readelfFacts(found.found.path)).defined].sort())
      }

      assert.deepEqual(libc.evidence.requirements[0].required, 'GLIBC_2.4')
    } else {
      assert.equal(libc.status, 'fail')
    }

    const failed = json.checks.filter((c: {status: string}) => c.status === 'fail')
    // the exit status is the "icc serve is ready" verdict (--for icc, the default)
    const iccFailed = failed.filter((c: {for: string}) => c.for === 'icc')
    assert.equal(exitCode, iccFailed.length === 0 ? 0 : 5)
    assert.equal(json.ok, iccFailed.length === 0)
    assert.equal(json.verdicts.icc.ok, iccFailed.length === 0)
    assert.equal(json.verdicts.connector.ok, failed.length === iccFailed.length)
    for (const c of failed) assert.ok(c.fix, `${c.id} has a fix`)
    // Every library row of the catalog's x86_64 table is checked.
    assert.deepEqual(
      json.checks.filter((c: {id: string}) => c.id.startsWith('library:')).map((c: {title: string}) => c.title),
      [
        'ld-linux-x86-64.so.2',
        'libc.so.6',
        'libgfortran.so.3',
        'libm.so.6',
        'libpthread.so.0',
        'librt.so.1',
        'libstdc++.so.6',
      ],
    )
    const ids = new Set(json.checks.map((c: {id: string}) => c.id))
    for (const id of [
      'python',
      'python-module:numpy',
      'python-module:scipy',
      'python-module:cv2',
      'greengrass',
      'cgroups',
      'onnxruntime',
      'sharp',
      'glibc',
      'backend',
    ]) {
      assert.ok(ids.has(id), id)
    }

    const ort = json.checks.find((c: {id: string}) => c.id === 'onnxruntime')
    assert.equal(ort.status, 'pass')
    const backend = json.checks.find((c: {id: string}) => c.id === 'backend')
    assert.equal(backend.evidence.backend, 'native')
  })

  it('an injected old glibc (2.27 on arm64, a Jetson TX2 on JetPack 4): icc serve is NOT READY, saying why', async () => {
    const r = await runDoctor({arch: 'arm64', glibcVersion: '2.27', libDirs: [], libDirsOnly: true, pythons: []})
    const glibc = r.checks.find((c) => c.id === 'glibc')!
    assert.equal(glibc.status, 'fail')
    assert.match(glibc.message, /glibc 2\.27 is too old: Node\.js's official build needs 2\.28/)
    assert.equal(r.checks.find((c) => c.id === 'backend')!.evidence.backend, 'native')
    assert.equal(r.verdicts.icc.ok, false)
    assert.equal(r.ok, false)
    const ok = await runDoctor({arch: 'arm64', glibcVersion: '2.28', libDirs: [], libDirsOnly: true, pythons: []})
    assert.equal(ok.checks.find((c) => c.id === 'glibc')!.status, 'pass')
  })

  it('with a fixture library directory: a new-enough libgfortran.so.3 passes, an old libm.so.6 fails with its fix (exit 5)', async function () {
    if (!(await hasCommand('gcc'))) this.skip()
    const dir = await tempDir('doctor-libs')
    await buildVersionedLibrary(dir, 'libgfortran.so.3', ['GFORTRAN_1.0', 'GFORTRAN_1.4'], {prefix: 'gf'})
    await buildVersionedLibrary(dir, 'libm.so.6', ['GLIBC_2.2.5', 'GLIBC_2.4'], {prefix: 'm'})
    const {exitCode, json} = await iccJson(['doctor', '--platform', 'x86_64', '--lib-dir', dir, '--for', 'connector'])
    assert.equal(exitCode, 5)
    const gf = json.checks.find((c: {id: string}) => c.id === 'library:libgfortran.so.3')
    assert.equal(gf.status, 'pass')
    assert.equal(gf.evidence.path, join(dir, 'libgfortran.so.3'))
    assert.equal(gf.evidence.source, 'extra-dir')
    assert.deepEqual(gf.evidence.requirements, [{highest: 'GFORTRAN_1.4', ok: true, required: 'GFORTRAN_1.0'}])
    const m = json.checks.find((c: {id: string}) => c.id === 'library:libm.so.6')
    assert.equal(m.status, 'fail')
    assert.deepEqual(m.evidence.requirements, [{highest: 'GLIBC_2.4', ok: false, required: 'GLIBC_2.23'}])
    assert.match(m.fix, /upgrade the operating system/)

    const text = await icc(['doctor', '--platform', 'x86_64', '--lib-dir', dir, '--for', 'all'])
    assert.equal(text.exitCode, 5)
    assert.match(text.stdout, /✗ libm\.so\.6\s+.*GLIBC_2\.23 too old \(highest GLIBC_2\.4\)/)
    assert.match(text.stdout, /✔ libgfortran\.so\.3/)
    assert.match(text.stdout, /fix: The C library is older/)
  })

  it('Python, its modules, Greengrass and cgroups from fixtures (stub pythons, a Greengrass root, a /sys tree)', async () => {
    const root = await tempDir('doctor-root')
    const bin = join(root, 'bin')
    await mkdir(bin, {recursive: true})
    // A "python2.7" that reports 2.7.18 and imports numpy but not scipy/cv2.
    const py = join(bin, 'python2.7')
    await writeFile(
      py,
      `#!/bin/bash\ncase "$2" in\n  *sys.version_info*) echo 2.7.18; echo ${py};;\n  "import numpy;"*) echo 1.15.0;;\n  *) echo "ImportError: No module named $(echo "$2" | cut -d' ' -f2 | tr -d ';')" >&2; exit 1;;\nesac\n`,
    )
    await chmod(py, 0o755)
    await mkdir(join(root, 'gg/ggc/packages/1.6.0'), {recursive: true})
    await mkdir(join(root, 'sys/fs/cgroup'), {recursive: true})
    await writeFile(join(root, 'sys/fs/cgroup/cgroup.controllers'), 'cpuset cpu io pids\n')

    const r = await runDoctor({
      greengrassRoot: join(root, 'gg'),
      libDirs: [],
      libDirsOnly: true,
      machine: 'x86_64',
      pythons: [py],
      root,
    })
    const by = (id: string) => r.checks.find((c) => c.id === id)!
    assert.equal(by('python').status, 'pass')
    assert.equal(by('python').evidence.version, '2.7.18')
    assert.equal(by('python-module:numpy').status, 'pass')
    assert.equal(by('python-module:numpy').evidence.version, '1.15.0')
    assert.equal(by('python-module:scipy').status, 'fail')
    assert.match(by('python-module:scipy').message, /No module named scipy/)
    assert.equal(by('greengrass').status, 'fail')
    assert.match(by('greengrass').message, /1\.6\.0/)
    assert.equal(by('cgroups').status, 'warn')
    assert.match(by('cgroups').message, /without the memory controller/)
    assert.equal(by('library:libc.so.6').status, 'fail') // libDirsOnly with no dirs: nothing is found
    assert.equal(r.verdicts.connector.ok, false)

    await mkdir(join(root, 'gg/ggc/packages/1.11.0'), {recursive: true})
    await writeFile(join(root, 'sys/fs/cgroup/cgroup.controllers'), 'cpuset cpu io memory pids\n')
    const again = await runDoctor({greengrassRoot: join(root, 'gg'), machine: 'x86_64', pythons: [py], root})
    assert.equal(again.checks.find((c) => c.id === 'greengrass')!.status, 'pass')
    assert.equal(again.checks.find((c) => c.id === 'cgroups')!.status, 'pass')
    // Connector version 2 wants Python 3.7+: a 2.7-only PATH fails with a fix.
    const v2 = await runDoctor({connectorVersion: 2, machine: 'x86_64', pythons: [py], root})
    const p = v2.checks.find((c) => c.id === 'python')!
    assert.equal(p.status, 'fail')
    assert.match(p.fix!, /Python 3\.7/)
  })

  it('--model: loads the model and answers a warm-up inference; a broken model fails with a fix', async () => {
    const dir = await tempDir('doctor-model')
    const good = join(dir, 'tiny.onnx')
    await writeTinyOnnx(good)
    const {json} = await iccJson(['doctor', '--platform', 'x86_64', '--model', good])
    const m = json.checks.find((c: {id: string}) => c.id === 'model')
    assert.equal(m.status, 'pass', JSON.stringify(m))
    assert.deepEqual(m.evidence.inputShape, [3, 8, 8])
    assert.equal(m.evidence.numClasses, 3)

    // the peak of a complete load in a real runner (VmHWM), as serve measures it; the runner's own Node.js
    // alone is tens of MB
    assert.ok(m.evidence.peakRssKb > 10_000, JSON.stringify(m.evidence))
    const limit = 5000
    const tight = await iccJson(['doctor', '--model', good, '--memory-limit-kb', String(limit), '--max-batch', '4'])
    const over = tight.json.checks.find((c: {id: string}) => c.id === 'model')
    assert.equal(over.status, 'fail')
    assert.equal(over.for, 'icc')
    // the figure serve's start-up advice gives too (Service.measureLoad): RSS peak, or a memory cgroup's if larger
    assert.ok(over.evidence.peakKb >= over.evidence.peakRssKb && over.evidence.peakKb > limit)
    assert.equal(over.fix, memoryLimitSuggestions(over.evidence.peakKb, {model: good}).join(' '))
    assert.ok(over.fix.includes(`icc convert-model ${good} --output`), over.fix)
    assert.match(over.message, new RegExp(`peaked at ${over.evidence.peakKb} KB, over --memory-limit-kb ${limit}`))
    assert.equal(tight.exitCode, 5)
    assert.equal(tight.json.verdicts.icc.ok, false)

    const broken = join(dir, 'broken.onnx')
    await writeFile(broken, 'not a model')
    const bad = await iccJson(['doctor', '--platform', 'x86_64', '--model', broken])
    const b = bad.json.checks.find((c: {id: string}) => c.id === 'model')
    assert.equal(b.status, 'fail')
    assert.ok(b.fix)
    assert.equal(bad.exitCode, 5)
  })

  it('a root without libgfortran.so.3 and Python 2.7: icc serve is ready (exit 0), the connector is NOT READY', async () => {
    const root = await tempDir('doctor-bare-root')
    await mkdir(join(root, 'lib'), {recursive: true})
    const env = {env: {ICC_ROOT: root}}
    const text = await icc(['doctor', '--platform', 'x86_64', '--lib-dir', join(root, 'lib')], env)
    assert.equal(text.exitCode, 0, text.stdout + text.stderr)
    assert.match(text.stdout, /^icc serve is ready \(/m)
    assert.match(text.stdout, /^the original connector's runtime: NOT READY/m)
    assert.match(text.stdout, /✗ libgfortran\.so\.3\s+\[connector\] not found/)
    assert.match(
      text.stdout,
      new RegExp(`✗ Python 2\\.7\\s+\\[connector\\] no Python 2\\.7 \\(${join(root, 'usr/bin/python2.7')}: not found`),
    )

    const {exitCode, json} = await iccJson(['doctor', '--platform', 'x86_64'], env)
    assert.equal(exitCode, 0)
    assert.equal(json.ok, true)
    assert.equal(json.verdict, 'icc')
    assert.equal(json.verdicts.icc.ok, true)
    assert.equal(json.verdicts.connector.ok, false)
    const by = (id: string) => json.checks.find((c: {id: string}) => c.id === id)
    for (const c of json.checks) assert.ok(['connector', 'icc'].includes(c.for), `${c.id} says which tool`)
    for (const id of ['library:libgfortran.so.3', 'python', 'python-module:numpy', 'greengrass', 'cgroups']) {
      assert.equal(by(id).for, 'connector', id)
    }

    for (const id of ['node', 'onnxruntime', 'sharp', 'memory-mode']) assert.equal(by(id).for, 'icc', id)
    assert.equal(by('python').status, 'fail')
    // --for decides which verdict is the exit status
    assert.equal((await icc(['doctor', '--platform', 'x86_64', '--for', 'connector'], env)).exitCode, 5)
    assert.equal((await icc(['doctor', '--platform', 'x86_64', '--for', 'all'], env)).exitCode, 5)
  })

  it('the memory-limit mode is what memoryMode() (icc serve) says; the CUDA provider is checked on linux x64', async () => {
    const {json} = await iccJson(['doctor'])
    const mode = json.checks.find((c: {id: string}) => c.id === 'memory-mode')
    assert.deepEqual(mode.evidence, await memoryMode())
    assert.equal(mode.status, mode.evidence.hard ? 'pass' : 'warn')
    const cuda = json.checks.find((c: {id: string}) => c.id === 'cuda-provider')
    if (process.platform === 'linux' && process.arch === 'x64') {
      assert.equal(cuda.for, 'icc')
      assert.deepEqual(cuda.evidence.missing, missingCudaProviderFiles())
      if (cuda.evidence.missing.length > 0) assert.equal(cuda.fix, CUDA_PROVIDER_FIX)
      else assert.equal(cuda.status, 'pass')
    } else {
      assert.equal(cuda, undefined)
    }
  })

  it('checks the Python icc install-deps installs for (<root>/usr/bin/python3), not the first python3 on PATH', async () => {
    const root = await tempDir('doctor-py-root')
    const stub = async (path: string, version: string) => {
      await mkdir(join(path, '..'), {recursive: true})
      await writeFile(
        path,
        `#!/bin/bash\ncase "$2" in\n  *sys.version_info*) echo ${version}; echo ${path};;\n  *) echo 1.0;;\nesac\n`,
      )
      await chmod(path, 0o755)
    }

    const system = join(root, 'usr/bin/python3')
    await stub(system, '3.11.2')
    // an older python3 first on PATH (a virtualenv, /usr/local): not the one install-deps installs for
    await stub(join(root, 'path/python3'), '3.6.9')
    const {json} = await iccJson(['doctor', '--connector-version', '2'], {
      env: {ICC_ROOT: root, PATH: `${join(root, 'path')}:${process.env.PATH}`},
    })
    const py = json.checks.find((c: {id: string}) => c.id === 'python')
    assert.equal(py.status, 'pass', JSON.stringify(py))
    assert.equal(py.evidence.executable, system)
    assert.equal(py.evidence.version, '3.11.2')
    assert.match(py.message, new RegExp(`${system} is Python 3\\.11\\.2`))
    assert.equal(json.checks.find((c: {id: string}) => c.id === 'python-module:numpy').evidence.python, system)
  })

  it('jtx2: the CUDA 9.0 / cuDNN 7 sonames and aarch64 libraries from a fixture directory', async () => {
    const dir = await tempDir('jtx2-libs')
    const aarch64 = (soname: string, defined: string[]) =>
      writeFile(
        join(dir, soname),
        synthesizeElf({bits: 64, defined, endian: 'little', machine: 183, needed: [], needs: [], soname}),
      )
    await aarch64('libc.so.6', ['GLIBC_2.17', 'GLIBC_2.23'])
    await aarch64('libm.so.6', ['GLIBC_2.17']) // the table needs GLIBC_2.23
    await aarch64('libcudart.so.9.0', [])
    await aarch64('libcudnn.so.7', [])
    // An x86_64 libcublas.so.9.0 is not the Jetson's.
    await writeFile(
      join(dir, 'libcublas.so.9.0'),
      synthesizeElf({
        bits: 64,
        defined: [],
        endian: 'little',
        machine: 62,
        needed: [],
        needs: [],
        soname: 'libcublas.so.9.0',
      }),
    )
    const r = await runDoctor({
      libDirs: [dir],
      libDirsOnly: true,
      machine: 'aarch64',
      platform: 'jtx2',
      pythons: [],
      root: dir,
    })
    const status = (soname: string) => r.checks.find((c) => c.id === `library:${soname}`)!
    assert.equal(r.checks.find((c) => c.id === 'platform')!.status, 'pass')
    assert.equal(status('libc.so.6').status, 'pass')
    assert.equal(status('libm.so.6').status, 'fail')
    assert.equal(status('libcudart.so.9.0').status, 'pass')
    assert.equal(status('libcudart.so.9.0').evidence.path, join(dir, 'libcudart.so.9.0'))
    assert.equal(status('libcudnn.so.7').status, 'pass')
    assert.equal(status('libcufft.so.9.0').status, 'fail')
    assert.match(status('libcufft.so.9.0').fix!, /CUDA Toolkit 9\.0 and cuDNN 7/)
    assert.equal(status('libcublas.so.9.0').status, 'fail')
    assert.match(status('libcublas.so.9.0').message, /built for x86_64 \(64-bit\), not jtx2/)
    // Checking the jtx2 table on an x86_64 machine is allowed, with a warning.
    const elsewhere = await runDoctor({
      libDirs: [dir],
      libDirsOnly: true,
      machine: 'x86_64',
      platform: 'jtx2',
      pythons: [],
      root: dir,
    })
    assert.equal(elsewhere.checks.find((c) => c.id === 'platform')!.status, 'warn')
  })

  it('--strict turns warnings into failures', async () => {
    const root = await tempDir('strict')
    const base = {
      greengrassRoot: join(root, 'none'),
      libDirsOnly: true,
      machine: 'x86_64',
      pythons: ['/nonexistent/python'],
      root,
    }
    const lax = await runDoctor(base)
    const strict = await runDoctor({...base, strict: true})
    assert.equal(lax.checks.find((c) => c.id === 'greengrass')!.status, 'warn')
    assert.equal(strict.strict, true)
    assert.equal(strict.summary.warn, lax.summary.warn)
    // Without the failures (no libraries, no python here), the warnings alone decide under --strict.
    const warningsOnly = lax.checks.filter((c) => c.status !== 'fail')
    assert.ok(warningsOnly.some((c) => c.status === 'warn'))
    assert.equal(summarizeChecks(warningsOnly, false).ok, true)
    assert.equal(summarizeChecks(warningsOnly, true).ok, false)
  })
})
