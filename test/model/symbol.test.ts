import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'

import {ModelError} from '../../src/errors.js'
import {inferShapes, parseBool, parseSymbol, parseTuple} from '../../src/model/mxnet-symbol.js'
import {resnetSymbol} from '../../src/model/writer.js'
import {SHARED} from '../helpers/cli.js'

const MODELS = join(SHARED, 'models')

describe('MXNet symbol reader', () => {
  it('parses attribute strings of every style', () => {
    assert.deepEqual(parseTuple('(3, 3)'), [3, 3])
    assert.deepEqual(parseTuple('(3,3)'), [3, 3])
    assert.deepEqual(parseTuple('(8,)'), [8])
    assert.deepEqual(parseTuple('[1, 2]'), [1, 2])
    assert.deepEqual(parseTuple('()'), [])
    assert.equal(parseBool('True', false), true)
    assert.equal(parseBool('1', false), true)
    assert.equal(parseBool('False', true), false)
    assert.equal(parseBool('0', true), false)
    assert.equal(parseBool(undefined, true), true)
  })

  it('reads attrs (1.x), attr (0.12) and param (0.8) keys, with two- or three-element inputs', () => {
    for (const key of ['attrs', 'attr', 'param']) {
      const sym = parseSymbol(
        JSON.stringify({
          heads: [[1, 0]],
          nodes: [
            {inputs: [], name: 'data', op: 'null'},
            {[key]: {act_type: 'relu'}, inputs: key === 'attrs' ? [[0, 0, 0]] : [[0, 0]], name: 'r', op: 'Activation'},
          ],
        }),
      )
      assert.equal(sym.nodes[1].attrs.act_type, 'relu', key)
      assert.deepEqual(sym.nodes[1].inputs, [[0, 0]])
      assert.equal(sym.mxnetVersion, undefined)
    }
  })

  it('reads every shared symbol (with and without mxnet_version)', () => {
    const cases: [string, number | undefined][] = [
      ['sagemaker-resnet18-v0.12/image-classification-symbol.json', 1201],
      ['fashion-mnist-lenet/fashion-mnist-symbol.json', 10_600],
      ['mtcnn-legacy/det1-symbol.json', undefined],
      ['mtcnn-legacy/det2-symbol.json', undefined],
    ]
    for (const [file, version] of cases) {
      const sym = parseSymbol(readFileSync(join(MODELS, file), 'utf8'), file)
      assert.equal(sym.mxnetVersion, version, file)
      assert.ok(sym.nodes.length > 5)
    }
  })

  it('refuses cyclic / forward references, bad JSON, empty and huge graphs', () => {
    const check = (text: string, pattern: RegExp) =>
      assert.throws(
        () => parseSymbol(text, 's.json'),
        (e: unknown) => e instanceof ModelError && pattern.test(e.message),
      )
    check('{"nodes":[{"op":"null","name":"a","inputs":[[0,0]]}]}', /not an earlier node/)
    check(
      '{"nodes":[{"op":"null","name":"a","inputs":[]},{"op":"relu","name":"b","inputs":[[5,0]]}]}',
      /not an earlier/,
    )
    check('{"nodes": [', /not valid JSON/)
    check('{"nodes": []}', /empty/)
    check('[]', /no "nodes"/)
    check('{"nodes":[{"op":"null","name":"a","inputs":[["x",0]]}]}', /expected \[node, output/)
    check(JSON.stringify({nodes: Array.from({length: 100_001}, () => ({inputs: [], name: 'a', op: 'null'}))}), /limit/)
    // deeply nested JSON where a node or an input belongs: a clear error, not a stack overflow
    const deep = (n: number) => '['.repeat(n) + ']'.repeat(n)
    check(`{"nodes":[{"op":"null","name":"a","inputs":${deep(200_000)}}]}`, /expected \[node, output|not valid JSON/)
    check(`{"nodes":${deep(200_000)}}`, /node 0 is not an object|not valid JSON/)
    // a deeply nested attribute value is not a string attribute: ignored, the rest is read
    const nested = parseSymbol(
      `{"nodes":[{"op":"null","name":"a","inputs":[],"attrs":{"k":${deep(200_000)},"x":"1"}}]}`,
    )
    assert.deepEqual(nested.nodes[0].attrs, {x: '1'})
  })

  it('the ResNet-18 generator reproduces the real SageMaker symbol node by node', () => {
    const real = JSON.parse(
      readFileSync(join(MODELS, 'sagemaker-resnet18-v0.12', 'image-classification-symbol.json'), 'utf8'),
    ) as {nodes: {inputs: number[][]; name: string; op: string}[]}
    const mine = JSON.parse(resnetSymbol({numClasses: 24, numLayers: 18})) as typeof real
    assert.equal(mine.nodes.length, real.nodes.length)
    // SageMaker renames the classifier (newlayer_fc2) when fine-tuning; everything else is identical.
    const rename = (n: string) => n.replace('newlayer_fc2', 'fc1')
    for (const [i, n] of real.nodes.entries()) {
      assert.equal(mine.nodes[i].op, n.op, `node ${i}`)
      assert.equal(mine.nodes[i].name, rename(n.name), `node ${i}`)
      assert.deepEqual(
        mine.nodes[i].inputs.map((x) => x[0]),
        n.inputs.map((x) => x[0]),
        `inputs of node ${i}`,
      )
    }
  })

  it('generates every ImageNet and CIFAR depth with the right unit counts and shapes', () => {
    const depths: [number, number, number, number][] = [
      [18, 224, 8, 512],
      [34, 224, 16, 512],
      [50, 224, 16, 2048],
      [101, 224, 33, 2048],
      [152, 224, 50, 2048],
      [200, 224, 66, 2048],
      [20, 32, 9, 64],
      [32, 32, 15, 64],
      [44, 32, 21, 64],
      [56, 32, 27, 64],
      [110, 32, 54, 64],
    ]
    for (const [layers, hw, units, width] of depths) {
      const sym = parseSymbol(resnetSymbol({imageShape: [3, hw, hw], numClasses: 7, numLayers: layers}))
      const names = new Set(sym.nodes.map((n) => /^(stage\d+_unit\d+)_/.exec(n.name)?.[1]).filter(Boolean))
      assert.equal(names.size, units, `ResNet-${layers}`)
      assert.equal(
        sym.nodes.some((n) => n.name === 'pooling0'),
        hw > 32,
        `max pool of ResNet-${layers}`,
      )
      const {varShapes} = inferShapes(sym, {data: [1, 3, hw, hw]})
      assert.deepEqual(varShapes.get('fc1_weight'), [7, width], `ResNet-${layers}`)
      assert.deepEqual(varShapes.get('conv0_weight')?.slice(2), hw > 32 ? [7, 7] : [3, 3])
    }
  })
})
