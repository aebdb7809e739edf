/**
 * The model core's public face (a barrel, no code): load/inspect/convert SageMaker image-classification models,
 * run them with ONNX Runtime (./session.ts, the one session factory) and format the connector's output. Used by
 * `icc inspect-model`, `icc convert-model`, `icc predict` and `icc serve`.
 */
export {resolveArtifact} from './artifact.js'
export {type CacheEntry, type CacheListing, holdEntries, listCache, pruneCache, type PruneResult} from './cache-care.js'
export {defaultCacheDir} from './cache.js'
export {convertModel, type ConvertOptions, type ConvertResult} from './convert.js'
export {warmUpDecode} from './decode-warm-up.js'
export {ensureDefaultModel} from './default-model.js'
export {formatFloat32, formatFloat32Exact, formatProbabilities, topK} from './format.js'
export {inspectModel, type InspectResult} from './inspect.js'
export {readLabelsFile} from './labels.js'
export {loadModel, type LoadModelOptions} from './load.js'
export {activationBound} from './onnx-export/index.js'
export {predict, type Prediction, type PredictOptions, type PredictResult} from './predict.js'
export {preprocessImage, preprocessInto} from './preprocess.js'
export {quantizeInt8, type QuantizeResult} from './quantize.js'
export * from './session.js'
export * from './types.js'
