/**
 * What `icc serve` answers: the connector's body (src/model/format.ts, shared with `icc predict`) and the top
 * classes of the verbose JSON answer.
 */
import {formatFloat32} from '../model/format.js'

export {formatProbabilities as formatConnectorBody, formatFloat32} from '../model/format.js'

/** The k most probable classes, highest first. */
export function topClasses(
  probabilities: Float32Array,
  k: number,
  labels?: string[],
): {index: number; label?: string; probability: number}[] {
  const order = Array.from(probabilities.keys()).sort((a, b) => probabilities[b] - probabilities[a] || a - b)
  return order.slice(0, Math.max(0, Math.min(k, probabilities.length))).map((index) => ({
    index,
    ...(labels?.[index] === undefined ? {} : {label: labels[index]}),
    probability: Number(formatFloat32(probabilities[index])),
  }))
}
