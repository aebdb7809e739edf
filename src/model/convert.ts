/** `icc convert-model`: write the converted ONNX model, or an int8 one calibrated on images (./quantize.ts). */
import {copyFile, readdir, readFile, stat} from 'node:fs/promises'
import {dirname, join} from 'node:path'

import {spinWhile} from '../aws/progress.js'
import {UsageError} from '../errors.js'
import {atomicWriteWith} from './cache.js'
import {diskError, makeWritableDir, OUTPUT_ADVICE} from './disk-errors.js'
import {loadModel, type LoadModelOptions} from './load.js'
import {preprocessImage} from './preprocess.js'
import {quantizeInt8} from './quantize.js'
import {resolveRuntime} from './session.js'

/** What the output is, as error messages name it. */
const OUTPUT = 'the converted model'

export interface ConvertOptions extends LoadModelOptions {
  /** Images (a directory, searched recursively) to calibrate int8 quantization on. */
  calibration?: string
  /** Most calibration images used, spread evenly over the sorted list (default 64). */
  calibrationCount?: number
  /** Write an int8 (QDQ) model instead of the float32 one (./quantize.ts). */
  quantize?: 'int8'
}

export interface ConvertResult {
  bytes: number
  classes: number
  inputShape: [number, number, number]
  output: string
  /** With --quantize int8: what was quantized, and on how many calibration images. */
  quantization?: {calibrationImages: number; convolutions: number; foldedBatchNorms: number; tensors: number}
  warnings: string[]
}

/** Up to `count` JPEG/PNG files under `dir` (recursively), spread evenly over their sorted list. */
async function calibrationFiles(dir: string, count: number): Promise<string[]> {
  let entries: string[]
  try {
    entries = (await readdir(dir, {recursive: true})).map(String)
  } catch (error) {
    throw new UsageError(
      'BAD_CALIBRATION_DIR',
      `Cannot read the calibration directory ${dir}: ${(error as Error).message}`,
      {
        suggestions: ['Pass --calibration DIR with JPEG/PNG images like the ones the model will see.'],
      },
    )
  }

  const images = entries.filter((f) => /\.(jpe?g|png)$/i.test(f)).sort()
  if (images.length === 0) {
    throw new UsageError('NO_CALIBRATION_DATA', `No .jpg, .jpeg or .png file under ${dir}.`, {
      suggestions: ['Pass --calibration DIR with JPEG/PNG images like the ones the model will see (32-100 is plenty).'],
    })
  }

  const step = Math.max(1, images.length / count)
  const picked: string[] = []
  for (let i = 0; i < images.length && picked.length < count; i += step) picked.push(join(dir, images[Math.floor(i)]))
  return picked
}

export async function convertModel(path: string, output: string, options: ConvertOptions = {}): Promise<ConvertResult> {
  if (!output.endsWith('.onnx')) {
    throw new UsageError('BAD_OUTPUT', `--output must name a .onnx file: ${output}`, {
      suggestions: ['e.g. --output model.onnx'],
    })
  }

  if (options.quantize && !options.calibration) {
    throw new UsageError(
      'NO_CALIBRATION_DATA',
      '--quantize int8 needs --calibration DIR (images to measure activation ranges on).',
      {
        suggestions: [
          'Pass --calibration DIR with JPEG/PNG images like the ones the model will see (32-100 is plenty).',
        ],
      },
    )
  }

  const m = await loadModel(path, options)
  await makeWritableDir(dirname(output), OUTPUT, OUTPUT_ADVICE)
  if (!options.quantize) {
    await atomicWriteWith(output, async (temp) => copyFile(m.onnxPath, temp), {advice: OUTPUT_ADVICE, what: OUTPUT})
    const bytes = (await stat(output)).size
    return {bytes, classes: m.numClasses, inputShape: m.inputShape, output, warnings: m.warnings}
  }

  const [c, h, w] = m.inputShape
  const files = await calibrationFiles(options.calibration!, options.calibrationCount ?? 64)
  // each image decoded when the calibration gets to it: one image's tensor at a time, not all of them
  const calibration = {
    count: files.length,
    async image(i: number) {
      try {
        const settings = {channels: c, height: h, preprocessing: m.preprocessing, width: w}
        return await preprocessImage(await readFile(files[i]), settings)
      } catch (error) {
        throw new UsageError('BAD_CALIBRATION_IMAGE', `Calibration image ${files[i]}: ${(error as Error).message}`, {
          suggestions: ['Remove or replace that file.'],
        })
      }
    },
  }

  const {backend} = await resolveRuntime(options.runtime)
  const q = await spinWhile(options.progress ?? false, 'quantizing model (int8)', async () =>
    quantizeInt8(m.onnxPath, output, {backend, calibration, inputShape: m.inputShape}),
  ).catch(async (error: unknown) => {
    throw (await diskError(error, dirname(output), 'the int8 model and its working files', OUTPUT_ADVICE)) ?? error
  })
  return {
    bytes: q.bytes,
    classes: m.numClasses,
    inputShape: m.inputShape,
    output,
    quantization: {
      calibrationImages: files.length,
      convolutions: q.convolutions,
      foldedBatchNorms: q.foldedBatchNorms,
      tensors: q.tensors,
    },
    warnings: m.warnings,
  }
}
