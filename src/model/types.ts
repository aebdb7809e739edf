/**
 * Shared types of the model core (`src/model`), used by the CLI commands, `icc serve` and `icc doctor`.
 *
 * The pipeline: an artifact (folder, model.tar.gz, or .onnx) is resolved to an MXNet symbol + params pair (or an
 * ONNX file), converted once to ONNX (cached by content hash), and run by ONNX Runtime on images that
 * `preprocessImage` turns into NCHW float32 tensors.
 */

/** Optional preprocessing for non-SageMaker MXNet models (SageMaker models use the defaults). */
export interface PreprocessingSpec {
  /** Channel order of the network's input (default RGB). */
  channelOrder?: 'BGR' | 'RGB'
  /** Per-channel mean subtracted after scaling (default 0). */
  mean?: number[]
  /** Multiply pixel values (0..255) by this first (default 1). */
  scale?: number
  /** Per-channel std dividing after the mean (default 1). */
  std?: number[]
}

/**
 * How images are decoded and resized (docs/preprocessing.md): `exact` reproduces the connector's OpenCV pipeline
 * bit for bit; `fast` lets libvips decode (ICC to sRGB, shrink-on-load) and resize, which may change answers.
 */
export type ResizeMode = 'exact' | 'fast'

/** The preprocessing mode when none is given: the connector's OpenCV arithmetic. */
export const DEFAULT_RESIZE_MODE: ResizeMode = 'exact'

export interface PreprocessOptions {
  /** 1 (grayscale) or 3 (RGB). */
  channels: number
  /** Hint from the request; the bytes are sniffed anyway and a lie is detected. */
  contentType?: string
  height: number
  /** Decompression-bomb guard: refuse images with more pixels than this (default 50 megapixels). */
  maxPixels?: number
  preprocessing?: PreprocessingSpec
  /**
   * Called before the decode with the memory it will take (./decode-memory.ts) and the image's size; the decode
   * starts when the returned promise resolves and calls the function it resolves to when done (the runner of
   * `icc serve` admits decodes against its memory limit this way). A rejection is the preprocessing's error.
   */
  reserve?: (bytes: number, image: {height: number; width: number}) => Promise<() => void>
  /** Decode/resize mode (default `exact`). */
  resize?: ResizeMode
  width: number
}

/** What `resolveArtifact` finds in a model path. */
export interface ResolvedArtifact {
  /** Directory holding the model files (a temp/cache directory when the input was a .tar.gz). */
  dir: string
  /** Epoch number of the params file chosen (highest unless told). */
  epoch?: number
  /** Class names, one per class (from synset.txt / labels.txt / the sidecar), when present. */
  labels?: string[]
  /** `kind: 'onnx'` when the input was a plain .onnx model. */
  kind: 'mxnet' | 'onnx'
  onnxPath?: string
  paramsPath?: string
  /** Preprocessing from the sidecar file (`icc-model.json`), when present. */
  preprocessing?: PreprocessingSpec
  /** Input shape [N, C, H, W] from model-shapes.json, when present. */
  shape?: number[]
  symbolPath?: string
  warnings: string[]
}

/** A model ready for ONNX Runtime. */
export interface LoadedModel {
  /** The conversion cache entry's key (./cache-care.ts), for a converted model. */
  cacheKey?: string
  /** SHA-256 of symbol+params (or of the .onnx file). */
  hash: string
  /** [C, H, W] of one image. */
  inputShape: [number, number, number]
  labels?: string[]
  numClasses: number
  /** Path of the (cached) ONNX file. */
  onnxPath: string
  /** The model optimised ahead of time for the CPU (loadModel's `optimize`), when there is one. */
  optimizedPath?: string
  preprocessing?: PreprocessingSpec
  /** Human summary: architecture guess, MXNet version, params format... */
  summary: Record<string, unknown>
  warnings: string[]
}
