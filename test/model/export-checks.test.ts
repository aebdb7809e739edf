// @tier unit
/**
 * The exporter's checks of a graph before anything is written (issue 21 items 9 and 10): the memory its tensors
 * need per image (a 2 KB symbol whose Convolution pads by 9000 needs gigabytes), attributes MXNet itself refuses
 * (stride 0, dilate NaN, a non-positive kernel), parameters that do not fit the graph, duplicate node names.
 */
import assert from 'node:assert/strict'

import {ModelError} from '../../src/errors.js'
import {readParams} from '../../src/model/mxnet-params.js'
import {parseSymbol} from '../../src/model/mxnet-symbol.js'
import {DEFAULT_ACTIVATION_BYTES, exportOnnx, SUPPORTED_OPS} from '../../src/model/onnx-export/index.js'
import {generateWeights, resnetSymbol, writeParams} from '../../src/model/writer.js'
import {convSymbol} from '../helpers/model-fixtures.js'

const readParamsMap = (bytes: Uint8Array) => new Map(readParams(bytes).arrays.map((a) => [a.name, a]))

const SHAPE = [1, 3, 224, 224]

function exportOf(
  symbol: string,
  params = readParamsMap(writeParams(generateWeights(convSymbol({}), SHAPE))),
  max?: number,
) {
  return exportOnnx(parseSymbol(symbol), {inputShape: SHAPE, maxActivationBytes: max, params})
}

function refused(code: string, ...patterns: RegExp[]) {
  return (error: unknown) => {
    assert.ok(error instanceof ModelError, String(error))
    assert.equal(error.code, code, error.message)
    assert.equal(error.exitCode, 4)
    for (const p of patterns) assert.match(error.message, p)
    return true
  }
}

describe('exporter checks before anything is written', () => {
  it('the registry is the supported-op list', () => {
    for (const op of ['Convolution', 'Pooling', 'BatchNorm', 'FullyConnected', 'flatten', 'LeakyReLU', 'softmax']) {
      assert.ok(SUPPORTED_OPS.includes(op), op)
    }

    assert.equal(new Set(SUPPORTED_OPS).size, SUPPORTED_OPS.length)
  })

  it('refuses a Convolution with pad (9000, 9000) by the memory its tensors need, naming the node and the size', () => {
    const symbol = convSymbol({pad: '(9000, 9000)'})
    assert.ok(symbol.length < 2048)
    const params = readParamsMap(writeParams(generateWeights(symbol, SHAPE)))
    const started = performance.now()
    assert.throws(
      () => exportOf(symbol, params),
      refused('BAD_SYMBOL', /Convolution node "conv0"/, /1x4x18222x18222/, /4\.9 GiB/),
    )
    assert.ok(DEFAULT_ACTIVATION_BYTES < 4 * 18_222 ** 2 * 4)
    // refused from the shapes alone: nothing the size of the tensor was allocated
    assert.ok(performance.now() - started < 10_000)
  })

  it('bounds the tensors by the limit given, and reports the peak of a graph that fits', () => {
    const symbol = resnetSymbol({imageShape: [3, 32, 32], numClasses: 5, numLayers: 20})
    const params = readParamsMap(writeParams(generateWeights(symbol, [1, 3, 32, 32])))
    const options = {inputShape: [1, 3, 32, 32], params}
    const r = exportOnnx(parseSymbol(symbol), options)
    // the first stage holds two or three 16x32x32 tensors at once (a unit's input, its branch, the sum)
    assert.ok(
      r.activation.bytes >= 2 * 16 * 32 * 32 * 4 && r.activation.bytes < 10 * 16 * 32 * 32 * 4,
      String(r.activation.bytes),
    )
    assert.throws(
      () => exportOnnx(parseSymbol(symbol), {...options, maxActivationBytes: r.activation.bytes - 1}),
      refused('BAD_SYMBOL', new RegExp(`node "${r.activation.node}"`)),
    )
    assert.doesNotThrow(() => exportOnnx(parseSymbol(symbol), {...options, maxActivationBytes: r.activation.bytes}))
  })

  for (const [attrs, pattern] of [
    [{stride: '(0, 0)'}, /stride \(0, 0\) must be 2 positive integers/],
    [{dilate: '(NaN, NaN)'}, /dilate \(NaN, NaN\) must be 2 positive integers/],
    [{kernel: '(0, 3)'}, /kernel \(0, 3\) must be 2 positive integers/],
    [{kernel: '(-1, 3)'}, /kernel \(-1, 3\)/],
    [{kernel: '()'}, /kernel \(\) must have one to three dimensions/],
    [{pad: '(1, -1)'}, /pad \(1, -1\) must be 2 non-negative integers/],
    [{stride: '(1, 1, 1)'}, /stride \(1, 1, 1\) must be 2 positive integers/],
    [{num_group: '0'}, /num_group 0 must be a positive integer/],
    [{num_filter: '4', num_group: '3'}, /cannot be split into 3 groups/],
  ] as const) {
    it(`refuses a Convolution with ${JSON.stringify(attrs)} (BAD_SYMBOL naming the node)`, () => {
      assert.throws(() => exportOf(convSymbol(attrs)), refused('BAD_SYMBOL', /Convolution node "conv0"/, pattern))
    })
  }

  it('refuses a Pooling window with stride 0', () => {
    const symbol = JSON.parse(convSymbol({})) as {nodes: {attrs?: Record<string, string>}[]}
    symbol.nodes[4].attrs = {kernel: '(2, 2)', pool_type: 'max', stride: '(0, 0)'}
    assert.throws(() => exportOf(JSON.stringify(symbol)), refused('BAD_SYMBOL', /Pooling node "pool0"/, /stride/))
  })

  it('refuses parameters whose shapes do not fit the graph (BAD_PARAMS naming the array)', () => {
    const wrong = generateWeights(convSymbol({num_filter: '5'}), SHAPE)
    assert.throws(
      () => exportOf(convSymbol({}), readParamsMap(writeParams(wrong))),
      refused('BAD_PARAMS', /conv0_weight is 5x3x3x3 in the params file, the graph needs 4x3x3x3/),
    )
  })

  it('refuses duplicate node names (BAD_SYMBOL naming the name)', () => {
    const symbol = JSON.parse(convSymbol({})) as {nodes: {name: string}[]}
    symbol.nodes[4].name = 'conv0'
    assert.throws(() => parseSymbol(JSON.stringify(symbol)), refused('BAD_SYMBOL', /"conv0" names nodes 3 and 4/))
  })
})
