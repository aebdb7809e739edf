import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdir, readdir, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {IccError} from '../../src/errors.js'
import {createArchive, extractArchive} from '../../src/model/archive.js'
import {icc, unwrap} from '../helpers/cli.js'
import {tempDir, writeModelDir} from '../helpers/model-fixtures.js'
import {noiseImage} from '../helpers/serve-host.js'

// Issue 21 item 14: a full or read-only disk says so and where, not CORRUPT_ARCHIVE or `ENOENT mkdir`. Real file
// systems: a 1 MiB tmpfs and a read-only tmpfs, mounted here (root only; skipped with a printed reason otherwise).
describe('model/disk-errors: full and read-only disks', function () {
  this.timeout(120_000)
  let work: string
  const mounts: string[] = []

  before(function () {
    if (process.getuid?.() !== 0) {
      console.log(`      (skipped: mounting a tmpfs needs root; running as uid ${process.getuid?.()})`)
      this.skip()
    }
  })

  beforeEach(async () => {
    work = await tempDir('icc-disk-')
  })

  afterEach(async () => {
    for (const m of mounts.splice(0)) execFileSync('umount', [m])
    await rm(work, {force: true, recursive: true})
  })

  async function tmpfs(name: string, options: string): Promise<string> {
    const dir = join(work, name)
    await mkdir(dir)
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir])
    mounts.push(dir)
    return dir
  }

  async function bigArchive(): Promise<string> {
    const src = join(work, 'src')
    await mkdir(src)
    // 3 MB that gzip cannot shrink: the archive is small enough to read, its content too big for the disk
    await writeFile(
      join(src, 'model-0000.params'),
      Buffer.from(Array.from({length: 3_000_000}, (_, i) => (i * 7919) % 251)),
    )
    const file = join(work, 'model.tar.gz')
    await createArchive(src, file)
    return file
  }

  it('a full disk during extraction says no space left and where, and leaves nothing behind', async () => {
    const disk = await tmpfs('tiny', 'size=1m')
    const dest = join(disk, 'archives', 'model')
    await assert.rejects(extractArchive(await bigArchive(), dest), (error: unknown) => {
      assert.ok(error instanceof IccError)
      assert.equal(error.code, 'NO_SPACE', error.message)
      assert.match(error.message, new RegExp(`No space left on the disk holding ${join(disk, 'archives')}`))
      assert.doesNotMatch(error.message, /download|corrupt/i)
      assert.match(error.suggestions.join(' '), /icc cache prune/)
      return true
    })
    assert.deepEqual(await readdir(join(disk, 'archives')), [], 'no staging folder left on the full disk')
  })

  it('a read-only cache folder says so, not ENOENT mkdir (exit 2)', async () => {
    const cache = await tmpfs('ro', 'size=1m,ro')
    await assert.rejects(extractArchive(await bigArchive(), join(cache, 'archives', 'x')), {
      code: 'CACHE_NOT_WRITABLE',
      message: /read-only file system/,
    })
    const model = join(work, 'model')
    await writeModelDir(model, {numClasses: 3, numLayers: 8})
    const r = await icc(['convert-model', model, '-o', join(work, 'out.onnx')], {env: {ICC_CACHE_DIR: cache}})
    const text = unwrap(r.stderr)
    assert.equal(r.exitCode, 2, text)
    assert.match(text, /CACHE_NOT_WRITABLE/)
    assert.match(
      text,
      new RegExp(
        `Cannot write the conversion cache at ${join(cache, 'onnx')}: ${cache}, the nearest folder that exists, is on a read-only file system`,
      ),
    )
    assert.doesNotMatch(text, /ENOENT/)
    assert.match(text, /ICC_CACHE_DIR/)
    assert.ok(!existsSync(join(work, 'out.onnx')))
  })

  it('an --output on a read-only or full disk says so and where; nothing partial is left (float and int8)', async () => {
    const model = join(work, 'model')
    await writeModelDir(model, {numClasses: 3, numLayers: 8})
    const env = {ICC_CACHE_DIR: join(work, 'cache')}
    const ro = await tmpfs('ro-out', 'size=1m,ro')
    const readOnly = await icc(['convert-model', model, '-o', join(ro, 'models', 'out.onnx')], {env})
    const roText = unwrap(readOnly.stderr)
    assert.equal(readOnly.exitCode, 2, roText)
    assert.match(roText, /OUTPUT_NOT_WRITABLE/)
    assert.match(
      roText,
      new RegExp(`Cannot write the converted model at ${join(ro, 'models')}: .*read-only file system`),
    )
    assert.match(roText, /--output in a folder this user can write/)

    const full = await tmpfs('full-out', 'size=256k')
    const photos = join(work, 'photos')
    await mkdir(photos)
    for (let i = 0; i < 3; i++) await writeFile(join(photos, `${i}.jpg`), await noiseImage('jpeg', 64, 48, i + 1))
    const runs = {
      float: ['convert-model', model, '-o', join(full, 'out.onnx')],
      int8: ['convert-model', model, '-o', join(full, 'q.onnx'), '--quantize', 'int8', '--calibration', photos],
    }
    for (const [kind, args] of Object.entries(runs)) {
      const r = await icc(args, {env})
      const text = unwrap(r.stderr)
      assert.equal(r.exitCode, 1, `${kind}: ${text}`)
      assert.match(text, /NO_SPACE/, kind)
      const what = kind === 'float' ? 'the converted model' : 'the int8 model and its working files'
      assert.match(text, new RegExp(`No space left on the disk holding ${full} \\(${what}\\)`), kind)
      assert.match(text, /an --output on a disk with room/, kind)
      assert.deepEqual(await readdir(full), [], `${kind}: nothing left on the full disk`)
    }
  })
})
