import assert from 'node:assert/strict'
import {copyFile, mkdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import sharp from 'sharp'

import {formatFloat32} from '../../src/model/format.js'
import {icc, iccJson, unwrap} from '../helpers/cli.js'
import {packTarGz, tempDir, writeModelDir} from '../helpers/model-fixtures.js'
import {runOnnxInProcess} from '../helpers/runtime.js'

describe('icc inspect-model / convert-model / predict', function () {
  this.timeout(120_000)
  let dir: string
  let model: string
  let tgz: string
  let cache: string
  let images: string[]
  const labels = ['apple', 'boat', 'cloud', 'dune', 'eel']

  before(async () => {
    dir = await tempDir()
    model = join(dir, 'model')
    cache = join(dir, 'cache')
    await writeModelDir(model, {epochs: [1, 2], format: 'V1', labels})
    tgz = await packTarGz(
      model,
      [
        'image-classification-symbol.json',
        'image-classification-0001.params',
        'image-classification-0002.params',
        'model-shapes.json',
        'synset.txt',
      ],
      join(dir, 'model.tar.gz'),
    )
    images = []
    for (const [i, colour] of [
      [200, 30, 40],
      [10, 90, 220],
    ].entries()) {
      const p = join(dir, `img${i}.png`)
      await sharp({
        create: {background: {b: colour[2], g: colour[1], r: colour[0]}, channels: 3, height: 32, width: 32},
      })
        .png()
        .toFile(p)
      images.push(p)
    }
  })

  it('inspect-model describes the model (text and --json)', async () => {
    const {exitCode, json} = await iccJson(['inspect-model', model, '--cache-dir', cache])
    assert.equal(exitCode, 0)
    assert.equal(json.architecture, 'ResNet-20')
    assert.equal(json.classes, 5)
    assert.deepEqual(json.inputShape, [3, 32, 32])
    assert.equal(json.paramsFormat, 'V1')
    assert.equal(json.epoch, 2)
    assert.equal(json.converts, true)
    assert.deepEqual(json.problems, [])
    assert.equal(json.opHistogram.elemwise_add, 9)
    assert.ok(json.paramCount > 250_000)
    const text = await icc(['inspect-model', tgz, '--cache-dir', cache])
    assert.equal(text.exitCode, 0, text.stderr)
    assert.match(text.stdout, /architecture:\s+ResNet-20/)
    assert.match(text.stdout, /problems:\s+none/)
  })

  it('inspect-model reports a model that does not convert and exits 4', async () => {
    const broken = join(dir, 'broken')
    await writeModelDir(broken, {epochs: [1], format: 'V2'})
    const symbolFile = join(broken, 'image-classification-symbol.json')
    const symbol = JSON.parse(await readFile(symbolFile, 'utf8'))
    const flatten = symbol.nodes.find((n: {op: string}) => n.op === 'Flatten')
    flatten.op = 'Im2Col'
    await writeFile(symbolFile, JSON.stringify(symbol))
    const {exitCode, json} = await iccJson(['inspect-model', broken, '--cache-dir', cache])
    assert.equal(exitCode, 4)
    assert.equal(json.converts, false)
    assert.match(json.problems.join('\n'), /Im2Col/)
  })

  it('convert-model writes an ONNX file that ONNX Runtime runs with a dynamic batch', async () => {
    const out = join(dir, 'out', 'm.onnx')
    const r = await icc(['convert-model', tgz, '--output', out, '--cache-dir', cache, '--epoch', '1'])
    assert.equal(r.exitCode, 0, r.stderr)
    assert.match(r.stdout, /3x32x32, 5 classes/)
    // on the runtime icc uses here (npm run test:wasm: the wasm build)
    const [y] = await runOnnxInProcess(out, new Float32Array(3 * 3 * 32 * 32).fill(100), [3, 3, 32, 32])
    assert.deepEqual(y.dims, [3, 5])
    const bad = await icc(['convert-model', model, '--output', join(dir, 'm.txt'), '--cache-dir', cache])
    assert.equal(bad.exitCode, 2)
    assert.match(bad.stderr, /\.onnx/)
  })

  it('predict prints the connector format per image, and --json with top-k labels', async () => {
    const r = await icc(['predict', '--model', model, ...images, '--cache-dir', cache])
    assert.equal(r.exitCode, 0, r.stderr)
    // several images: each answer after its file name
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((line, i) => {
        assert.ok(line.startsWith(`${images[i]}: [`), line)
        return line.slice(images[i].length + 2)
      })
    assert.equal(lines.length, 2)
    for (const line of lines) {
      assert.match(line, /^\[(-?[\d.e+-]+,){4}-?[\d.e+-]+\]$/)
      const sum = line
        .slice(1, -1)
        .split(',')
        .map(Number)
        .reduce((a, b) => a + b, 0)
      assert.ok(Math.abs(sum - 1) < 1e-5)
    }

    const {exitCode, json} = await iccJson(['predict', '--model', tgz, ...images, '--top-k', '2', '--cache-dir', cache])
    assert.equal(exitCode, 0)
    assert.equal(json.results.length, 2)
    assert.equal(json.results[0].image, images[0])
    assert.equal(json.results[0].top.length, 2)
    assert.ok(labels.includes(json.results[0].top[0].label))
    // the float32 shortest form, as icc serve writes it (no float64 expansions)
    for (const p of json.results[0].probabilities) assert.equal(String(p), formatFloat32(p))
    assert.equal(json.results[0].top[0].probability, Math.max(...json.results[0].probabilities))
    // Same numbers as the text output (both from epoch 2).
    assert.deepEqual(
      Float32Array.from(json.results[0].probabilities),
      Float32Array.from(lines[0].slice(1, -1).split(',').map(Number)),
    )
  })

  it('reports bad input with documented exit codes', async () => {
    const missing = await icc(['predict', '--model', join(dir, 'nope'), images[0], '--cache-dir', cache])
    assert.equal(missing.exitCode, 2)
    assert.match(missing.stderr, /Model path not found/)
    const epoch = await iccJson(['predict', '--model', model, images[0], '--epoch', '9', '--cache-dir', cache])
    assert.equal(epoch.exitCode, 2)
    assert.equal(epoch.json.error.code, 'NO_EPOCH')
    const badImage = join(dir, 'bad.png')
    await writeFile(badImage, 'not an image')
    const img = await icc(['predict', '--model', model, badImage, '--cache-dir', cache])
    assert.equal(img.exitCode, 2)
    assert.match(unwrap(img.stderr), /bad\.png: .*not a JPEG or PNG/)
  })

  it("a tarball that is not a model: the error names the user's file and suggests no flag", async () => {
    const photos = join(dir, 'not-a-model')
    await mkdir(photos, {recursive: true})
    await copyFile(images[0], join(photos, 'cat.png'))
    const archive = await packTarGz(photos, ['cat.png'], join(dir, 'photos.tar.gz'))
    for (const command of ['inspect-model', 'convert-model']) {
      const args = command === 'convert-model' ? ['--output', join(dir, 'x.onnx')] : []
      const {exitCode, json} = await iccJson([command, archive, ...args, '--cache-dir', cache])
      assert.equal(exitCode, 4, command)
      assert.equal(json.error.code, 'NO_MODEL')
      assert.match(json.error.message, new RegExp(`^${archive.replaceAll('.', '\\.')} holds no MXNet model.*cat\\.png`))
      assert.doesNotMatch(json.error.message, /archives/)
      assert.doesNotMatch(json.error.suggestions.join(' '), /--\w/)
    }
  })

  it('predict: each good image answered, each bad one reported, exit 2; a directory is its images', async () => {
    const folder = join(dir, 'photos')
    await mkdir(folder, {recursive: true})
    await copyFile(images[0], join(folder, 'a.png'))
    await copyFile(images[1], join(folder, 'b.png'))
    await writeFile(join(folder, 'c.png'), 'not an image')
    await writeFile(join(folder, 'notes.txt'), 'not an image either, and not one by its name')
    const gone = join(dir, 'gone.jpg')
    const r = await icc(['predict', '--model', model, folder, gone, '--cache-dir', cache])
    assert.equal(r.exitCode, 2, r.stderr)
    const lines = r.stdout.trim().split('\n')
    assert.deepEqual(
      lines.map((l) => l.split(': ')[0]),
      [join(folder, 'a.png'), join(folder, 'b.png')],
    )
    const err = unwrap(r.stderr)
    assert.match(err, /2 of 4 images could not be classified/)
    assert.match(err, /c\.png: .*not a JPEG or PNG/)
    assert.match(err, /Cannot read the image .*gone\.jpg/)
    assert.match(err, /Code: IMAGES_FAILED/)

    const {exitCode, json} = await iccJson(['predict', '--model', model, folder, '--cache-dir', cache])
    assert.equal(exitCode, 2)
    assert.equal(json.error.code, 'BAD_IMAGE')
    assert.deepEqual(
      json.error.details.results.map((x: {image: string}) => x.image),
      [join(folder, 'a.png'), join(folder, 'b.png')],
    )
    assert.equal(json.error.details.failures[0].image, join(folder, 'c.png'))

    // an unreadable file: the same code as icc invoke gives
    const predictGone = await iccJson(['predict', '--model', model, gone, '--cache-dir', cache])
    const invokeGone = await iccJson(['invoke', gone, '--socket', join(dir, 'no.sock')])
    assert.equal(predictGone.exitCode, 2)
    assert.equal(invokeGone.exitCode, 2)
    assert.equal(predictGone.json.error.code, 'FILE_NOT_READABLE')
    assert.equal(invokeGone.json.error.code, 'FILE_NOT_READABLE')
  })
})
