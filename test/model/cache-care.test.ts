/**
 * `icc cache list` and `icc cache prune` with the real binary over a real cache: entries and their sizes, dry runs,
 * --keep / --older-than, and a running `icc serve` whose entry survives `prune --all` while it keeps answering.
 */
import assert from 'node:assert/strict'
import {readdir, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {holdEntries, loadModel} from '../../src/model/index.js'
import {iccJson} from '../helpers/cli.js'
import {packTarGz, tempDir, writeModelDir} from '../helpers/model-fixtures.js'
import {http, noiseImage, parseConnectorBody, startServe} from '../helpers/serve-host.js'

/** Every file under `dir` (relative path -> size), in-use records left out. */
async function files(dir: string, under = ''): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  for (const e of await readdir(join(dir, under), {withFileTypes: true}).catch(() => [])) {
    const rel = join(under, e.name)
    if (rel === 'in-use') continue
    if (e.isDirectory()) for (const [k, v] of await files(dir, rel)) out.set(k, v)
    else out.set(rel, (await stat(join(dir, rel))).size)
  }

  return out
}

const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0)

describe('icc cache list / prune', function () {
  this.timeout(120_000)
  let dir: string
  let cache: string
  let folder: string
  let archive: string

  beforeEach(async () => {
    dir = await tempDir('icc-cache-care-')
    cache = join(dir, 'cache')
    folder = (await writeModelDir(join(dir, 'a'), {numClasses: 4})).dir
    const b = await writeModelDir(join(dir, 'b'), {numClasses: 6, seed: 3})
    const names = ['image-classification-symbol.json', 'image-classification-0001.params', 'model-shapes.json']
    archive = await packTarGz(b.dir, names, join(dir, 'model.tar.gz'))
    await loadModel(folder, {cacheDir: cache})
    await new Promise((r) => setTimeout(r, 20))
    // optimised ahead of time: onnxruntime-node's own format (native only, whatever ICC_RUNTIME says)
    await loadModel(archive, {cacheDir: cache, optimize: true, runtime: 'native'})
  })

  afterEach(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  it('lists each converted model with its source, its parts and sizes that add up to the cache', async () => {
    const {exitCode, json} = await iccJson(['cache', 'list', '--cache-dir', cache])
    assert.equal(exitCode, 0)
    const models = json.entries.filter((e: {kind: string}) => e.kind === 'model')
    assert.equal(models.length, 2)
    // most recently used first: the archive, with its optimised copy and its extracted folder
    assert.equal(models[0].source, archive)
    assert.equal(models[1].source, folder)
    assert.ok(models[0].paths.some((p: string) => p.startsWith('onnx-cpu/')))
    assert.ok(models[0].paths.some((p: string) => p.startsWith('archives/')))
    assert.equal(json.entries.length, 2, 'nothing unclaimed')
    const all = await files(cache)
    assert.equal(json.totalBytes, sum(all))
    for (const e of json.entries) {
      const own = [...all].filter(([k]) => e.paths.some((p: string) => k === p || k.startsWith(p + '/')))
      assert.equal(
        e.bytes,
        own.reduce((n, [, v]) => n + v, 0),
        e.key,
      )
    }
  })

  it('--dry-run removes nothing; --keep 1 removes the older entry; --older-than needs a unit', async () => {
    const before = await files(cache)
    const dry = await iccJson(['cache', 'prune', '--cache-dir', cache, '--all', '--dry-run'])
    assert.equal(dry.exitCode, 0)
    assert.equal(dry.json.removed.length, 2)
    assert.equal(dry.json.freedBytes, sum(before))
    assert.deepEqual(await files(cache), before)

    const kept = await iccJson(['cache', 'prune', '--cache-dir', cache, '--keep', '1'])
    assert.equal(kept.json.removed.length, 1)
    assert.equal(kept.json.removed[0].source, folder)
    const after = await iccJson(['cache', 'list', '--cache-dir', cache])
    assert.deepEqual(
      after.json.entries.map((e: {source: string}) => e.source),
      [archive],
    )
    assert.equal(after.json.totalBytes, sum(await files(cache)))

    assert.equal((await iccJson(['cache', 'prune', '--cache-dir', cache, '--older-than', '1d'])).json.removed.length, 0)
    const bad = await iccJson(['cache', 'prune', '--cache-dir', cache, '--older-than', '30'])
    assert.equal(bad.exitCode, 2)
    assert.equal(bad.json.error.code, 'BAD_DURATION')
    assert.equal((await iccJson(['cache', 'prune', '--cache-dir', cache])).exitCode, 2)
  })

  it("never removes a running serve's entry: prune --all leaves it, and serve keeps answering", async () => {
    const socket = join(dir, 'icc.sock')
    const host = await startServe(['--model', folder], {env: {ICC_CACHE_DIR: cache}, socket})
    const image = await noiseImage('jpeg', 32, 32)
    try {
      const pruned = await iccJson(['cache', 'prune', '--cache-dir', cache, '--all'])
      assert.equal(pruned.exitCode, 0, pruned.stderr)
      assert.deepEqual(
        pruned.json.removed.map((e: {source: string}) => e.source),
        [archive],
      )
      const held = pruned.json.kept.find((e: {source: string}) => e.source === folder)
      assert.equal(held.inUse, true)
      for (const p of held.paths) await stat(join(cache, p))
      const r = await http({socket}, 'POST', '/invocations', image, {'content-type': 'image/jpeg'})
      assert.equal(r.status, 200, r.body)
      assert.equal(parseConnectorBody(r.body).length, 4)
    } finally {
      await host.stop()
    }

    // once serve has stopped, the entry is free to go
    const again = await iccJson(['cache', 'prune', '--cache-dir', cache, '--all'])
    assert.equal(again.json.removed.length, 1)
    assert.equal(sum(await files(cache)), 0)
  })

  it('a load removes the older conversions of its source and stale optimised files, never a held entry', async () => {
    const keysOf = async (kind: string) => [...(await files(cache)).keys()].filter((k) => k.startsWith(kind))
    const first = await loadModel(folder, {cacheDir: cache, optimize: true})
    const archiveFiles = (await keysOf('archives/')).length
    assert.ok(archiveFiles > 0)
    // an optimised copy from an older ONNX Runtime or CPU, named by the entry's use record
    const stale = 'f'.repeat(64)
    await writeFile(join(cache, 'onnx-cpu', `${stale}.onnx`), 'old')
    const usePath = join(cache, 'onnx', `${first.cacheKey}.use.json`)
    await writeFile(usePath, JSON.stringify({...JSON.parse(await readFile(usePath, 'utf8')), optimized: stale}))
    await loadModel(folder, {cacheDir: cache, optimize: true})
    assert.ok(!(await keysOf('onnx-cpu/')).some((k) => k.includes(stale)), 'the stale optimised file went')
    assert.ok((await keysOf('onnx-cpu/')).length > 1, 'the current optimised model stayed')

    // the model at the same path replaced: its old conversion (model, optimised parts) goes, other sources stay
    await writeModelDir(folder, {numClasses: 4, seed: 11})
    const second = await loadModel(folder, {cacheDir: cache, optimize: true})
    assert.notEqual(second.cacheKey, first.cacheKey)
    let now = await keysOf('')
    assert.ok(!now.some((k) => k.includes(first.cacheKey!)), `old entry removed: ${now.join(', ')}`)
    assert.ok(now.some((k) => k.includes(second.cacheKey!)))
    assert.equal((await keysOf('archives/')).length, archiveFiles, "the archive's entry is untouched")
    const listed = await iccJson(['cache', 'list', '--cache-dir', cache])
    assert.deepEqual(listed.json.entries.map((e: {source: string}) => e.source).sort(), [archive, folder].sort())

    // held by a running process (a serve's runner): kept when the model is replaced again
    await holdEntries(cache, [second.cacheKey!], process.pid)
    await writeModelDir(folder, {numClasses: 4, seed: 12})
    const third = await loadModel(folder, {cacheDir: cache, optimize: true})
    now = await keysOf('')
    assert.ok(
      now.some((k) => k.includes(second.cacheKey!)),
      'the held entry stayed',
    )
    assert.ok(now.some((k) => k.includes(third.cacheKey!)))
  })
})
