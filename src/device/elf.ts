/**
 * A small ELF reader for shared libraries and executables: what `readelf -d -V` shows, without binutils.
 *
 * It reads 32- and 64-bit files of either byte order, and from them: the section headers, the dynamic section
 * (`DT_SONAME`, `DT_NEEDED`, `DT_RPATH`/`DT_RUNPATH`) with its string table, the version definitions
 * (`.gnu.version_d`: the symbol versions a library provides, e.g. `GLIBC_2.2.5` ... `GLIBC_2.36`) and the version
 * needs (`.gnu.version_r`: which versions a binary requires from which library). `icc doctor` uses it to decide
 * whether a library reaches the minimum versions of the connector's library tables.
 *
 * Only the parts needed are read (through a file handle at offsets), so multi-hundred-megabyte CUDA libraries are
 * cheap to inspect. A file that is not ELF, or is truncated or inconsistent, raises a {@link DependencyError}
 * with code `BAD_ELF` that says what was wrong.
 */
import {type FileHandle, open} from 'node:fs/promises'

import {DependencyError} from '../errors.js'

export const SHT_STRTAB = 3
export const SHT_DYNAMIC = 6
export const SHT_DYNSYM = 11
export const SHT_GNU_VERDEF = 0x6f_ff_ff_fd
export const SHT_GNU_VERNEED = 0x6f_ff_ff_fe
export const DT_NULL = 0
export const DT_NEEDED = 1
export const DT_SONAME = 14
export const DT_RPATH = 15
export const DT_RUNPATH = 29
const VER_FLG_BASE = 1
const SHN_XINDEX = 0xff_ff

/** e_machine values of the architectures icc cares about, with the names `uname -m` would print. */
export const ELF_MACHINES: Record<number, string> = {3: 'i386', 40: 'arm', 62: 'x86_64', 183: 'aarch64'}

export interface ElfSection {
  addr: bigint
  entsize: number
  flags: bigint
  info: number
  link: number
  name: string
  offset: number
  size: number
  type: number
}

export interface ElfVersionNeed {
  /** The library the versions are needed from (vn_file), e.g. `libc.so.6`. */
  file: string
  /** The version names needed from it, e.g. ['GLIBC_2.2.5', 'GLIBC_2.34']. */
  versions: string[]
}

export interface ElfInfo {
  /** 32 or 64. */
  bits: 32 | 64
  endian: 'big' | 'little'
  /** e_machine, and its name when known ('x86_64', 'aarch64', 'arm', 'i386'). */
  machine: number
  machineName?: string
  /** DT_NEEDED entries in order. */
  needed: string[]
  path: string
  rpath?: string
  runpath?: string
  sections: ElfSection[]
  /** DT_SONAME, when the file has one. */
  soname?: string
  /** e_type: 1 relocatable, 2 executable, 3 shared object (PIE executables too), 4 core. */
  type: number
  /** The base version definition (VER_FLG_BASE), normally the soname itself. */
  versionBase?: string
  /** Version definitions (`.gnu.version_d`), without the base entry, in file order. */
  versionDefinitions: string[]
  /** Version needs (`.gnu.version_r`), grouped by library. */
  versionNeeds: ElfVersionNeed[]
}

function bad(path: string, why: string): DependencyError {
  return new DependencyError('BAD_ELF', `${path} is not a readable ELF file: ${why}.`, {
    details: {path},
    suggestions: ['Check that the file is a complete shared library or executable for this platform.'],
  })
}

/** Read little/big-endian integers out of a buffer with bounds checks that name the file. */
class Reader {
  constructor(
    readonly buf: Buffer,
    readonly little: boolean,
    readonly path: string,
  ) {}

  check(off: number, len: number, what: string): void {
    if (off < 0 || off + len > this.buf.length) throw bad(this.path, `${what} lies outside the file`)
  }

  u16(off: number): number {
    this.check(off, 2, 'a field')
    return this.little ? this.buf.readUInt16LE(off) : this.buf.readUInt16BE(off)
  }

  u32(off: number): number {
    this.check(off, 4, 'a field')
    return this.little ? this.buf.readUInt32LE(off) : this.buf.readUInt32BE(off)
  }

  u64(off: number): bigint {
    this.check(off, 8, 'a field')
    return this.little ? this.buf.readBigUInt64LE(off) : this.buf.readBigUInt64BE(off)
  }
}

function toSafe(value: bigint, path: string, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(path, `${what} is too large (${value})`)
  return Number(value)
}

function cString(buf: Buffer, off: number, path: string): string {
  if (off < 0 || off >= buf.length) throw bad(path, `string offset ${off} lies outside its string table`)
  const end = buf.indexOf(0, off)
  return buf.toString('latin1', off, end === -1 ? buf.length : end)
}

type RawSection = ElfSection & {nameOff: number}

/** An open ELF file: reads at offsets with bounds checks that name the file, and caches section contents. */
class ElfFile {
  /** The section headers, once read. */
  sections: RawSection[] = []
  private readonly contents = new Map<number, Buffer>()

  constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    readonly size: number,
  ) {}

  /** `length` bytes at `offset`, or BAD_ELF naming `what` when they lie outside the file. */
  async readAt(offset: number, length: number, what: string): Promise<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.size) throw bad(this.path, `${what} lies outside the file`)
    const buf = Buffer.alloc(length)
    const {bytesRead} = await this.fh.read(buf, 0, length, offset)
    if (bytesRead !== length) throw bad(this.path, `short read of ${what}`)
    return buf
  }

  /** The contents of section `index` (empty for SHT_NOBITS), read once. */
  async sectionData(index: number): Promise<Buffer> {
    const NOBITS = 8
    const s = this.sections[index]
    if (!s) throw bad(this.path, `section index ${index} does not exist (${this.sections.length} sections)`)
    if (s.type === NOBITS) return Buffer.alloc(0)
    let buf = this.contents.get(index)
    if (!buf) {
      buf = await this.readAt(s.offset, s.size, `section ${index}`)
      this.contents.set(index, buf)
    }

    return buf
  }
}

/** The ELF header's facts: the start of the result, and where the section headers are. */
interface ElfHeader {
  info: ElfInfo
  is64: boolean
  little: boolean
  shentsize: number
  shnum: number
  shoff: number
  shstrndx: number
}

/** Read and check the ELF header. */
async function readHeader(file: ElfFile): Promise<ElfHeader> {
  const {path, size: fileSize} = file
  if (fileSize < 52) throw bad(path, `only ${fileSize} bytes long`)
  const ident = await file.readAt(0, fileSize < 64 ? 52 : 64, 'the ELF header')
  if (ident[0] !== 0x7f || ident.toString('latin1', 1, 4) !== 'ELF') throw bad(path, 'no ELF magic number')
  const cls = ident[4]
  const data = ident[5]
  if (cls !== 1 && cls !== 2) throw bad(path, `unknown ELF class ${cls}`)
  if (data !== 1 && data !== 2) throw bad(path, `unknown byte order ${data}`)
  const is64 = cls === 2
  const h = new Reader(ident, data === 1, path)
  if (is64 && ident.length < 64) throw bad(path, 'truncated 64-bit ELF header')
  const type = h.u16(16)
  const machine = h.u16(18)
  const info: ElfInfo = {
    bits: is64 ? 64 : 32,
    endian: data === 1 ? 'little' : 'big',
    machine,
    machineName: ELF_MACHINES[machine],
    needed: [],
    path,
    sections: [],
    type,
    versionDefinitions: [],
    versionNeeds: [],
  }
  return {
    info,
    is64,
    little: h.little,
    shentsize: h.u16(is64 ? 58 : 46),
    shnum: h.u16(is64 ? 60 : 48),
    shoff: is64 ? toSafe(h.u64(40), path, 'e_shoff') : h.u32(32),
    shstrndx: h.u16(is64 ? 62 : 50),
  }
}

/** One section header of the table at entry offset `o`. */
function sectionAt(table: Reader, o: number, is64: boolean): RawSection {
  const {path} = table
  return is64
    ? {
        addr: table.u64(o + 16),
        entsize: toSafe(table.u64(o + 56), path, 'sh_entsize'),
        flags: table.u64(o + 8),
        info: table.u32(o + 44),
        link: table.u32(o + 40),
        name: '',
        nameOff: table.u32(o),
        offset: toSafe(table.u64(o + 24), path, 'sh_offset'),
        size: toSafe(table.u64(o + 32), path, 'sh_size'),
        type: table.u32(o + 4),
      }
    : {
        addr: BigInt(table.u32(o + 12)),
        entsize: table.u32(o + 36),
        flags: BigInt(table.u32(o + 8)),
        info: table.u32(o + 28),
        link: table.u32(o + 24),
        name: '',
        nameOff: table.u32(o),
        offset: table.u32(o + 16),
        size: table.u32(o + 20),
        type: table.u32(o + 4),
      }
}

/** Read the section header table (extended numbering included) and the sections' names into `file.sections`. */
async function readSections(file: ElfFile, header: ElfHeader): Promise<void> {
  const {path} = file
  const {is64, little, shentsize, shoff} = header
  let {shnum, shstrndx} = header
  const minEnt = is64 ? 64 : 40
  if (shentsize < minEnt) throw bad(path, `section header size ${shentsize} is smaller than ${minEnt}`)
  // Extended numbering: counts that do not fit live in section 0.
  const first = new Reader(await file.readAt(shoff, shentsize, 'section header 0'), little, path)
  if (shnum === 0) shnum = is64 ? toSafe(first.u64(32), path, 'sh_size') : first.u32(20)
  if (shstrndx === SHN_XINDEX) shstrndx = first.u32(is64 ? 40 : 24)
  if (shnum > 65_536) throw bad(path, `implausible section count ${shnum}`)
  const table = new Reader(await file.readAt(shoff, shnum * shentsize, 'the section header table'), little, path)
  for (let i = 0; i < shnum; i++) file.sections.push(sectionAt(table, i * shentsize, is64))
  if (shstrndx !== 0 && shstrndx < shnum) {
    const names = await file.sectionData(shstrndx)
    for (const s of file.sections) s.name = s.nameOff < names.length ? cString(names, s.nameOff, path) : ''
  }
}

