/**
 * What `icc serve` answers: the connector's body and the top classes of the verbose JSON answer, both from
 * src/model/format.ts (shared with `icc predict`), and their warm-up when a runner is ready.
 */
import {formatProbabilities, topK} from '../model/format.js'

export {formatProbabilities as formatConnectorBody, formatFloat32, topK} from '../model/format.js'

/**
 * Format a made-up answer of `numClasses` probabilities as a request's would be (twice: V8 compiles the writer's
 * loop on its second use), so that the first request does not pay for the formatter's first use (~5-10 ms for
 * 1000 classes, against ~0.2 ms warm). Returns the body, which nobody receives.
 */
export function warmUpFormat(numClasses: number): string {
  const probabilities = new Float32Array(numClasses)
  let sum = 0
  for (let i = 0; i < numClasses; i++) {
    probabilities[i] = 1 / (1 + ((i * 7919) % 997))
    sum += probabilities[i]
  }

  for (let i = 0; i < numClasses; i++) probabilities[i] /= sum
  formatProbabilities(probabilities)
  topK(probabilities, 5)
  return formatProbabilities(probabilities)
}
