/** `icc doctor`'s report as text: one line per check, the fix under each problem, and the two verdicts. */
import type {CheckStatus, DoctorResult, Verdict} from './doctor-types.js'

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
