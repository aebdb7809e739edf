/**
 * A model without model-shapes.json (issue 20, item 5): the input shape comes from its parameters where the graph
 * allows, `--input-shape` overrides it, and a shape the parameters do not fit is a model error (exit 4) naming
 * both shapes, never "converts: yes". On the real fashion-MNIST LeNet of ../shared.
 */
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {mkdir, symlink, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {icc, iccJson, SHARED} from '../helpers/cli.js'
import {tempDir} from '../helpers/model-fixtures.js'
import {startServe} from '../helpers/serve-host.js'

const LENET = join(SHARED, 'models', 'fashion-mnist-lenet')

describe('input shape of a model without model-shapes.json', function () {
  this.timeout(240_000)
  let dir: string
  let cache: string
  before(async () => {
    dir = await tempDir()
    cache = join(dir, 'cache')
  })

  it('inspect-model infers 1x28x28 for the LeNet and says it converts, with no problem', async () => {
    const {exitCode, json} = await iccJson(['inspect-model', LENET, '--cache-dir', cache])
    assert.equal(exitCode, 0)
    assert.deepEqual(json.inputShape, [1, 28, 28])
    assert.equal(json.converts, true)
    assert.deepEqual(json.problems, [])
    assert.match(json.warnings.join('\n'), /input shape 1x28x28 inferred from the parameters/)
    // a warm load (from the conversion cache) says the same
    const again = await icc(['inspect-model', LENET, '--cache-dir', cache])
    assert.match(again.stdout, /input shape: +1x28x28[\s\S]*converts: +yes[\s\S]*problems: +none/)
  })

  it('a shape the parameters do not fit: exit 4 naming both shapes, never "converts: yes"', async () => {
    const args = ['--input-shape', '3,224,224', '--cache-dir', cache]
    const inspect = await iccJson(['inspect-model', LENET, ...args])
    assert.equal(inspect.exitCode, 4)
    assert.equal(inspect.json.converts, false)
    assert.match(
      inspect.json.problems.join('\n'),
      /do not fit the input shape 3x224x224: .*is 8x1x4x4, the graph needs 8x3x4x4/,
    )
    const text = await icc(['inspect-model', LENET, ...args])
    assert.match(text.stdout, /converts: +no/)
    const image = join(LENET, 'test', '0', '1000.png')
    const predict = await iccJson(['predict', '--model', LENET, image, ...args])
    assert.equal(predict.exitCode, 4)
    assert.equal(predict.json.error.code, 'SHAPE_MISMATCH')
    assert.match(predict.json.error.message, /16x1152, the graph needs 16x96800/)
    assert.doesNotMatch(predict.json.error.message, /ShapeInferenceError/)
    const bad = await iccJson(['inspect-model', LENET, '--input-shape', '28,28'])
    assert.equal(bad.exitCode, 2)
    assert.equal(bad.json.error.code, 'INVALID_FLAG_VALUE')
  })

  it('predict on the LeNet (inferred shape) matches reference-outputs.json for its 1000 test images', async () => {
    // the model's own files (linked, not copied) with the preprocessing it was trained with: x / 255
    const model = join(dir, 'lenet')
    await mkdir(model)
    for (const f of ['fashion-mnist-symbol.json', 'fashion-mnist-0039.params'])
      await symlink(join(LENET, f), join(model, f))
    await writeFile(join(model, 'icc-model.json'), JSON.stringify({preprocessing: {scale: 1 / 255}}))
    const reference = JSON.parse(readFileSync(join(LENET, 'reference-outputs.json'), 'utf8')) as Record<
      string,
      number[]
    >
    const folders = Array.from({length: 10}, (_, i) => join(LENET, 'test', String(i)))
    const {exitCode, json} = await iccJson(['predict', '--model', model, ...folders, '--cache-dir', cache])
    assert.equal(exitCode, 0)
    assert.equal(json.results.length, 1000)
    let worst = 0
    for (const r of json.results as {image: string; probabilities: number[]}[]) {
      const want = reference[r.image.slice(LENET.length + 1)]
      assert.ok(want, r.image)
      for (const [k, x] of r.probabilities.entries()) worst = Math.max(worst, Math.abs(x - want[k]))
    }

    assert.ok(worst < 1e-4, `largest difference from the reference: ${worst}`)
  })

  it('serve takes --input-shape too (and refuses one the parameters do not fit, exit 4)', async () => {
    const refused = await iccJson(
      ['serve', '--model', LENET, '--input-shape', '3,32,32', '--socket', join(dir, 'r.sock'), '--cache-dir', cache],
      {timeoutMs: 120_000},
    )
    assert.equal(refused.exitCode, 4)
    assert.equal(refused.json.error.code, 'SHAPE_MISMATCH')
    const host = await startServe(['--model', LENET, '--input-shape', '1,28,28', '--cache-dir', cache], {
      socket: join(dir, 's.sock'),
      timeoutMs: 120_000,
    })
    try {
      const r = await icc(['invoke', join(LENET, 'test', '0', '1000.png'), '--socket', join(dir, 's.sock')])
      assert.equal(r.exitCode, 0, r.stderr)
      assert.equal(JSON.parse(r.stdout).length, 10)
    } finally {
      await host.stop()
    }
  })
})
