// @tier unit: needs neither ../shared nor child processes (npm run test:unit)
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {existsSync} from 'node:fs'
import {mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {gzipSync} from 'node:zlib'

import {ModelError} from '../../src/errors.js'
import {createArchive, extractArchive} from '../../src/model/archive.js'

interface RawEntry {
  data?: Buffer
  linkname?: string
  mode?: number
  name: string
  /** Declared size (defaults to data length): lets a header lie. */
  size?: number
  /** ustar typeflag: '0' file, '1' hard link, '2' symlink, '3' char device, '5' directory, '6' FIFO. */
  type?: string
}

/** One raw 512-byte ustar header, written by hand (node-tar's writer would sanitise hostile names). */
function ustarHeader(entry: RawEntry): Buffer {
  const h = Buffer.alloc(512)
  const octal = (value: number, offset: number, width: number) =>
    h.write(value.toString(8).padStart(width - 1, '0') + '\0', offset, width, 'latin1')
  h.write(entry.name, 0, 100, 'utf8')
  octal(entry.mode ?? 0o644, 100, 8)
  octal(0, 108, 8)
  octal(0, 116, 8)
  const size = entry.size ?? entry.data?.length ?? 0
  if (size > 0o777_7777_7777) {
    // base-256 (GNU) encoding for sizes of 8 GiB and more
    h[124] = 0x80
    let v = BigInt(size)
    for (let i = 135; i > 124; i--) {
      h[i] = Number(v & 0xffn)
      v >>= 8n
    }
  } else {
    octal(size, 124, 12)
  }

  octal(1_700_000_000, 136, 12)
  h.fill(0x20, 148, 156)
  h.write(entry.type ?? '0', 156, 1, 'latin1')
  h.write(entry.linkname ?? '', 157, 100, 'utf8')
  h.write('ustar\u000000', 257, 8, 'latin1')
  let sum = 0
  for (const byte of h) sum += byte
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1')
  return h
}

/** A tar (gzip-compressed unless told) of raw entries. */
function rawTar(entries: RawEntry[], gzip = true): Buffer {
  const parts: Buffer[] = []
  for (const entry of entries) {
    parts.push(ustarHeader(entry))
    const data = entry.data ?? Buffer.alloc(0)
    parts.push(data, Buffer.alloc((512 - (data.length % 512)) % 512))
  }

  parts.push(Buffer.alloc(1024))
  const tar = Buffer.concat(parts)
  return gzip ? gzipSync(tar) : tar
}

describe('model/archive', () => {
  let work: string
  let dest: string
  let counter = 0

  beforeEach(async () => {
    work = await mkdtemp(join(tmpdir(), 'icc-archive-'))
    dest = join(work, 'out', 'model')
  })

  afterEach(async () => {
    await rm(work, {force: true, recursive: true})
  })

  async function archiveFile(bytes: Buffer): Promise<string> {
    const file = join(work, `a${counter++}.tar.gz`)
    await writeFile(file, bytes)
    return file
  }

  async function refused(file: string, code: string, message: RegExp) {
    await assert.rejects(extractArchive(file, dest), (error: unknown) => {
      assert.ok(error instanceof ModelError, `expected a ModelError, got ${String(error)}`)
      assert.equal(error.code, code)
      assert.match(error.message, message)
      return true
    })
    // Nothing partial left beside the destination, nothing written outside it.
    const beside = existsSync(join(work, 'out')) ? await readdir(join(work, 'out')) : []
    assert.deepEqual(
      beside.filter((n) => n !== 'model'),
      [],
      'no staging directory left behind',
    )
    assert.ok(!existsSync(join(work, 'evil')) && !existsSync(join(work, 'out', 'evil')), 'nothing escaped')
  }

  async function modelDir(): Promise<{dir: string; params: Buffer}> {
    const dir = join(work, 'src')
    await mkdir(join(dir, 'extra'), {recursive: true})
    const params = randomBytes(64 * 1024)
    await writeFile(join(dir, 'image-classification-symbol.json'), '{"nodes":[]}')
    await writeFile(join(dir, 'image-classification-0003.params'), params)
    await writeFile(join(dir, 'model-shapes.json'), '[{"name":"data","shape":[1,3,224,224]}]')
    await writeFile(join(dir, 'extra', 'synset.txt'), 'cat\ndog\n')
    return {dir, params}
  }

  describe('good archives', () => {
    it('extracts an archive made by createArchive, with the right files, bytes and content', async () => {
      const {dir, params} = await modelDir()
      const file = join(work, 'model.tar.gz')
      await createArchive(dir, file)
      const result = await extractArchive(file, dest)
      assert.deepEqual(result.files, [
        'extra/synset.txt',
        'image-classification-0003.params',
        'image-classification-symbol.json',
        'model-shapes.json',
      ])
      assert.equal(result.totalBytes, 64 * 1024 + 12 + 39 + 8)
      assert.deepEqual(await readFile(join(dest, 'image-classification-0003.params')), params)
      assert.equal(await readFile(join(dest, 'extra', 'synset.txt'), 'utf8'), 'cat\ndog\n')
    })

    it('accepts ./-prefixed names and an uncompressed tar, and strips special mode bits', async () => {
      const file = await archiveFile(
        rawTar(
          [
            {mode: 0o755, name: './', type: '5'},
            {data: Buffer.from('hello'), mode: 0o4777, name: './run.sh'},
            {data: Buffer.from('x'), mode: 0o600, name: './a/b.txt'},
          ],
          false,
        ),
      )
      const result = await extractArchive(file, dest)
      assert.deepEqual(result.files, ['a/b.txt', 'run.sh'])
      assert.equal((await stat(join(dest, 'run.sh'))).mode & 0o7777, 0o755)
      assert.equal((await stat(join(dest, 'a', 'b.txt'))).mode & 0o7777, 0o644)
    })

    it('replaces the old content of the destination only when the new one is complete', async () => {
      await mkdir(dest, {recursive: true})
      await writeFile(join(dest, 'old.txt'), 'old')
      const bad = await archiveFile(rawTar([{data: Buffer.from('new'), name: 'new.txt'}, {name: '../evil'}]))
      await refused(bad, 'UNSAFE_ARCHIVE', /"\.\.\/evil"/)
      assert.deepEqual(await readdir(dest), ['old.txt'])
      const big = rawTar([{data: randomBytes(100_000), name: 'big.bin'}])
      await refused(await archiveFile(big.subarray(0, 5000)), 'CORRUPT_ARCHIVE', /truncated/)
      assert.deepEqual(await readdir(dest), ['old.txt'])
      const good = await archiveFile(rawTar([{data: Buffer.from('new'), name: 'new.txt'}]))
      await extractArchive(good, dest)
      assert.deepEqual(await readdir(dest), ['new.txt'])
      assert.deepEqual(await readdir(join(work, 'out')), ['model'], 'old content and staging removed')
    })
  })

  describe('hostile archives', () => {
    const cases: Array<[string, RawEntry[], string, RegExp]> = [
      ['../ path traversal', [{data: Buffer.from('x'), name: '../evil'}], 'UNSAFE_ARCHIVE', /path traversal/],
      ['a/../../ traversal', [{data: Buffer.from('x'), name: 'a/../../evil'}], 'UNSAFE_ARCHIVE', /path traversal/],
      ['absolute path', [{data: Buffer.from('x'), name: '/abs/path'}], 'UNSAFE_ARCHIVE', /absolute path/],
      [
        'symlink to /etc/passwd',
        [{linkname: '/etc/passwd', name: 'passwd', type: '2'}],
        'UNSAFE_ARCHIVE',
        /symbolic link to "\/etc\/passwd"/,
      ],
      [
        'symlink to ../../x',
        [{linkname: '../../x', name: 'up', type: '2'}],
        'UNSAFE_ARCHIVE',
        /symbolic link to "\.\.\/\.\.\/x"/,
      ],
      [
        'hard link out',
        [{linkname: '/etc/passwd', name: 'hard', type: '1'}],
        'UNSAFE_ARCHIVE',
        /hard link to "\/etc\/passwd"/,
      ],
      ['character device', [{name: 'null', type: '3'}], 'UNSAFE_ARCHIVE', /CharacterDevice/],
      ['FIFO', [{name: 'pipe', type: '6'}], 'UNSAFE_ARCHIVE', /FIFO/],
      [
        'header declaring 10 GB for a tiny file',
        [{data: Buffer.from('tiny'), name: 'huge.params', size: 10 * 1024 ** 3}],
        'ARCHIVE_TOO_LARGE',
        /"huge\.params" declares 10737418240 bytes/,
      ],
    ]
    for (const [title, entries, code, message] of cases) {
      it(`refuses ${title}`, async () => {
        const file = await archiveFile(rawTar([{data: Buffer.from('fine'), name: 'ok.json'}, ...entries]))
        await refused(file, code, message)
        assert.ok(!existsSync(dest), 'destination not created')
      })
    }

    it('enforces maxTotalBytes and maxEntries', async () => {
      const entries = ['a', 'b', 'c'].map((name) => ({data: Buffer.alloc(1000, 1), name}))
      const file = await archiveFile(rawTar(entries))
      await assert.rejects(extractArchive(file, dest, {maxTotalBytes: 2500}), {code: 'ARCHIVE_TOO_LARGE'})
      await assert.rejects(extractArchive(file, dest, {maxEntries: 2}), {
        code: 'ARCHIVE_TOO_LARGE',
        message: /more than 2 entries/,
      })
      assert.equal((await extractArchive(file, dest, {maxEntries: 3, maxTotalBytes: 3000})).totalBytes, 3000)
    })
  })

  describe('corrupt archives', () => {
    it('refuses a truncated gzip stream', async () => {
      const whole = rawTar([{data: randomBytes(200_000), name: 'model.params'}])
      await refused(
        await archiveFile(whole.subarray(0, whole.length >> 1)),
        'CORRUPT_ARCHIVE',
        /gzip stream is truncated/,
      )
    })

    it('refuses an uncompressed tar cut inside an entry', async () => {
      const whole = rawTar([{data: randomBytes(20_000), name: 'model.params'}], false)
      await refused(await archiveFile(whole.subarray(0, 10_240)), 'CORRUPT_ARCHIVE', /truncated/)
    })

    it('refuses garbage, an empty file, and gzip-compressed garbage', async () => {
      await refused(await archiveFile(Buffer.from('definitely not an archive')), 'CORRUPT_ARCHIVE', /not a gzip/)
      await refused(await archiveFile(Buffer.alloc(0)), 'CORRUPT_ARCHIVE', /file is empty/)
      await refused(await archiveFile(gzipSync(randomBytes(4096))), 'CORRUPT_ARCHIVE', /corrupt/)
    })

    it('refuses a file and a folder of the same name by name, not EEXIST or ENOTEMPTY', async () => {
      const file = (name: string) => ({data: Buffer.from('x'), name})
      const folder = (name: string) => ({name, type: '5'})
      const cases: Array<[RawEntry[], RegExp]> = [
        [
          [file('a'), file('a/b')],
          /"a" is both a file and a folder \(entry "a\/b" makes it a folder, an earlier entry a file\)/,
        ],
        [[folder('a/'), file('a/b'), file('a')], /"a" is both a file and a folder \(entry "a" makes it a file/],
        [[file('m/a'), folder('m/a/')], /"m\/a" is both a file and a folder/],
      ]
      for (const [entries, message] of cases) {
        await refused(await archiveFile(rawTar([file('ok.json'), ...entries])), 'CORRUPT_ARCHIVE', message)
        assert.ok(!existsSync(dest), 'destination not created')
      }

      // the same file twice is a tar's append: the last one wins, as before
      const twice = await archiveFile(rawTar([file('a'), {data: Buffer.from('y'), name: 'a'}]))
      assert.deepEqual((await extractArchive(twice, dest)).files, ['a'])
      assert.equal(await readFile(join(dest, 'a'), 'utf8'), 'y')
    })

    it('reports a missing archive', async () => {
      await assert.rejects(extractArchive(join(work, 'nope.tar.gz'), dest), {code: 'ARCHIVE_NOT_FOUND'})
    })
  })
})
