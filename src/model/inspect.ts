/** `icc inspect-model`: what a model is (architecture, classes, shapes, operators) and whether it converts. */
import {resolveArtifact} from './artifact.js'
import {defaultCacheDir} from './cache.js'
import {analyze, loadModel, type LoadModelOptions} from './load.js'

export async function inspectModel(path: string, options: LoadModelOptions = {}): Promise<InspectResult> {
  const cacheDir = options.cacheDir ?? defaultCacheDir()
  const art = await resolveArtifact(path, {cacheDir, epoch: options.epoch})
  const a = await analyze(art, options)
  const problems = (a.summary.problems as string[] | undefined) ?? []
  let converts = false
  try {
    const m = await loadModel(path, options)
    converts = true
    Object.assign(a.summary, {classes: m.numClasses, inputShape: m.inputShape})
  } catch (error) {
    problems.push(`conversion: ${(error as Error).message}`)
  }

  return {
    ...a.summary,
    converts,
    hash: a.hash,
    labelNames: art.labels,
    path,
    problems,
    warnings: art.warnings,
  } as InspectResult
}

export interface InspectResult {
  architecture?: string
  classes?: number
  converts: boolean
  hash: string
  inputShape?: number[]
  [key: string]: unknown
  problems: string[]
  warnings: string[]
}
