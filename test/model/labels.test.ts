/**
 * `--labels FILE` with the real binary: predict and serve name their classes from it (one a line, or a JSON
 * array), invoke --top-k maps them client-side, and a count that differs from the model's classes is exit 2.
 */
import assert from 'node:assert/strict'
import {rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {icc, iccJson, unwrap} from '../helpers/cli.js'
import {tempDir, writeModelDir} from '../helpers/model-fixtures.js'
import {connector, http, noiseImage, startServe} from '../helpers/serve-host.js'

const NAMES = ['ant', 'bee', 'cat', 'dog']

describe('--labels FILE', function () {
  this.timeout(120_000)
  let dir: string
  let model: string
  let image: string
  let lines: string
  let array: string
  let three: string

  before(async () => {
    dir = await tempDir('icc-labels-')
    model = (await writeModelDir(join(dir, 'm'), {numClasses: 4})).dir
    image = join(dir, 'x.jpg')
    await writeFile(image, await noiseImage('jpeg', 32, 32))
    lines = join(dir, 'synset.txt')
    await writeFile(lines, NAMES.map((n, i) => `n0000000${i} ${n}`).join('\n') + '\n')
    array = join(dir, 'labels.json')
    await writeFile(array, JSON.stringify(NAMES))
    three = join(dir, 'three.txt')
    await writeFile(three, 'a\nb\nc\n')
  })

  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  const env = () => ({ICC_CACHE_DIR: join(dir, 'cache')})

  it('predict names the top classes from a line file or a JSON array; a count mismatch is exit 2', async () => {
    for (const file of [lines, array]) {
      const {exitCode, json} = await iccJson(['predict', '--model', model, image, '--labels', file, '--top-k', '4'], {
        env: env(),
      })
      assert.equal(exitCode, 0)
      const top = json.results[0].top as {index: number; label: string}[]
      assert.deepEqual(
        top.map((t) => t.label),
        top.map((t) => NAMES[t.index]),
      )
    }

    const bad = await icc(['predict', '--model', model, image, '--labels', three], {env: env()})
    assert.equal(bad.exitCode, 2)
    assert.match(unwrap(bad.stderr), /has 3 labels, but the model has 4 classes/)
  })

  it('--definition gives each service its own IccLabels; a count mismatch names both numbers', async () => {
    const def = join(dir, 'definition.json')
    await writeFile(
      def,
      JSON.stringify({
        Connectors: [
          {...connector('A', 'named', model), IccLabels: array},
          connector('B', 'plain', model),
          {...connector('C', 'wrong', model), IccLabels: three},
        ],
      }),
    )
    const socket = join(dir, 'd.sock')
    const host = await startServe(['--definition', def], {env: env(), socket})
    try {
      const named = await iccJson(['invoke', '--socket', socket, image, '--service-name', 'named', '--top-k', '2'])
      assert.equal(named.exitCode, 0, named.stderr)
      for (const t of named.json.top) assert.equal(t.label, NAMES[t.index])
      const plain = await iccJson(['invoke', '--socket', socket, image, '--service-name', 'plain', '--top-k', '2'])
      assert.equal(plain.exitCode, 0, plain.stderr)
      for (const t of plain.json.top) assert.notEqual(t.label, NAMES[t.index])
      const ready = (await http({socket}, 'GET', '/v2/health/ready')).json().services
      assert.equal(ready.wrong.ready, false)
      assert.match(ready.wrong.reason, /three\.txt has 3 labels, but the model has 4 classes/)
    } finally {
      await host.stop()
    }

    // Greengrass does not know the field: validate-connector says so, where
    const checked = await icc(['validate-connector', def])
    assert.equal(checked.exitCode, 2, checked.stderr)
    assert.match(
      unwrap(checked.stderr + checked.stdout),
      /\/Connectors\/0\/IccLabels: IccLabels is read by `icc serve` only/,
    )
  })

  it('serve --labels answers with them; invoke --labels maps them client-side; a mismatch stops serve (exit 2)', async () => {
    const socket = join(dir, 's.sock')
    const host = await startServe(['--model', model, '--labels', array], {env: env(), socket})
    try {
      const served = await iccJson(['invoke', '--socket', socket, image, '--top-k', '2'])
      assert.equal(served.exitCode, 0, served.stderr)
      for (const t of served.json.top) assert.equal(t.label, NAMES[t.index])
      const other = join(dir, 'other.txt')
      await writeFile(other, 'w\nx\ny\nz\n')
      const mapped = await iccJson(['invoke', '--socket', socket, image, '--top-k', '2', '--labels', other])
      for (const t of mapped.json.top) assert.equal(t.label, 'wxyz'[t.index])
      const mismatch = await icc(['invoke', '--socket', socket, image, '--top-k', '2', '--labels', three])
      assert.equal(mismatch.exitCode, 2)
      assert.match(unwrap(mismatch.stderr), /has 3 labels, but the model has 4 classes/)
    } finally {
      await host.stop()
    }

    const bad = await icc(['serve', '--model', model, '--labels', three, '--socket', join(dir, 't.sock')], {
      env: env(),
    })
    assert.equal(bad.exitCode, 2, bad.stderr)
    assert.match(unwrap(bad.stderr), /has 3 labels, but the model has 4 classes/)
  })
})
