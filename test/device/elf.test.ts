import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {readElf} from '../../src/device/elf.js'
import {findLibrary} from '../../src/device/libraries.js'
import {compareVersionNames, parseVersionName, satisfiesVersion, sortVersionNames} from '../../src/device/versions.js'
import {buildBinary, buildVersionedLibrary, hasCommand, readelfFacts, synthesizeElf, tempDir} from './fixtures.js'

describe('device: symbol version names', () => {
  it('splits families, including CXXABI_ARM as its own family', () => {
    assert.deepEqual(parseVersionName('GLIBC_2.2.5'), {family: 'GLIBC', numbers: [2, 2, 5]})
    assert.deepEqual(parseVersionName('CXXABI_ARM_1.3.3'), {family: 'CXXABI_ARM', numbers: [1, 3, 3]})
    assert.deepEqual(parseVersionName('GOMP_4.0'), {family: 'GOMP', numbers: [4, 0]})
    assert.equal(parseVersionName('GLIBC_PRIVATE'), undefined)
  })

  it('compares numerically, not as text', () => {
    assert.equal(compareVersionNames('GLIBC_2.17', 'GLIBC_2.4'), 1)
    assert.equal(compareVersionNames('GLIBC_2.2.5', 'GLIBC_2.3'), -1)
    assert.equal(compareVersionNames('GLIBCXX_3.4.21', 'GLIBCXX_3.4.21'), 0)
    assert.equal(compareVersionNames('CXXABI_1.3.8', 'CXXABI_ARM_1.3.3'), undefined)
    assert.deepEqual(sortVersionNames(['GLIBC_2.10', 'GLIBC_2.9', 'GLIBC_PRIVATE', 'GLIBC_2.2.5']), [
      'GLIBC_2.2.5',
      'GLIBC_2.9',
      'GLIBC_2.10',
      'GLIBC_PRIVATE',
    ])
  })

  it('is satisfied by the same or a higher version of the same family only', () => {
    const libstdcxxArm = ['CXXABI_1.3', 'CXXABI_1.3.9', 'GLIBCXX_3.4.22']
    assert.deepEqual(satisfiesVersion(libstdcxxArm, 'CXXABI_1.3.8'), {
      highest: 'CXXABI_1.3.9',
      ok: true,
      required: 'CXXABI_1.3.8',
    })
    // CXXABI_1.3.9 must not count as CXXABI_ARM_1.3.3.
    assert.deepEqual(satisfiesVersion(libstdcxxArm, 'CXXABI_ARM_1.3.3'), {
      highest: undefined,
      ok: false,
      required: 'CXXABI_ARM_1.3.3',
    })
    assert.equal(satisfiesVersion(['GLIBC_2.4', 'GLIBC_2.19'], 'GLIBC_2.23').ok, false)
    assert.equal(satisfiesVersion(['GLIBC_2.4', 'GLIBC_2.19'], 'GLIBC_2.23').highest, 'GLIBC_2.19')
    assert.equal(satisfiesVersion(['GCC_3.0', 'GCC_4.2.0'], 'GCC_4.0.0').ok, true)
  })
})

