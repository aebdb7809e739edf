/**
 * icc as a self-contained bundle for one Linux CPU: the package's own files (bin, dist, schemas, assets, sdk,
 * install scripts, the oclif manifest) and its production `node_modules` for that OS and CPU only, as one
 * `icc-<version>-linux-<cpu>.tar.gz`, so a device installs nothing from the internet.
 *
 * The dependencies come either from the npm registry (`npm ci --omit=dev --os=linux --cpu=<cpu> --ignore-scripts`
 * in a temporary copy: nothing is built or run for a foreign CPU) or, for this machine's own CPU, from the local
 * `node_modules` (the packages `npm ls --omit=dev` lists). onnxruntime-node ships its binaries for every platform;
 * all but the target's are dropped, and of onnxruntime-web only what Node loads is kept. Bundles are cached under
 * the cache directory, keyed by the hash of everything that goes into them, so a second export (or test) reuses the
 * archive.
 */
import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {cp, mkdir, mkdtemp, readdir, readFile, rename, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join, relative, sep} from 'node:path'
import {fileURLToPath} from 'node:url'
import * as tar from 'tar'

import {DependencyError, UsageError} from '../errors.js'
import {defaultCacheDir} from '../model/cache.js'
import {runChecked} from '../system.js'

/** The package root (dist/src/greengrass-v2 -> the package root). */
export const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')

/** Greengrass V2's architecture names (the connector's three platforms) and npm's CPU names for them. */
export const ARCHITECTURES = {aarch64: 'arm64', amd64: 'x64', arm: 'arm'} as const
export type Architecture = keyof typeof ARCHITECTURES
export const ARCHITECTURE_NAMES = Object.keys(ARCHITECTURES) as Architecture[]

export type BundleSource = 'auto' | 'local' | 'registry'

export interface BundleOptions {
  architecture: Architecture
  /** Default `$ICC_CACHE_DIR` (else ~/.cache/icc). */
  cacheDir?: string
  /** Progress lines (which bundle, from where). */
  onProgress?: (line: string) => void
  source?: BundleSource
}

export interface Bundle {
  architecture: Architecture
  /** The recipe's Digest: base64 of the SHA-256 bytes. */
  digest: string
  file: string
  fileName: string
  fromCache: boolean
  size: number
}

