/**
 * Test helper: write generated SageMaker-style MXNet models (symbol, params, model-shapes.json, labels) to a
 * folder or a model.tar.gz, using the MXNet writer of src/model/writer.ts.
 */
import {rmSync} from 'node:fs'
import {mkdir, mkdtemp, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import * as tar from 'tar'

import type {ParamDType, RecordFormat} from '../../src/model/mxnet-params.js'

import {generateWeights, type NamedArray, resnetSymbol, writeParams} from '../../src/model/writer.js'

export interface FixtureOptions {
  dtype?: ParamDType
  epochs?: number[]
  format?: RecordFormat
  imageShape?: [number, number, number]
  labels?: string[]
  numClasses?: number
  numLayers?: number
  seed?: number
  /** Write model-shapes.json (default true). */
  shapes?: boolean
}

export interface Fixture {
  dir: string
  symbol: string
  weights: NamedArray[]
}

/** The folders tempDir made in this process. */
const made: string[] = []

// removed when the test process exits (a suite run left ~1 GB of models and photos in /tmp each time, and filled a
// disk); ICC_KEEP_TEST_DIRS=1 keeps them to look into
process.on('exit', () => {
  if (process.env.ICC_KEEP_TEST_DIRS === '1') return
  for (const dir of made) {
    try {
      rmSync(dir, {force: true, recursive: true})
    } catch {
      // e.g. a file system still mounted there: left for the system's /tmp cleaning
    }
  }
})

/** A new folder under the system's temporary folder, removed when the test process exits. */
export async function tempDir(prefix = 'icc-model-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  made.push(dir)
  return dir
}

export async function writeModelDir(dir: string, options: FixtureOptions = {}): Promise<Fixture> {
  const imageShape = options.imageShape ?? [3, 32, 32]
  const numClasses = options.numClasses ?? 5
  const symbol = resnetSymbol({imageShape, numClasses, numLayers: options.numLayers ?? 20})
  await mkdir(dir, {recursive: true})
  await writeFile(join(dir, 'image-classification-symbol.json'), symbol)
  let weights: NamedArray[] = []
  for (const epoch of options.epochs ?? [1]) {
    weights = generateWeights(symbol, [1, ...imageShape], (options.seed ?? 7) + epoch)
    const bytes = writeParams(weights, {dtype: options.dtype, format: options.format})
    await writeFile(join(dir, `image-classification-${String(epoch).padStart(4, '0')}.params`), bytes)
  }

  if (options.shapes !== false) {
    await writeFile(join(dir, 'model-shapes.json'), JSON.stringify([{name: 'data', shape: [1, ...imageShape]}]))
  }

  if (options.labels) await writeFile(join(dir, 'synset.txt'), options.labels.join('\n') + '\n')
  return {dir, symbol, weights}
}

/** Pack a folder's files into `<out>` (a model.tar.gz as SageMaker writes it: files at the root). */
export async function packTarGz(dir: string, files: string[], out: string): Promise<string> {
  await tar.c({cwd: dir, file: out, gzip: true}, files)
  return out
}

/** data -> Convolution (attributes `conv`) -> global pooling -> FullyConnected(2) -> SoftmaxOutput. */
export function convSymbol(conv: Record<string, string>): string {
  const v = (name: string) => ({inputs: [], name, op: 'null'})
  return JSON.stringify({
    heads: [[8, 0, 0]],
    nodes: [
      v('data'),
      v('conv0_weight'),
      v('conv0_bias'),
      {
        attrs: {kernel: '(3, 3)', num_filter: '4', ...conv},
        inputs: [
          [0, 0, 0],
          [1, 0, 0],
          [2, 0, 0],
        ],
        name: 'conv0',
        op: 'Convolution',
      },
      {
        attrs: {global_pool: 'True', kernel: '(1, 1)', pool_type: 'avg'},
        inputs: [[3, 0, 0]],
        name: 'pool0',
        op: 'Pooling',
      },
      v('fc_weight'),
      v('fc_bias'),
      {
        attrs: {num_hidden: '2'},
        inputs: [
          [4, 0, 0],
          [5, 0, 0],
          [6, 0, 0],
        ],
        name: 'fc',
        op: 'FullyConnected',
      },
      {inputs: [[7, 0, 0]], name: 'softmax', op: 'SoftmaxOutput'},
    ],
  })
}