describe('device: ELF reader on real files', function () {
  this.timeout(60_000)
  let dir: string
  let readelf = false

  before(async function () {
    if (!(await hasCommand('gcc'))) this.skip()
    readelf = await hasCommand('readelf')
    dir = await tempDir('elf')
  })

  it('reads version definitions and the soname of a library built with a version script', async () => {
    const lib = await buildVersionedLibrary(join(dir, 'new'), 'libfoo.so.1', ['FOO_1.0', 'FOO_2.3'])
    const elf = await readElf(lib)
    assert.equal(elf.bits, 64)
    assert.equal(elf.endian, 'little')
    assert.equal(elf.soname, 'libfoo.so.1')
    assert.equal(elf.versionBase, 'libfoo.so.1')
    assert.deepEqual(elf.versionDefinitions, ['FOO_1.0', 'FOO_2.3'])
    if (readelf) {
      const facts = await readelfFacts(lib)
      assert.deepEqual(elf.versionDefinitions, facts.defined)
      assert.equal(elf.soname, facts.soname)
      assert.deepEqual(elf.needed, facts.needed)
    }
  })

  it('reads a 32-bit library', async function () {
    let lib: string
    try {
      lib = await buildVersionedLibrary(join(dir, 'm32'), 'libbar.so.2', ['BAR_0.1', 'BAR_0.2', 'BAR_1.0'], {m32: true})
    } catch {
      this.skip() // no 32-bit linker support
    }

    const elf = await readElf(lib)
    assert.equal(elf.bits, 32)
    assert.equal(elf.machineName, 'i386')
    assert.equal(elf.soname, 'libbar.so.2')
    assert.deepEqual(elf.versionDefinitions, ['BAR_0.1', 'BAR_0.2', 'BAR_1.0'])
  })

  it('reads the version needs (.gnu.version_r) of a binary linked against such a library', async () => {
    const lib = await buildVersionedLibrary(join(dir, 'bin-lib'), 'libfoo.so.1', ['FOO_1.0', 'FOO_2.3'])
    const bin = await buildBinary(join(dir, 'bin-lib'), 'app', ['fn_1'], [lib])
    const elf = await readElf(bin)
    assert.ok(elf.needed.includes('libfoo.so.1'))
    assert.ok(elf.needed.includes('libc.so.6'))
    const foo = elf.versionNeeds.find((n) => n.file === 'libfoo.so.1')
    assert.deepEqual(foo?.versions, ['FOO_2.3'])
    const libc = elf.versionNeeds.find((n) => n.file === 'libc.so.6')
    assert.ok(libc && libc.versions.every((v) => v.startsWith('GLIBC_')), JSON.stringify(libc))
    if (readelf) {
      const facts = await readelfFacts(bin)
      assert.deepEqual(
        Object.fromEntries(elf.versionNeeds.map((n) => [n.file, [...n.versions].sort()])),
        Object.fromEntries(Object.entries(facts.needs).map(([f, v]) => [f, [...v].sort()])),
      )
    }
  })

  it("reads this machine's libc.so.6 like readelf does (GLIBC_2.2.5 and up on x86_64)", async function () {
    const found = await findLibrary('libc.so.6')
    if (!found.found) this.skip()
    const elf = await readElf(found.found.path)
    assert.equal(elf.soname, 'libc.so.6')
    assert.ok(elf.versionDefinitions.length > 10)
    if (elf.machineName === 'x86_64') {
      assert.equal(elf.versionDefinitions[0], 'GLIBC_2.2.5')
      assert.ok(elf.versionDefinitions.includes('GLIBC_2.17'))
    }

    if (readelf) assert.deepEqual(elf.versionDefinitions, (await readelfFacts(found.found.path)).defined)
  })

  for (const [bits, endian, machine] of [
    [32, 'big', 20],
    [64, 'big', 43],
    [32, 'little', 40],
    [64, 'little', 183],
  ] as const) {
    it(`reads a ${bits}-bit ${endian}-endian file (checked against readelf when present)`, async () => {
      const spec = {
        bits,
        defined: ['GLIBCXX_3.4', 'GLIBCXX_3.4.20', 'CXXABI_1.3', 'CXXABI_ARM_1.3.3'],
        endian,
        machine,
        needed: ['libm.so.6', 'libc.so.6'],
        needs: [
          {file: 'libm.so.6', versions: ['GLIBC_2.4']},
          {file: 'libc.so.6', versions: ['GLIBC_2.4', 'GLIBC_2.7']},
        ],
        soname: 'libstdc++.so.6',
      } as const
      const path = join(dir, `synthetic-${bits}-${endian}.so`)
      await writeFile(
        path,
        synthesizeElf({
          ...spec,
          defined: [...spec.defined],
          needed: [...spec.needed],
          needs: spec.needs.map((n) => ({...n, versions: [...n.versions]})),
        }),
      )
      const elf = await readElf(path)
      assert.equal(elf.bits, bits)
      assert.equal(elf.endian, endian)
      assert.equal(elf.machine, machine)
      assert.equal(elf.soname, 'libstdc++.so.6')
      assert.deepEqual(elf.needed, spec.needed)
      assert.deepEqual(elf.versionDefinitions, spec.defined)
      assert.deepEqual(elf.versionNeeds, spec.needs)
      if (readelf) {
        const facts = await readelfFacts(path)
        assert.deepEqual(facts.defined, spec.defined) // the synthetic file is valid ELF as binutils reads it
        assert.deepEqual(facts.needs, {'libc.so.6': ['GLIBC_2.4', 'GLIBC_2.7'], 'libm.so.6': ['GLIBC_2.4']})
      }
    })
  }

  it('rejects non-ELF and truncated files with a clear BAD_ELF error', async () => {
    const text = join(dir, 'not-elf.so')
    await writeFile(text, 'INPUT(-lfoo)\n'.repeat(10))
    await assert.rejects(readElf(text), (e: any) => e.code === 'BAD_ELF' && /no ELF magic/.test(e.message))
    const good = synthesizeElf({
      bits: 64,
      defined: ['A_1'],
      endian: 'little',
      machine: 62,
      needed: [],
      needs: [],
      soname: 'x.so',
    })
    const cut = join(dir, 'cut.so')
    await writeFile(cut, good.subarray(0, -100))
    await assert.rejects(readElf(cut), (e: any) => e.code === 'BAD_ELF' && /outside the file/.test(e.message))
  })
})