/** What the bundle holds of the package itself (package.json's `files`, minus what a device never runs). */
async function packageEntries(): Promise<string[]> {
  const pkg = JSON.parse(await readFile(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {files: string[]}
  return ['package.json', 'package-lock.json', ...pkg.files]
}

async function* walk(path: string): AsyncGenerator<string> {
  const info = await stat(path)
  if (!info.isDirectory()) {
    yield path
    return
  }

  for (const name of (await readdir(path)).sort()) yield* walk(join(path, name))
}

/** The cache key: every file that goes into the bundle, by path and content, plus the target and the source. */
async function bundleKey(architecture: Architecture, source: string, entries: string[]): Promise<string> {
  const h = createHash('sha256').update(`icc-bundle-v2\0${architecture}\0${source}\0`)
  for (const entry of entries) {
    for await (const file of walk(join(PACKAGE_ROOT, entry))) {
      h.update(`${relative(PACKAGE_ROOT, file)}\0`)
      for await (const chunk of createReadStream(file)) h.update(chunk as Buffer)
    }
  }

  return h.digest('hex').slice(0, 20)
}

/** Base64 SHA-256 of a file, as the recipe's Digest field wants it. */
export async function fileDigest(path: string): Promise<string> {
  const h = createHash('sha256')
  for await (const chunk of createReadStream(path, {highWaterMark: 1 << 20})) h.update(chunk as Buffer)
  return h.digest('base64')
}

function resolveSource(architecture: Architecture, source: BundleSource = 'auto'): 'local' | 'registry' {
  const native = process.platform === 'linux' && process.arch === ARCHITECTURES[architecture]
  if (source === 'local' && !native) {
    throw new UsageError(
      'BUNDLE_NOT_LOCAL',
      `The local node_modules are for ${process.platform}/${process.arch}; a bundle for ${architecture} (linux/${ARCHITECTURES[architecture]}) must come from the npm registry.`,
      {suggestions: ['Use --bundle-source registry (or auto).']},
    )
  }

  return source === 'auto' ? (native ? 'local' : 'registry') : source
}

/** Copy this machine's production dependencies (as `npm ls --omit=dev` lists them) into `staging`. */
async function copyLocalDependencies(staging: string): Promise<void> {
  const listed = await runChecked('npm', ['ls', '--omit=dev', '--all', '--parseable'], {
    cwd: PACKAGE_ROOT,
    timeoutMs: 120_000,
  }).catch((error: Error) => {
    throw new DependencyError('BUNDLE_DEPENDENCIES', `Cannot list the production dependencies: ${error.message}`, {
      suggestions: ['Run `npm ci` in the icc package first, or use --bundle-source registry.'],
    })
  })
  const modules = join(PACKAGE_ROOT, 'node_modules') + sep
  for (const dir of listed.split('\n').filter((p) => p.startsWith(modules))) {
    const target = join(staging, relative(PACKAGE_ROOT, dir))
    // nested node_modules are listed on their own lines when they are production dependencies
    await cp(dir, target, {
      filter: (src) => !relative(dir, src).split(sep).includes('node_modules'),
      recursive: true,
      verbatimSymlinks: true,
    })
  }
}

/** Drop onnxruntime-node's binaries for every platform but linux/<cpu>. */
async function pruneForeignBinaries(staging: string, cpu: string): Promise<void> {
  const bin = join(staging, 'node_modules', 'onnxruntime-node', 'bin')
  for (const napi of await readdir(bin).catch(() => [] as string[])) {
    for (const os of await readdir(join(bin, napi))) {
      if (os !== 'linux') {
        await rm(join(bin, napi, os), {force: true, recursive: true})
        continue
      }

      for (const arch of await readdir(join(bin, napi, os))) {
        if (arch !== cpu) await rm(join(bin, napi, os, arch), {force: true, recursive: true})
      }
    }
  }
}

/**
 * Keep of onnxruntime-web only what Node loads: its `node` export and the one WebAssembly build that loads (SIMD +
 * threads). The browser bundles, the WebGPU/JSEP/JSPI builds and the source maps are ~130 of its 143 MB.
 */
async function pruneBrowserBuilds(staging: string): Promise<void> {
  const root = join(staging, 'node_modules', 'onnxruntime-web')
  const pkg = await readFile(join(root, 'package.json'), 'utf8').catch(() => undefined)
  if (pkg === undefined) return
  const node = (JSON.parse(pkg) as {exports?: {'.'?: {node?: Record<string, string>}}}).exports?.['.']?.node ?? {}
  const keep = new Set(Object.values(node).map((path) => path.replace(/^\.\/dist\//, '')))
  for (const file of await readdir(join(root, 'dist'))) {
    if (!keep.has(file) && !WASM_BUILD_FOR_NODE.test(file)) await rm(join(root, 'dist', file), {force: true})
  }
}

/** The build onnxruntime-web's Node export loads (`ort.node.min.mjs` imports it). */
const WASM_BUILD_FOR_NODE = /^ort-wasm-simd-threaded\.(mjs|wasm)$/

async function stage(architecture: Architecture, source: 'local' | 'registry', entries: string[]): Promise<string> {
  const staging = await mkdtemp(join(tmpdir(), `icc-bundle-${architecture}-`))
  for (const entry of entries) await cp(join(PACKAGE_ROOT, entry), join(staging, entry), {recursive: true})
  const cpu = ARCHITECTURES[architecture]
  if (source === 'local') {
    await copyLocalDependencies(staging)
  } else {
    await runChecked(
      'npm',
      ['ci', '--omit=dev', '--os=linux', `--cpu=${cpu}`, '--ignore-scripts', '--no-audit', '--no-fund'],
      {cwd: staging, timeoutMs: 15 * 60_000},
    ).catch((error: Error) => {
      throw new DependencyError(
        'BUNDLE_NPM_FAILED',
        `npm could not install icc's dependencies for linux/${cpu}: ${error.message}`,
        {suggestions: ['Check access to the npm registry (npm ping), or export on a machine that has it.']},
      )
    })
  }

  await pruneForeignBinaries(staging, cpu)
  await pruneBrowserBuilds(staging)
  return staging
}

/** Build (or take from the cache) the bundle for one architecture. */
export async function buildBundle(options: BundleOptions): Promise<Bundle> {
  const {architecture} = options
  const source = resolveSource(architecture, options.source)
  const entries = await packageEntries()
  const pkg = JSON.parse(await readFile(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {version: string}
  const fileName = `icc-${pkg.version}-linux-${ARCHITECTURES[architecture]}.tar.gz`
  const key = await bundleKey(architecture, source, entries)
  const dir = join(options.cacheDir ?? defaultCacheDir(), 'bundles', key)
  const file = join(dir, fileName)
  const cached = await stat(file).catch(() => undefined)
  if (cached?.isFile()) {
    return {architecture, digest: await fileDigest(file), file, fileName, fromCache: true, size: cached.size}
  }

  options.onProgress?.(
    `building the ${architecture} bundle (dependencies from ${source === 'local' ? 'the local node_modules' : 'the npm registry'})`,
  )
  const staging = await stage(architecture, source, entries)
  try {
    await mkdir(dir, {recursive: true})
    const temp = `${file}.${process.pid}.tmp`
    const top = (await readdir(staging)).sort()
    await tar.c({cwd: staging, file: temp, gzip: true, mtime: new Date(0), portable: true}, top)
    await rename(temp, file)
  } finally {
    await rm(staging, {force: true, recursive: true})
  }

  const {size} = await stat(file)
  return {architecture, digest: await fileDigest(file), file, fileName, fromCache: false, size}
}
