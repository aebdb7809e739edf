/** The shapes of `icc doctor`'s checks, shared by ./doctor.ts and ./doctor-icc.ts. */
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
