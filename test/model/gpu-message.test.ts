/**
 * One message and one fix for a missing CUDA provider, from `predict --gpu` and `serve --gpu-acceleration GPU`
 * alike, in plain text (issue 20, item 7): no ANSI colour codes of ONNX Runtime's own log on stderr or in the JSON.
 */
import assert from 'node:assert/strict'
import {join} from 'node:path'

import {missingCudaProviderFiles} from '../../src/model/index.js'
import {icc, iccJson, REPO_ROOT} from '../helpers/cli.js'
import {tempDir, writeModelDir} from '../helpers/model-fixtures.js'

describe('GPU errors', function () {
  this.timeout(180_000)

  it('predict --gpu and serve GPU: the same message and install command, no escape codes', async function () {
    // where onnxruntime-node's CUDA provider is installed (a GPU machine), there is no error to check
    if (missingCudaProviderFiles().length === 0) this.skip()
    const dir = await tempDir()
    const model = join(dir, 'model')
    await writeModelDir(model)
    const image = join(REPO_ROOT, 'assets', 'samples', 'sky.jpg')
    // onnxruntime-node's CUDA provider (the wasm runtime's GPU error is in ./runtimes.test.ts)
    const cache = ['--cache-dir', join(dir, 'cache'), '--runtime', 'native']
    const predict = await iccJson(['predict', '--model', model, image, '--gpu', ...cache])
    const serve = await iccJson(
      ['serve', '--model', model, '--gpu-acceleration', 'GPU', '--socket', join(dir, 's.sock'), ...cache],
      {timeoutMs: 120_000},
    )
    for (const r of [predict, serve]) {
      assert.equal(r.exitCode, 5, r.stderr)
      assert.equal(r.json.error.code, 'CUDA_UNAVAILABLE')
      assert.match(r.json.error.message, /without its CUDA provider \(missing libonnxruntime_providers_shared\.so/)
      assert.doesNotMatch(r.stderr + JSON.stringify(r.json), /\u001B\[|\\u001b\[/i)
      assert.doesNotMatch(r.json.error.message, /napi-v6/)
    }

    assert.equal(serve.json.error.suggestions[0], predict.json.error.suggestions[0])
    assert.match(
      predict.json.error.suggestions[0],
      /ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules\/onnxruntime-node\/script\/install\.js/,
    )
    const plain = await icc(['predict', '--model', model, image, '--gpu', ...cache])
    assert.doesNotMatch(plain.stderr, /\u001B\[/)
  })
})
