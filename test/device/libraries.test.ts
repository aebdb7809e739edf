import assert from 'node:assert/strict'
import {mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {CONNECTORS} from '../../src/connector/catalog.js'
import {checkBinary, checkLibrary, findLibrary, parseLdconfigCache, parseLddOutput} from '../../src/device/libraries.js'
import {buildBinary, buildVersionedLibrary, hasCommand, synthesizeElf, tempDir} from './fixtures.js'

describe('device: library checks on libraries built with gcc', function () {
  this.timeout(60_000)
  let dir: string
  let newDir: string
  let oldDir: string
  const only = (extraDirs: string[]) => ({extraDirs, ldLibraryPath: '', ldconfig: false, standardDirs: false})

  before(async function () {
    if (!(await hasCommand('gcc'))) this.skip()
    dir = await tempDir('libs')
    newDir = join(dir, 'new')
    oldDir = join(dir, 'old')
    await buildVersionedLibrary(newDir, 'libfoo.so.1', ['FOO_1.0', 'FOO_2.3'])
    await buildVersionedLibrary(oldDir, 'libfoo.so.1', ['FOO_1.0'])
    // A fake libm.so.6 that stops at GLIBC_2.19 (the x86_64 table needs GLIBC_2.23).
    await buildVersionedLibrary(oldDir, 'libm.so.6', ['GLIBC_2.2.5', 'GLIBC_2.4', 'GLIBC_2.19'], {prefix: 'm'})
  })

  it('finds a present library and accepts the exact minimum', async () => {
    const r = await checkLibrary({minimumVersions: ['FOO_2.3'], soname: 'libfoo.so.1'}, only([newDir]))
    assert.equal(r.ok, true)
    assert.equal(r.path, join(newDir, 'libfoo.so.1'))
    assert.equal(r.source, 'extra-dir')
    assert.deepEqual(r.defined, ['FOO_1.0', 'FOO_2.3'])
  })

  it('accepts a library newer than needed', async () => {
    const r = await checkLibrary({minimumVersions: ['FOO_1.0'], soname: 'libfoo.so.1'}, only([newDir]))
    assert.equal(r.ok, true)
    assert.deepEqual(r.requirements, [{highest: 'FOO_2.3', ok: true, required: 'FOO_1.0'}])
  })

  it('rejects a library whose versions are too old, naming the highest seen', async () => {
    const r = await checkLibrary({minimumVersions: ['FOO_2.3'], soname: 'libfoo.so.1'}, only([oldDir]))
    assert.equal(r.ok, false)
    assert.equal(r.path, join(oldDir, 'libfoo.so.1'))
    assert.deepEqual(r.requirements, [{highest: 'FOO_1.0', ok: false, required: 'FOO_2.3'}])
  })

  it("checks the catalog's libm.so.6 row against a fake libm found through LD_LIBRARY_PATH", async () => {
    const row = CONNECTORS.find((c) => c.platform === 'x86_64')!.libraries.find((l) => l.soname === 'libm.so.6')!
    const r = await checkLibrary(row, {ldLibraryPath: `/nonexistent:${oldDir}`, ldconfig: false, standardDirs: false})
    assert.equal(r.source, 'LD_LIBRARY_PATH')
    assert.equal(r.ok, false)
    assert.deepEqual(r.requirements, [{highest: 'GLIBC_2.19', ok: false, required: row.minimumVersions[0]}])
  })

  it('reports a missing library with the directories searched', async () => {
    const r = await checkLibrary(
      {minimumVersions: ['GFORTRAN_1.0'], soname: 'libgfortran.so.3'},
      only([newDir, oldDir]),
    )
    assert.equal(r.ok, false)
    assert.equal(r.path, undefined)
    assert.deepEqual(r.searched, [newDir, oldDir])
  })

  it('skips a library built for another architecture', async () => {
    const armDir = join(dir, 'arm')
    await mkdir(armDir, {recursive: true})
    await writeFile(
      join(armDir, 'libfoo.so.1'),
      synthesizeElf({
        bits: 32,
        defined: ['FOO_9.0'],
        endian: 'little',
        machine: 40,
        needed: [],
        needs: [],
        soname: 'libfoo.so.1',
      }),
    )
    const r = await findLibrary('libfoo.so.1', {...only([armDir, newDir]), platform: 'x86_64'})
    assert.equal(r.found?.path, join(newDir, 'libfoo.so.1'))
    assert.equal(r.skipped.length, 1)
    assert.match(r.skipped[0].reason, /arm.*32-bit.*not x86_64/)
  })

  it('checks a binary against the libraries ldd resolves (ok with the new library, FOO_2.3 missing with the old)', async function () {
    if (!(await hasCommand('ldd'))) this.skip()
    const bin = await buildBinary(newDir, 'app', ['fn_1'], [join(newDir, 'libfoo.so.1')])
    const good = await checkBinary(bin, {env: {LD_LIBRARY_PATH: newDir}})
    assert.equal(good.ok, true, JSON.stringify(good))
    assert.equal(good.needs.find((n) => n.soname === 'libfoo.so.1')?.path, join(newDir, 'libfoo.so.1'))
    const bad = await checkBinary(bin, {env: {LD_LIBRARY_PATH: oldDir}})
    assert.equal(bad.ok, false)
    assert.deepEqual(bad.needs.find((n) => n.soname === 'libfoo.so.1')?.missing, ['FOO_2.3'])
    const none = await checkBinary(bin, {env: {LD_LIBRARY_PATH: dir}})
    assert.deepEqual(none.unresolved, ['libfoo.so.1'])
  })

  it('finds libc.so.6 of this machine through the ldconfig cache or the standard directories', async () => {
    const r = await findLibrary('libc.so.6')
    assert.ok(r.found, JSON.stringify(r.searched))
    assert.equal(r.found.elf.soname, 'libc.so.6')
  })
})

describe('device: ldconfig and ldd output', () => {
  it('parses ldconfig -p lines', () => {
    const map = parseLdconfigCache(
      "12 libs found in cache `/etc/ld.so.cache'\n\tlibm.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libm.so.6\n\tlibm.so.6 (libc6) => /lib/i386-linux-gnu/libm.so.6\n",
    )
    assert.deepEqual(map.get('libm.so.6'), [
      {flags: 'libc6,x86-64', path: '/lib/x86_64-linux-gnu/libm.so.6'},
      {flags: 'libc6', path: '/lib/i386-linux-gnu/libm.so.6'},
    ])
  })

  it('parses ldd lines, including "not found" and the interpreter', () => {
    const map = parseLddOutput(
      '\tlinux-vdso.so.1 (0x00007ffd)\n\tlibfoo.so.1 => not found\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f12)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f34)\n',
    )
    assert.equal(map.get('libfoo.so.1'), undefined)
    assert.ok(map.has('libfoo.so.1'))
    assert.equal(map.get('libc.so.6'), '/lib/x86_64-linux-gnu/libc.so.6')
    assert.equal(map.get('ld-linux-x86-64.so.2'), '/lib64/ld-linux-x86-64.so.2')
  })
})
