/** The shapes of `icc doctor`: its options, checks and result, shared by ./doctor.ts, its checks and its rendering. */
import type {ConnectorVersion, PlatformId} from '../connector/catalog.js'
import type {Runtime} from '../model/session.js'
import type {DetectedPlatform} from './platform.js'

export type CheckStatus = 'fail' | 'pass' | 'skip' | 'warn'

/** Which tool a check is for: `icc` serve itself, or the original connector's runtime (Greengrass V1 core). */
export type CheckFor = 'connector' | 'icc'

/** Which verdicts decide the exit status: `icc` (default), `connector`, or both (`all`). */
export type DoctorVerdictChoice = 'all' | CheckFor

export interface Verdict {
  ok: boolean
  summary: Record<CheckStatus, number>
}

export interface DoctorCheck {
  /** What was seen: paths, versions, command output. */
  evidence: Record<string, unknown>
  /** How to fix a failure or warning. */
  fix?: string
  /** The tool the check is for. */
  for: CheckFor
  /** Stable id, e.g. `library:libc.so.6`, `python`, `python-module:numpy`. */
  id: string
  /** One line: what was found. */
  message: string
  status: CheckStatus
  title: string
}

export interface DoctorOptions {
  /** Node.js architecture whose platform-table row and onnxruntime-node binary are checked (default process.arch). */
  arch?: string
  connectorVersion?: ConnectorVersion
  /** Extra library directories searched first. */
  libDirs?: string[]
  /** Skip the ldconfig cache and the standard directories (only libDirs and LD_LIBRARY_PATH): tests. */
  libDirsOnly?: boolean
  /** The glibc version to check instead of the running one (tests). */
  glibcVersion?: string
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
