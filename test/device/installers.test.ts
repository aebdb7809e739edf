import {execa} from 'execa'
import assert from 'node:assert/strict'
import {chmod, lstat, mkdir, readFile, readlink, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {installDeps, parseInstallerOutput} from '../../src/device/installers.js'
import {REPO_ROOT} from '../helpers/cli.js'
import {mutatingCalls, tempDir, writeStubs} from './fixtures.js'

const SCRIPTS = join(REPO_ROOT, 'install-scripts')

const OS = {
  amazon2:
    'NAME="Amazon Linux"\nVERSION="2"\nID="amzn"\nID_LIKE="centos rhel fedora"\nVERSION_ID="2"\nPRETTY_NAME="Amazon Linux 2"\n',
  fedora: 'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=39\nPRETTY_NAME="Fedora Linux 39"\n',
  jetson:
    'NAME="Ubuntu"\nVERSION="16.04.6 LTS (Xenial Xerus)"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="16.04"\nPRETTY_NAME="Ubuntu 16.04.6 LTS"\nVERSION_CODENAME=xenial\nUBUNTU_CODENAME=xenial\n',
  // A derivative: NAME is neither "Ubuntu" nor "Amazon Linux"; only ID_LIKE says it is Debian-based.
  mint: 'NAME="Linux Mint"\nID=linuxmint\nID_LIKE="ubuntu debian"\nVERSION_ID="21.2"\nPRETTY_NAME="Linux Mint 21.2"\n',
  raspbian:
    'PRETTY_NAME="Raspbian GNU/Linux 10 (buster)"\nNAME="Raspbian GNU/Linux"\nVERSION_ID="10"\nID=raspbian\nID_LIKE=debian\n',
  ubuntu1804: "NAME='Ubuntu'\nID=ubuntu\nID_LIKE=debian\nVERSION_ID='18.04'\nPRETTY_NAME='Ubuntu 18.04.6 LTS'\n",
}

interface Run {
  calls: string[]
  code: number
  log: string
  root: string
  stderr: string
  stdout: string
}

async function runInstaller(
  script: string,
  os: string,
  args: string[] = [],
  env: Record<string, string> = {},
  prepare?: (root: string) => Promise<void>,
): Promise<Run> {
  const root = await tempDir('root')
  const stubs = join(root, 'stubs')
  await writeStubs(stubs)
  await mkdir(join(root, 'etc'), {recursive: true})
  await mkdir(join(root, 'dev'), {recursive: true})
  await writeFile(join(root, 'etc/os-release'), os)
  if (prepare) await prepare(root)
  const logFile = join(root, 'calls.log')
  await writeFile(logFile, '')
  const r = await execa('bash', [join(SCRIPTS, script), ...args], {
    env: {ICC_ROOT: root, PATH: `${stubs}:/usr/bin:/bin`, STUB_LOG: logFile, TMPDIR: root, ...env},
    extendEnv: false,
    reject: false,
  })
  const log = await readFile(logFile, 'utf8')
  return {calls: mutatingCalls(log), code: r.exitCode ?? -1, log, root, stderr: r.stderr, stdout: r.stdout}
}

describe('device: installer scripts (real bash, stub package managers)', function () {
  this.timeout(60_000)

  it('x86_64 on Ubuntu 18.04: the documented packages with Python 2, no dist-upgrade unless asked', async () => {
    const available = 'python-dev python-pip libgfortran3'
    const r = await runInstaller('x86_64.sh', OS.ubuntu1804, [], {STUB_AVAILABLE: available})
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(r.calls, [
      'apt-get -y update',
      'apt-get install -y libgfortran3 libsm6 libxext6 libxrender1',
      'apt-get install -y python-dev python-pip',
      'pip install numpy==1.15.0 scipy opencv-python',
    ])
    assert.match(r.stdout, /skipping 'apt-get dist-upgrade'/)
    assert.deepEqual(
      parseInstallerOutput(r.stdout.split('\n')).map((s) => s.name),
      [
        'detect operating system',
        'update package lists',
        'upgrade system',
        'choose python',
        'install system libraries',
        'install python',
        'install python modules',
        'done',
      ],
    )

    const up = await runInstaller('x86_64.sh', OS.ubuntu1804, ['--upgrade'], {STUB_AVAILABLE: available})
    assert.deepEqual(up.calls.slice(0, 2), ['apt-get -y update', 'apt-get -y dist-upgrade'])
  })

  it('x86_64 on a derivative found through ID_LIKE, without Python 2: Python 3 equivalents and a libgfortran3 warning', async () => {
    const r = await runInstaller('x86_64.sh', OS.mint, [], {STUB_AVAILABLE: ''})
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(r.calls, [
      'apt-get -y update',
      'apt-get install -y libsm6 libxext6 libxrender1',
      'apt-get install -y python3-dev python3-pip',
      'apt-get install -y python3-numpy python3-scipy python3-opencv',
    ])
    assert.match(r.stdout, /no longer ships Python 2; using python3-dev, python3-pip/)
    assert.match(r.stderr, /libgfortran3 \(libgfortran\.so\.3\) is not packaged by Linux Mint 21\.2/)
  })

  it('x86_64 on Amazon Linux 2: yum packages, pip with numpy 1.15.0; yum upgrade only with --upgrade', async () => {
    const env = {STUB_AVAILABLE: 'python-pip compat-gcc-48-libgfortran'}
    const r = await runInstaller('x86_64.sh', OS.amazon2, [], env)
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(r.calls, [
      'yum -y makecache',
      'yum install -y compat-gcc-48-libgfortran libSM libXrender libXext',
      'yum install -y python-pip',
      'pip install numpy==1.15.0 scipy opencv-python',
    ])
    const up = await runInstaller('x86_64.sh', OS.amazon2, ['--upgrade'], env)
    assert.deepEqual(up.calls.slice(0, 2), ['yum -y makecache', 'yum -y upgrade'])
  })

  it('refuses an unsupported system with a clear message and exit code 3', async () => {
    const r = await runInstaller('x86_64.sh', OS.fedora)
    assert.equal(r.code, 3)
    assert.match(r.stderr, /unsupported operating system: Fedora Linux 39 \(ID=fedora, ID_LIKE=none\)/)
    assert.deepEqual(r.calls, [])
    const jetsonOnDebian = await runInstaller('nvidiajtx2.sh', 'ID=debian\nVERSION_ID=12\n')
    assert.equal(jetsonOnDebian.code, 3)
  })

  it('stops at a failing step and names it (exit 1)', async () => {
    const r = await runInstaller('x86_64.sh', OS.ubuntu1804, [], {
      STUB_AVAILABLE: 'python-dev python-pip libgfortran3',
      STUB_FAIL: 'apt-get install -y python-dev',
    })
    assert.equal(r.code, 1)
    assert.match(r.stderr, /==> failed: install python \(exit 1\)/)
    assert.ok(!r.calls.some((c) => c.startsWith('pip ')), 'nothing runs after the failing step')
  })

  it('is idempotent: with everything installed, a re-run installs nothing', async () => {
    const r = await runInstaller('x86_64.sh', OS.ubuntu1804, [], {
      STUB_AVAILABLE: 'python-dev python-pip libgfortran3',
      STUB_INSTALLED: 'libgfortran3 libsm6 libxext6 libxrender1 python-dev python-pip',
      STUB_PIP_INSTALLED: 'numpy=1.15.0 scipy=1.2.3 opencv-python=4.2.0.32',
    })
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(r.calls, ['apt-get -y update'])
    assert.match(r.stdout, /numpy 1\.15\.0 is already installed/)
    // A different numpy version is replaced by the pinned one.
    const other = await runInstaller('x86_64.sh', OS.ubuntu1804, [], {
      STUB_AVAILABLE: 'python-dev python-pip libgfortran3',
      STUB_INSTALLED: 'libgfortran3 libsm6 libxext6 libxrender1 python-dev python-pip',
      STUB_PIP_INSTALLED: 'numpy=1.16.6 scipy=1.2.3 opencv-python=4.2.0.32',
    })
    assert.deepEqual(other.calls, ['apt-get -y update', 'pip install numpy==1.15.0'])
  })

  it('needs root (exit 4, says sudo) unless --dry-run, and --dry-run changes nothing', async () => {
    const r = await runInstaller('x86_64.sh', OS.ubuntu1804, [], {STUB_UID: '1000'})
    assert.equal(r.code, 4)
    assert.match(r.stderr, /must run as root: sudo bash/)
    const dry = await runInstaller('x86_64.sh', OS.ubuntu1804, ['--dry-run'], {
      STUB_AVAILABLE: 'python-dev',
      STUB_UID: '1000',
    })
    assert.equal(dry.code, 0, dry.stderr)
    assert.deepEqual(dry.calls, [])
    assert.match(dry.stdout, /\+ apt-get install -y libsm6 libxext6 libxrender1/)
    assert.match(dry.stdout, /Dry run: nothing was changed/)
  })

  it('rejects unknown options (exit 2)', async () => {
    const r = await runInstaller('armv7l.sh', OS.raspbian, ['--frobnicate'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /unknown option: --frobnicate/)
  })

  it('armv7l on Raspbian: opencv via python-numpy then removed, get-pip, pip; swap advice printed', async () => {
    const r = await runInstaller('armv7l.sh', OS.raspbian, [], {STUB_AVAILABLE: 'python-dev'})
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(r.calls, [
      'apt-get -y update',
      'apt-get install -y liblapack3 libopenblas-dev liblapack-dev python-dev',
      'apt-get install -y python-numpy python-opencv',
      'dpkg --remove --force-depends python-numpy',
      `wget -q -O ${r.root}/icc-get-pip.py https://bootstrap.pypa.io/pip/2.7/get-pip.py`,
      `python ${r.root}/icc-get-pip.py`,
      'pip install numpy==1.15.0 picamera scipy',
    ])
    assert.match(r.stdout, /increase CONF_SWAPSIZE in \/etc\/dphys-swapfile/)
    assert.match(r.stdout, /--fix-libdc1394/)
    await assert.rejects(lstat(join(r.root, 'dev/raw1394')), 'the libdc1394 workaround is only offered')

    // Second run with python-opencv and pip present: no numpy dance, no get-pip.
    const again = await runInstaller('armv7l.sh', OS.raspbian, [], {
      STUB_AVAILABLE: 'python-dev',
      STUB_INSTALLED: 'liblapack3 libopenblas-dev liblapack-dev python-dev python-opencv',
      STUB_PIP2: '1',
      STUB_PIP_INSTALLED: 'numpy=1.15.0 picamera=1.13 scipy=1.2.3',
    })
    assert.deepEqual(again.calls, ['apt-get -y update'])
  })

  it('armv7l --increase-swap raises CONF_SWAPSIZE for the pip step and restores it; --fix-libdc1394 links /dev/raw1394', async () => {
    const prepare = async (root: string) => {
      await mkdir(join(root, 'etc/init.d'), {recursive: true})
      await writeFile(join(root, 'etc/dphys-swapfile'), '# swap\nCONF_SWAPSIZE=100\n')
      const restart = join(root, 'etc/init.d/dphys-swapfile')
      await writeFile(restart, '#!/bin/bash\necho "dphys-swapfile $*" >> "$STUB_LOG"\n')
      await chmod(restart, 0o755)
    }

    const r = await runInstaller(
      'armv7l.sh',
      OS.raspbian,
      ['--increase-swap', '--fix-libdc1394'],
      {STUB_AVAILABLE: 'python-dev', STUB_PIP2: '1', STUB_SWAPFILE: '1'},
      prepare,
    )
    assert.equal(r.code, 0, r.stderr)
    // The stub pip recorded the swap size it ran with.
    assert.match(r.log, /pip install numpy==1\.15\.0 picamera scipy\n {2}swap during pip: CONF_SWAPSIZE=1024\n/)
    const lines = r.log.split('\n')
    const pipAt = lines.indexOf('pip install numpy==1.15.0 picamera scipy')
    const restarts = lines.map((l, i) => (l === 'dphys-swapfile restart' ? i : -1)).filter((i) => i >= 0)
    assert.equal(restarts.length, 2, r.log)
    assert.ok(restarts[0] < pipAt && pipAt < restarts[1], r.log)
    assert.equal(await readFile(join(r.root, 'etc/dphys-swapfile'), 'utf8'), '# swap\nCONF_SWAPSIZE=100\n')
    assert.match(r.stdout, /CONF_SWAPSIZE 100 -> 1024/)
    assert.equal(await readlink(join(r.root, 'dev/raw1394')), '/dev/null')
  })

  it('nvidiajtx2 on Ubuntu 16.04: warns about commented universe lines and missing CUDA 9.0 / cuDNN 7, then installs', async () => {
    const sources = [
      'deb http://ports.ubuntu.com/ubuntu-ports/ xenial main restricted',
      '# deb http://ports.ubuntu.com/ubuntu-ports/ xenial universe',
      '# deb-src http://ports.ubuntu.com/ubuntu-ports/ xenial universe',
      'deb http://ports.ubuntu.com/ubuntu-ports/ xenial-updates main restricted universe',
      '# deb-src http://ports.ubuntu.com/ubuntu-ports/ xenial-updates universe',
    ].join('\n')
    const r = await runInstaller('nvidiajtx2.sh', OS.jetson, [], {STUB_AVAILABLE: 'python-dev'}, async (root) => {
      await mkdir(join(root, 'etc/apt'), {recursive: true})
      await writeFile(join(root, 'etc/apt/sources.list'), `${sources}\n`)
    })
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /CUDA Toolkit 9\.0 was not found/)
    assert.match(r.stderr, /cuDNN 7 \(libcudnn\.so\.7\) was not found/)
    const warned = r.stderr
      .split('\n')
      .filter((l) => /^\s+warning:\s+deb/.test(l))
      .map((l) => l.replace(/^\s+warning:\s+/, ''))
    assert.deepEqual(warned, [
      'deb http://ports.ubuntu.com/ubuntu-ports/ xenial universe',
      'deb-src http://ports.ubuntu.com/ubuntu-ports/ xenial universe',
      'deb-src http://ports.ubuntu.com/ubuntu-ports/ xenial-updates universe',
    ])
    assert.deepEqual(r.calls, [
      'apt-get -y update',
      'apt-get install -y liblapack3 libopenblas-dev liblapack-dev libatlas-base-dev python-dev',
      `wget -q -O ${r.root}/icc-get-pip.py https://bootstrap.pypa.io/pip/2.7/get-pip.py`,
      `python ${r.root}/icc-get-pip.py`,
      'pip install numpy==1.15.0 scipy',
    ])

    const ready = await runInstaller(
      'nvidiajtx2.sh',
      OS.jetson,
      ['--upgrade'],
      {STUB_AVAILABLE: 'python-dev', STUB_PIP2: '1'},
      async (root) => {
        await mkdir(join(root, 'etc/apt'), {recursive: true})
        await writeFile(join(root, 'etc/apt/sources.list'), `${sources.replaceAll('# deb', 'deb')}\n`)
        await mkdir(join(root, 'usr/local/cuda-9.0/lib64'), {recursive: true})
        await writeFile(join(root, 'usr/local/cuda-9.0/lib64/libcudnn.so.7'), '')
      },
    )
    assert.equal(ready.code, 0, ready.stderr)
    assert.match(ready.stdout, /universe repositories are enabled/)
    assert.match(ready.stdout, /CUDA 9\.0 found/)
    assert.match(ready.stdout, /cuDNN 7 found/)
    assert.doesNotMatch(ready.stderr, /warning/)
    assert.deepEqual(ready.calls.slice(0, 2), ['apt-get -y update', 'apt-get -y dist-upgrade'])
    assert.ok(!ready.calls.some((c) => c.startsWith('wget')), 'pip for Python 2 is present: no get-pip.py')
  })
})

describe('device: installDeps (plan, confirmation, failure naming the step)', function () {
  this.timeout(60_000)

  async function fixture(os: string): Promise<{env: Record<string, string>; log: string; root: string}> {
    const root = await tempDir('deps')
    await writeStubs(join(root, 'stubs'))
    await mkdir(join(root, 'etc'), {recursive: true})
    await writeFile(join(root, 'etc/os-release'), os)
    const log = join(root, 'calls.log')
    await writeFile(log, '')
    return {
      env: {
        PATH: `${join(root, 'stubs')}:/usr/bin:/bin`,
        STUB_AVAILABLE: 'python-dev python-pip libgfortran3',
        STUB_LOG: log,
      },
      log,
      root,
    }
  }

  it('runs the plan, then the installer, logging to the log file', async () => {
    const f = await fixture(OS.ubuntu1804)
    const logFile = join(f.root, 'logs/install.log')
    const lines: string[] = []
    let planned: string[] = []
    let asked = ''
    const result = await installDeps({
      async confirm(q) {
        asked = q
        return true
      },
      env: f.env,
      logFile,
      onLine: (l) => lines.push(l),
      onPlan(p) {
        planned = p.steps.flatMap((s) => s.commands)
      },
      platform: 'x86_64',
      root: f.root,
      uid: 0,
    })
    assert.deepEqual(planned, [
      'apt-get -y update',
      'apt-get install -y libgfortran3 libsm6 libxext6 libxrender1',
      'apt-get install -y python-dev python-pip',
      'pip install numpy==1.15.0 scipy opencv-python',
    ])
    assert.match(asked, /x86_64\.sh/)
    assert.equal(result.logFile, logFile)
    assert.ok(result.stepsRun.includes('install python modules'))
    assert.deepEqual(mutatingCalls(await readFile(f.log, 'utf8')), planned)
    const log = await readFile(logFile, 'utf8')
    assert.match(log, /==> step: install python modules/)
    assert.ok(lines.includes('==> step: done'))
  })

  it('names the failing step and the log file (DependencyError, exit 5)', async () => {
    const f = await fixture(OS.ubuntu1804)
    const logFile = join(f.root, 'fail.log')
    await assert.rejects(
      installDeps({
        env: {...f.env, STUB_FAIL: 'pip install'},
        logFile,
        platform: 'x86_64',
        root: f.root,
        uid: 0,
        yes: true,
      }),
      (e: any) =>
        e.code === 'INSTALL_STEP_FAILED' &&
        e.exitCode === 5 &&
        e.details.step === 'install python modules' &&
        e.message.includes('"install python modules"') &&
        e.message.includes(logFile),
    )
    assert.match(await readFile(logFile, 'utf8'), /==> failed: install python modules/)
  })

  it('requires root (unless dry run), and --yes without a terminal', async () => {
    const f = await fixture(OS.ubuntu1804)
    await assert.rejects(
      installDeps({env: f.env, platform: 'x86_64', root: f.root, uid: 1000, yes: true}),
      (e: any) => e.code === 'NEEDS_ROOT' && /sudo/.test(e.message),
    )
    await assert.rejects(
      installDeps({env: f.env, platform: 'x86_64', root: f.root, uid: 0}),
      (e: any) => e.code === 'CONFIRMATION_REQUIRED' && e.exitCode === 2 && /--yes/.test(e.suggestions.join(' ')),
    )
    assert.deepEqual(mutatingCalls(await readFile(f.log, 'utf8')), [], 'nothing ran')
    const dry = await installDeps({dryRun: true, env: f.env, platform: 'x86_64', root: f.root, uid: 1000})
    assert.equal(dry.dryRun, true)
    assert.ok(dry.plan.steps.length > 5)
  })

  it('reports an unsupported system as UNSUPPORTED_OS', async () => {
    const f = await fixture(OS.fedora)
    await assert.rejects(
      installDeps({dryRun: true, env: f.env, platform: 'x86_64', root: f.root}),
      (e: any) => e.code === 'UNSUPPORTED_OS' && /Fedora/.test(e.message),
    )
  })
})
