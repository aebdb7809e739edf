/**
 * `icc doctor`: check that a core device has everything the Image Classification connector (and `icc serve`)
 * needs, and say how to fix what is missing. This file runs the checks in order and decides the verdicts; each
 * family of checks lives in its own file, the text report in ./doctor-render.ts.
 *
 * Two verdicts, each check saying which tool it is for (`for`):
 * - "the original connector's runtime" (`connector`): the platform and every library of the platform's table in
 *   the connector catalog (./doctor-libraries.ts); Python 2.7 (connector version 1) or 3.7+ (version 2) with
 *   numpy, scipy and cv2 (./doctor-python.ts); AWS IoT Greengrass core 1.7+ and the memory cgroup
 *   (./doctor-system.ts);
 * - "icc serve is ready" (`icc`): Node.js, the memory-limit mode serve will use, the CUDA provider where
 *   onnxruntime-node has one, and with `model` a real runner's load (./doctor-icc.ts); glibc against the platform
 *   table, the ONNX Runtime backend serve will use, the ONNX Runtime binding and sharp (./doctor-runtime.ts).
 *
 * Each check is `pass`, `fail`, `warn` (fails only with `strict`) or `skip`; `verdict` (default `icc`) picks
 * which verdicts decide `ok`.
 */
import type {CheckStatus, DoctorCheck, DoctorOptions, DoctorResult} from './doctor-types.js'

import {findOnnxBinding} from '../model/runtime-choice.js'
import {checkCudaProvider, checkMemoryMode, checkModel, checkNode} from './doctor-icc.js'
import {checkLibraryTable, checkPlatform} from './doctor-libraries.js'
import {checkModules, checkPython} from './doctor-python.js'
import {checkBackend, checkGlibc, checkOnnxRuntime, checkSharp} from './doctor-runtime.js'
import {checkCgroups, checkGreengrass} from './doctor-system.js'
import {defaultRoot, glibcVersion, iccSupportFor} from './platform.js'

export {systemPython} from './doctor-python.js'
export {renderDoctor} from './doctor-render.js'
export type {
  CheckFor,
  CheckStatus,
  DoctorCheck,
  DoctorOptions,
  DoctorResult,
  DoctorVerdictChoice,
  Verdict,
} from './doctor-types.js'

/** Run every check. Never throws for a failed check: the result says what failed. */
export async function runDoctor(options: DoctorOptions = {}): Promise<DoctorResult> {
  const root = defaultRoot(options.root)
  const connectorVersion = options.connectorVersion ?? 1
  const {check, detected, platform} = await checkPlatform(options.platform, {machine: options.machine, root})
  const checks: DoctorCheck[] = [check]
  if (platform) {
    checks.push(
      ...(await checkLibraryTable(platform, {
        extraDirs: options.libDirs,
        ldconfig: options.libDirsOnly ? false : undefined,
        platform,
        root,
        standardDirs: !options.libDirsOnly,
      })),
    )
  }

  const py = await checkPython(connectorVersion, root, options.pythons)
  checks.push(
    py.check,
    ...(await checkModules(connectorVersion, py.python)),
    await checkGreengrass(options.greengrassRoot ?? '/greengrass'),
    await checkCgroups(root),
    checkNode(),
    ...(await runtimeChecks(options)),
    await checkMemoryMode(),
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

  return decide(checks, options, {connectorVersion, detected, platform})
}

/**
 * The C library, the ONNX Runtime backend and binding, sharp: what `icc serve` loads here. The backend is the
 * session factory's answer (`--runtime`): here, or for another machine (`arch`) from what is installed for it.
 */
async function runtimeChecks(options: DoctorOptions): Promise<DoctorCheck[]> {
  const facts = {
    glibc: options.glibcVersion ?? glibcVersion(),
    support: iccSupportFor(options.arch),
  }
  const binding = await findOnnxBinding(options.arch)
  const backend = await checkBackend({arch: options.arch, runtime: options.runtime, support: facts.support})
  return [checkGlibc(facts), backend, await checkOnnxRuntime(binding), await checkSharp(facts)]
}

/** The verdicts of the checks: each tool's own, and `ok` for the ones `verdict` picks. */
function decide(
  checks: DoctorCheck[],
  options: DoctorOptions,
  found: Pick<DoctorResult, 'connectorVersion' | 'detected' | 'platform'>,
): DoctorResult {
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
  return {checks, ...found, ok, strict, summary, verdict, verdicts}
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