/** The first section of `type`, a reader over its contents and its linked string table; undefined without one. */
async function sectionWithStrings(
  file: ElfFile,
  header: ElfHeader,
  type: number,
): Promise<undefined | {r: Reader; s: RawSection; strtab: Buffer}> {
  const index = file.sections.findIndex((s) => s.type === type)
  if (index === -1) return undefined
  const s = file.sections[index]
  const strtab = await file.sectionData(s.link)
  return {r: new Reader(await file.sectionData(index), header.little, file.path), s, strtab}
}

/** Read `.dynamic`: DT_NEEDED, DT_SONAME, DT_RPATH and DT_RUNPATH into `info`. */
async function readDynamic(file: ElfFile, header: ElfHeader): Promise<void> {
  const {info, is64} = header
  const {path} = file
  const found = await sectionWithStrings(file, header, SHT_DYNAMIC)
  if (!found) return
  const {r, strtab} = found
  const ent = is64 ? 16 : 8
  for (let o = 0; o + ent <= r.buf.length; o += ent) {
    const tag = is64 ? Number(r.u64(o)) : r.u32(o)
    const raw64 = is64 ? r.u64(o + 8) : BigInt(r.u32(o + 4))
    // Only string offsets are converted (other d_val values may be addresses beyond 2^53).
    const str = () => cString(strtab, toSafe(raw64, path, 'd_val'), path)
    if (tag === DT_NULL) break
    switch (tag) {
      case DT_NEEDED: {
        info.needed.push(str())
        break
      }

      case DT_SONAME: {
        info.soname = str()
        break
      }

      case DT_RPATH: {
        info.rpath = str()
        break
      }

      case DT_RUNPATH: {
        info.runpath = str()
        break
      }
      // No default
    }
  }
}

/** Read `.gnu.version_d` (the versions the file defines, and its base version) into `info`. */
async function readVersionDefinitions(file: ElfFile, header: ElfHeader): Promise<void> {
  const {info} = header
  // Elf_Verdef {u16 version, u16 flags, u16 ndx, u16 cnt, u32 hash, u32 aux, u32 next},
  // Elf_Verdaux {u32 name, u32 next}; the same layout in 32- and 64-bit files.
  const found = await sectionWithStrings(file, header, SHT_GNU_VERDEF)
  if (!found) return
  const {r, s, strtab} = found
  let off = 0
  const count = s.info || Number.MAX_SAFE_INTEGER
  for (let i = 0; i < count && off + 20 <= r.buf.length; i++) {
    const flags = r.u16(off + 2)
    const cnt = r.u16(off + 6)
    const aux = r.u32(off + 12)
    const next = r.u32(off + 16)
    if (cnt > 0) {
      // The first auxiliary entry names this version; later ones name its parents.
      const name = cString(strtab, r.u32(off + aux), file.path)
      if (flags & VER_FLG_BASE) info.versionBase = name
      else if (!info.versionDefinitions.includes(name)) info.versionDefinitions.push(name)
    }

    if (next === 0) break
    off += next
  }
}

/** Read `.gnu.version_r` (the versions the file needs, by library) into `info`. */
async function readVersionNeeds(file: ElfFile, header: ElfHeader): Promise<void> {
  // Elf_Verneed {u16 version, u16 cnt, u32 file, u32 aux, u32 next},
  // Elf_Vernaux {u32 hash, u16 flags, u16 other, u32 name, u32 next}.
  const {path} = file
  const found = await sectionWithStrings(file, header, SHT_GNU_VERNEED)
  if (!found) return
  const {r, s, strtab} = found
  let off = 0
  const count = s.info || Number.MAX_SAFE_INTEGER
  for (let i = 0; i < count && off + 16 <= r.buf.length; i++) {
    const cnt = r.u16(off + 2)
    const needFile = cString(strtab, r.u32(off + 4), path)
    const versions: string[] = []
    let a = off + r.u32(off + 8)
    for (let j = 0; j < cnt; j++) {
      versions.push(cString(strtab, r.u32(a + 8), path))
      const anext = r.u32(a + 12)
      if (anext === 0) break
      a += anext
    }

    header.info.versionNeeds.push({file: needFile, versions})
    const next = r.u32(off + 12)
    if (next === 0) break
    off += next
  }
}

/** Parse an ELF file's dynamic linking facts. */
export async function readElf(path: string): Promise<ElfInfo> {
  let fh
  try {
    fh = await open(path, 'r')
  } catch (error) {
    throw new DependencyError('FILE_NOT_READABLE', `Cannot open ${path}: ${(error as Error).message}`, {cause: error})
  }

  try {
    const file = new ElfFile(fh, path, (await fh.stat()).size)
    const header = await readHeader(file)
    const {info} = header
    if (header.shoff === 0) return info // no section headers (stripped of them): nothing more to read here
    await readSections(file, header)
    info.sections = file.sections.map(({nameOff: _n, ...s}) => s)
    await readDynamic(file, header)
    await readVersionDefinitions(file, header)
    await readVersionNeeds(file, header)
    return info
  } finally {
    await fh.close()
  }
}
