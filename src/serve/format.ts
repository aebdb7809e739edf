/**
 * What `icc serve` answers: the connector's body and the top classes of the verbose JSON answer, both from
 * src/model/format.ts (shared with `icc predict`).
 */
export {formatProbabilities as formatConnectorBody, formatFloat32, topK} from '../model/format.js'
