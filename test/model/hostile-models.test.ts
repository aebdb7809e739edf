/**
 * Hostile and broken model files refused with exit 4 and the right cause, fast, before they cost memory (issue 21
 * items 9, 10 and 14): a 2 KB symbol whose tensors need gigabytes, a symbol that is a directory, a 1.9 GB sparse
 * symbol file, a million-node symbol under a 300 MB limit, NaN weights. Sparse files: nothing big is written.
 */
import assert from 'node:assert/strict'
import {mkdir, open, readdir, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import sharp from 'sharp'

import {generateWeights, writeParams} from '../../src/model/writer.js'
import {icc, iccJson, unwrap} from '../helpers/cli.js'
import {convSymbol, tempDir} from '../helpers/model-fixtures.js'

const SYMBOL = 'm-symbol.json'
const PARAMS = 'm-0001.params'

/** A SageMaker-layout folder of convSymbol(conv) at 3x224x224; `weights` may change the generated weights. */
async function convModel(
  dir: string,
  conv: Record<string, string>,
  weights?: (w: ReturnType<typeof generateWeights>) => void,
) {
  const symbol = convSymbol(conv)
  // the weights of a 3x3 convolution of 4 filters, whatever its window
  const w = generateWeights(convSymbol({}), [1, 3, 224, 224])
  weights?.(w)
  await mkdir(dir, {recursive: true})
  await writeFile(join(dir, SYMBOL), symbol)
  await writeFile(join(dir, PARAMS), writeParams(w))
  await writeFile(join(dir, 'model-shapes.json'), JSON.stringify([{name: 'data', shape: [1, 3, 224, 224]}]))
  return dir
}

describe('hostile model files', function () {
  this.timeout(180_000)
  let dir: string
  let image: string
  let cache: string

  before(async () => {
    dir = await tempDir('icc-hostile-')
    cache = join(dir, 'cache')
    image = join(dir, 'x.png')
    await sharp({create: {background: {b: 90, g: 60, r: 30}, channels: 3, height: 32, width: 32}})
      .png()
      .toFile(image)
  })

  after(() => rm(dir, {force: true, recursive: true}))

  it('predict refuses a 2 KB model whose Convolution pads by 9000 (BAD_SYMBOL, exit 4) instead of running it', async () => {
    const model = await convModel(join(dir, 'pad9000'), {pad: '(9000, 9000)'})
    const started = performance.now()
    const r = await icc(['predict', '--model', model, '--cache-dir', cache, image])
    const ms = performance.now() - started
    assert.equal(r.exitCode, 4, r.stderr)
    const text = unwrap(r.stderr)
    assert.match(text, /BAD_SYMBOL/)
    assert.match(text, /Convolution node "conv0" makes a 1x4x18222x18222 tensor/)
    assert.ok(ms < 60_000, `${ms} ms`)
  })

  it('doctor --model enforces its own --memory-limit-kb on the tensors (a 619 MB graph under 500000 KB)', async () => {
    const model = await convModel(join(dir, 'pad3000'), {pad: '(3000, 3000)'})
    const args = ['doctor', '--platform', 'x86_64', '--model', model, '--memory-limit-kb', '500000']
    const {exitCode, json} = await iccJson(args, {env: {ICC_CACHE_DIR: cache}})
    const m = json.checks.find((c: {id: string}) => c.id === 'model')
    assert.equal(m.status, 'fail', JSON.stringify(m))
    assert.equal(m.evidence.code, 'BAD_SYMBOL')
    assert.match(m.message, /conv0.*over the 488\.3 MiB allowed/)
    assert.equal(exitCode, 5)
  })

  it('convert-model refuses stride (0,0) and duplicate node names (exit 4, no ONNX file)', async () => {
    const stride = await convModel(join(dir, 'stride0'), {stride: '(0, 0)'})
    const out = join(dir, 'out')
    const a = await icc(['convert-model', stride, '--output', join(out, 'a.onnx'), '--cache-dir', cache])
    assert.equal(a.exitCode, 4, a.stderr)
    assert.match(unwrap(a.stderr), /Convolution node "conv0": stride \(0, 0\).*BAD_SYMBOL/s)
    const dup = await convModel(join(dir, 'dup'), {})
    const sym = JSON.parse(convSymbol({})) as {nodes: {name: string}[]}
    sym.nodes[7].name = 'pool0'
    await writeFile(join(dup, SYMBOL), JSON.stringify(sym))
    const b = await icc(['convert-model', dup, '--output', join(out, 'b.onnx'), '--cache-dir', cache])
    assert.equal(b.exitCode, 4, b.stderr)
    assert.match(unwrap(b.stderr), /"pool0" names nodes 4 and 7/)
    await assert.rejects(readdir(out), /ENOENT/)
  })

  it('NaN weights: convert-model refuses the model (BAD_PARAMS naming the array, exit 4)', async () => {
    const model = await convModel(join(dir, 'nan'), {}, (w) => {
      w.find((x) => x.name === 'arg:conv0_weight')!.data[3] = Number.NaN
    })
    const r = await icc(['convert-model', model, '--output', join(dir, 'nan.onnx'), '--cache-dir', cache])
    assert.equal(r.exitCode, 4, r.stderr)
    assert.match(unwrap(r.stderr), /parameter conv0_weight holds NaN at value 3 of 108.*BAD_PARAMS/s)
  })

  it('a symbol file that is a directory is exit 4 (BAD_SYMBOL), not exit 1 EISDIR', async () => {
    const model = await convModel(join(dir, 'isdir'), {})
    await rm(join(model, SYMBOL))
    await mkdir(join(model, SYMBOL))
    const r = await icc(['inspect-model', model, '--cache-dir', cache])
    assert.equal(r.exitCode, 4, r.stderr)
    assert.match(unwrap(r.stderr), /m-symbol\.json is a directory, not a symbol file.*BAD_SYMBOL/s)
  })

  it('a 1.9 GB sparse symbol file, or a 2.5 GB params file, is refused by its size before anything reads it', async () => {
    const model = await convModel(join(dir, 'huge'), {})
    const grow = async (file: string, bytes: number) => {
      const f = await open(join(model, file), 'r+')
      await f.truncate(bytes)
      await f.close()
    }

    await grow(SYMBOL, 1.9e9)
    const started = performance.now()
    const a = await icc(['predict', '--model', model, '--cache-dir', cache, image])
    assert.equal(a.exitCode, 4, a.stderr)
    assert.match(unwrap(a.stderr), /m-symbol\.json is 1\.8 GiB, over the 64\.0 MiB a symbol file may be.*BAD_SYMBOL/s)
    // refused by stat: neither hashed nor read (reading 1.9 GB takes seconds, and as much memory)
    assert.ok(performance.now() - started < 30_000)
    await writeFile(join(model, SYMBOL), convSymbol({}))
    await grow(PARAMS, 2.5e9)
    const b = await icc(['predict', '--model', model, '--cache-dir', cache, image])
    assert.equal(b.exitCode, 4, b.stderr)
    assert.match(unwrap(b.stderr), /m-0001\.params is 2\.3 GiB, over the 2\.0 GiB a params file may be.*BAD_PARAMS/s)
  })

  it('a million-node symbol under a 300 MB limit is BAD_SYMBOL (too many nodes), not MEMORY_LIMIT_TOO_SMALL', async () => {
    const model = await convModel(join(dir, 'million'), {})
    const node = (i: number) => `{"op":"relu","name":"n${i}","inputs":[[0,0,0]]}`
    const nodes = Array.from({length: 1_000_000}, (_, i) => node(i)).join(',')
    await writeFile(
      join(model, SYMBOL),
      `{"nodes":[{"op":"null","name":"data","inputs":[]},${nodes}],"heads":[[0,0,0]]}`,
    )
    const r = await icc(
      ['serve', '--model', model, '--memory-limit-kb', '300000', '--socket', join(dir, 'm.sock'), '--cache-dir', cache],
      {timeoutMs: 120_000},
    )
    assert.equal(r.exitCode, 4, r.stderr)
    const text = unwrap(r.stderr)
    assert.match(text, /BAD_SYMBOL/)
    assert.match(text, /about 1000001 nodes \(limit 100000\)/)
    assert.doesNotMatch(text, /MEMORY_LIMIT_TOO_SMALL/)
  })
})
