/**
 * Test fixtures of the device tests: shared libraries compiled with gcc and linker version scripts, synthetic
 * ELF files of other classes and byte orders, readelf output parsing, and stub package managers for the
 * installer scripts.
 */
import {execa} from 'execa'
import {rmSync} from 'node:fs'
import {chmod, mkdir, mkdtemp, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

const created: string[] = []

/** A fresh temporary directory, removed after the test run. */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `icc-${prefix}-`))
  created.push(dir)
  return dir
}

// Remove this run's temporary directories when the test process ends.
process.once('exit', () => {
  for (const d of created.splice(0)) rmSync(d, {force: true, recursive: true})
})

export async function hasCommand(cmd: string): Promise<boolean> {
  const r = await execa('sh', ['-c', `command -v ${cmd}`], {reject: false})
  return r.exitCode === 0
}

/**
 * Build a shared library exporting one function per version (`versions` in order, each inheriting the previous),
 * named `soname`, into `dir`. Returns its path.
 */
export async function buildVersionedLibrary(
  dir: string,
  soname: string,
  versions: string[],
  options: {m32?: boolean; prefix?: string} = {},
): Promise<string> {
  await mkdir(dir, {recursive: true})
  const prefix = options.prefix ?? 'fn'
  const src = versions.map((_v, i) => `int ${prefix}_${i}(void) { return ${i + 1}; }`).join('\n')
  const map = versions
    .map((v, i) => {
      const body = `${v} { global: ${prefix}_${i};${i === 0 ? ' local: *;' : ''} }`
      return i === 0 ? `${body};` : `${body} ${versions[i - 1]};`
    })
    .join('\n')
  const base = join(dir, `${soname}.src`)
  await writeFile(`${base}.c`, src)
  await writeFile(`${base}.map`, `${map}\n`)
  const out = join(dir, soname)
  const args = ['-shared', '-fPIC', `-Wl,--version-script=${base}.map`, `-Wl,-soname,${soname}`, '-o', out, `${base}.c`]
  if (options.m32) args.unshift('-m32', '-nostdlib')
  await execa('gcc', args)
  return out
}

/** Build an executable calling `calls` (function names) and linked against `libs` (paths). */
export async function buildBinary(dir: string, name: string, calls: string[], libs: string[]): Promise<string> {
  const src = join(dir, `${name}.c`)
  const decls = calls.map((c) => `int ${c}(void);`).join('\n')
  await writeFile(src, `${decls}\nint main(void) { return ${calls.map((c) => `${c}()`).join(' + ') || '0'}; }\n`)
  const out = join(dir, name)
  await execa('gcc', ['-o', out, src, ...libs, '-Wl,--allow-shlib-undefined'])
  return out
}

/** `readelf -V -d` of a file: version definitions (without BASE), version needs and the dynamic section. */
export async function readelfFacts(path: string): Promise<{
  defined: string[]
  needed: string[]
  needs: Record<string, string[]>
  soname?: string
}> {
  const r = await execa('readelf', ['-W', '-V', '-d', path], {env: {LC_ALL: 'C'}})
  const defined: string[] = []
  const needed: string[] = []
  const needs: Record<string, string[]> = {}
  let soname: string | undefined
  let section: 'd' | 'none' | 'r' = 'none'
  let currentFile = ''
  for (const line of r.stdout.split('\n')) {
    if (line.includes("'.gnu.version_d'")) section = 'd'
    else if (line.includes("'.gnu.version_r'")) section = 'r'
    else if (/^Version symbols section|^Dynamic section/.test(line)) section = 'none'
    const so = /\(SONAME\)\s+Library soname: \[(.+)\]/.exec(line)
    if (so) soname = so[1]
    const ne = /\(NEEDED\)\s+Shared library: \[(.+)\]/.exec(line)
    if (ne) needed.push(ne[1])
    if (section === 'd') {
      const m = /Flags: (\S+)\s+Index: \d+\s+Cnt: \d+\s+Name: (\S+)/.exec(line)
      if (m && m[1] !== 'BASE') defined.push(m[2])
    } else if (section === 'r') {
      const f = /File: (\S+)\s+Cnt: \d+/.exec(line)
      if (f) {
        currentFile = f[1]
        needs[currentFile] = []
      }

      const n = /Name: (\S+)\s+Flags:/.exec(line)
      if (n && currentFile) needs[currentFile].push(n[1])
    }
  }

  return {defined, needed, needs, soname}
}

/**
 * Write a minimal ELF shared object by hand (from the ELF specification, independent of the reader under test):
 * sections .dynstr, .dynamic (DT_NEEDED..., DT_SONAME), .gnu.version_d and .gnu.version_r, .shstrtab.
 */
export function synthesizeElf(options: {
  bits: 32 | 64
  defined: string[]
  endian: 'big' | 'little'
  machine: number
  needed: string[]
  needs: {file: string; versions: string[]}[]
  soname: string
}): Buffer {
  const {bits, endian} = options
  const le = endian === 'little'
  const strings: string[] = ['']
  const strOff = new Map<string, number>()
  let strLen = 1
  const str = (s: string): number => {
    if (strOff.has(s)) return strOff.get(s)!
    strOff.set(s, strLen)
    strings.push(s)
    strLen += Buffer.byteLength(s) + 1
    return strOff.get(s)!
  }

  const u16 = (v: number) => {
    const b = Buffer.alloc(2)
    if (le) b.writeUInt16LE(v)
    else b.writeUInt16BE(v)
    return b
  }

  const u32 = (v: number) => {
    const b = Buffer.alloc(4)
    if (le) b.writeUInt32LE(v)
    else b.writeUInt32BE(v)
    return b
  }

  const word = (v: number) => {
    if (bits === 32) return u32(v)
    const b = Buffer.alloc(8)
    if (le) b.writeBigUInt64LE(BigInt(v))
    else b.writeBigUInt64BE(BigInt(v))
    return b
  }

  // .gnu.version_d: base entry (the soname), then one per version.
  const defNames = [options.soname, ...options.defined]
  const verdef = Buffer.concat(
    defNames.map((name, i) =>
      Buffer.concat([
        u16(1), // vd_version
        u16(i === 0 ? 1 : 0), // vd_flags (VER_FLG_BASE)
        u16(i + 1), // vd_ndx
        u16(1), // vd_cnt
        u32(0), // vd_hash (not checked)
        u32(20), // vd_aux
        u32(i === defNames.length - 1 ? 0 : 28), // vd_next
        u32(str(name)), // vda_name
        u32(0), // vda_next
      ]),
    ),
  )
  // .gnu.version_r
  let other = defNames.length + 1
  const verneed = Buffer.concat(
    options.needs.map((n, i) => {
      const size = 16 + 16 * n.versions.length
      return Buffer.concat([
        u16(1),
        u16(n.versions.length),
        u32(str(n.file)),
        u32(16),
        u32(i === options.needs.length - 1 ? 0 : size),
        ...n.versions.map((v, j) =>
          Buffer.concat([u32(0), u16(0), u16(other++), u32(str(v)), u32(j === n.versions.length - 1 ? 0 : 16)]),
        ),
      ])
    }),
  )
  const dynEntries: [number, number][] = [
    ...options.needed.map((n) => [1, str(n)] as [number, number]),
    [14, str(options.soname)],
  ]
  dynEntries.push([0, 0])
  const dynamic = Buffer.concat(dynEntries.map(([t, v]) => Buffer.concat([word(t), word(v)])))
  const dynstr = Buffer.concat(strings.map((s) => Buffer.concat([Buffer.from(s, 'latin1'), Buffer.alloc(1)])))

  const secNames = ['', '.dynstr', '.dynamic', '.gnu.version_d', '.gnu.version_r', '.shstrtab']
  const shstr = Buffer.concat(secNames.map((s) => Buffer.concat([Buffer.from(s), Buffer.alloc(1)])))
  const shName = (i: number) => secNames.slice(0, i).reduce((a, s) => a + s.length + 1, 0)

  const ehsize = bits === 64 ? 64 : 52
  const bodies = [dynstr, dynamic, verdef, verneed, shstr]
  const offsets: number[] = []
  let off = ehsize
  for (const b of bodies) {
    off = (off + 7) & ~7
    offsets.push(off)
    off += b.length
  }

  const shoff = (off + 7) & ~7
  const shentsize = bits === 64 ? 64 : 40
  const sh = (name: number, type: number, offset: number, size: number, link: number, info: number, entsize: number) =>
    bits === 64
      ? Buffer.concat([
          u32(name),
          u32(type),
          word(0),
          word(0),
          word(offset),
          word(size),
          u32(link),
          u32(info),
          word(8),
          word(entsize),
        ])
      : Buffer.concat([
          u32(name),
          u32(type),
          u32(0),
          u32(0),
          u32(offset),
          u32(size),
          u32(link),
          u32(info),
          u32(4),
          u32(entsize),
        ])
  const headers = Buffer.concat([
    Buffer.alloc(shentsize),
    sh(shName(1), 3, offsets[0], dynstr.length, 0, 0, 0),
    sh(shName(2), 6, offsets[1], dynamic.length, 1, 0, bits === 64 ? 16 : 8),
    sh(shName(3), 0x6f_ff_ff_fd, offsets[2], verdef.length, 1, defNames.length, 0),
    sh(shName(4), 0x6f_ff_ff_fe, offsets[3], verneed.length, 1, options.needs.length, 0),
    sh(shName(5), 3, offsets[4], shstr.length, 0, 0, 0),
  ])
  const ident = Buffer.from([0x7f, 0x45, 0x4c, 0x46, bits === 64 ? 2 : 1, le ? 1 : 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
  const ehdr = Buffer.concat([
    ident,
    u16(3), // ET_DYN
    u16(options.machine),
    u32(1),
    word(0), // e_entry
    word(0), // e_phoff
    word(shoff),
    u32(0), // e_flags
    u16(ehsize),
    u16(0), // e_phentsize
    u16(0), // e_phnum
    u16(shentsize),
    u16(6), // e_shnum
    u16(5), // e_shstrndx
  ])
  const file = Buffer.alloc(shoff + headers.length)
  ehdr.copy(file, 0)
  bodies.forEach((b, i) => b.copy(file, offsets[i]))
  headers.copy(file, shoff)
  return file
}

/** The stub commands for the installer tests: each appends its name and argv to $STUB_LOG. */
export const STUBS: Record<string, string> = {
  'apt-cache': `if [ "$1" = show ] && in_list "$2" "\${STUB_AVAILABLE:-}"; then echo "Package: $2"; exit 0; fi; exit 100`,
  'apt-get': `maybe_fail "$@"; exit 0`,
  dpkg: `if [ "$1" = -s ]; then if in_list "$2" "\${STUB_INSTALLED:-}"; then printf 'Package: %s\\nStatus: install ok installed\\n' "$2"; exit 0; fi; exit 1; fi; maybe_fail "$@"; exit 0`,
  id: `if [ "$1" = -u ]; then echo "\${STUB_UID:-0}"; else echo "uid=\${STUB_UID:-0}"; fi`,
  pip: `pip_stub "$@"`,
  pip3: `pip_stub "$@"`,
  python: `maybe_fail "$@"; exit 0`,
  python3: `maybe_fail "$@"; exit 0`,
  rpm: `if [ "$1" = -q ] && in_list "$2" "\${STUB_INSTALLED:-}"; then echo "$2-1.0"; exit 0; fi; exit 1`,
  wget: `maybe_fail "$@"; exit 0`,
  yum: `if [ "$1" = -q ] && [ "$2" = list ]; then in_list "$3" "\${STUB_AVAILABLE:-}" && exit 0; exit 1; fi; maybe_fail "$@"; exit 0`,
}

const STUB_PRELUDE = `#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$STUB_LOG"
in_list() { local x; for x in $2; do [ "$x" = "$1" ] && return 0; done; return 1; }
maybe_fail() { if [ -n "\${STUB_FAIL:-}" ] && [[ "$(basename "$0") $*" == "$STUB_FAIL"* ]]; then echo "stub: simulated failure" >&2; exit 1; fi; }
pip_stub() {
  if [ "$1" = show ]; then
    local entry; for entry in \${STUB_PIP_INSTALLED:-}; do
      if [ "\${entry%%=*}" = "$2" ]; then printf 'Name: %s\\nVersion: %s\\n' "$2" "\${entry#*=}"; exit 0; fi
    done; exit 1
  fi
  if [ "$1" = --version ]; then if [ -n "\${STUB_PIP2:-}" ]; then echo "pip 20.3.4 from /usr/lib/python2.7 (python 2.7)"; exit 0; fi; exit 1; fi
  if [ -n "\${STUB_SWAPFILE:-}" ]; then grep CONF_SWAPSIZE "$ICC_ROOT/etc/dphys-swapfile" | sed 's/^/  swap during pip: /' >> "$STUB_LOG"; fi
  maybe_fail "$@"; exit 0
}
`

/** Write the stubs into `dir` (to be put first on PATH). */
export async function writeStubs(dir: string): Promise<void> {
  await mkdir(dir, {recursive: true})
  for (const [name, body] of Object.entries(STUBS)) {
    const p = join(dir, name)
    await writeFile(p, `${STUB_PRELUDE}${body}\n`)
    await chmod(p, 0o755)
  }
}

/** Lines of the stub log that change the system (queries such as dpkg -s, apt-cache show, pip show dropped). */
export function mutatingCalls(log: string): string[] {
  return log
    .split('\n')
    .filter(Boolean)
    .filter(
      (l) =>
        !/^(dpkg -s|apt-cache |rpm -q|yum -q list|pip3? show|pip3? --version|id )/.test(l) && !l.startsWith('  swap'),
    )
}

/** A tiny ONNX classifier (GlobalAveragePool -> Flatten -> Softmax): input [1,3,8,8], 3 classes. */
export async function writeTinyOnnx(path: string): Promise<void> {
  const {default: onnxProto} = await import('onnx-proto')
  const {onnx} = onnxProto
  const shape = (d: number[]) => ({shape: {dim: d.map((v) => ({dimValue: v}))}})
  const model = onnx.ModelProto.create({
    graph: {
      input: [{name: 'data', type: {tensorType: {elemType: 1, ...shape([1, 3, 8, 8])}}}],
      name: 'tiny',
      node: [
        {input: ['data'], opType: 'GlobalAveragePool', output: ['gap']},
        {input: ['gap'], opType: 'Flatten', output: ['flat']},
        {
          attribute: [{i: 1, name: 'axis', type: onnx.AttributeProto.AttributeType.INT}],
          input: ['flat'],
          opType: 'Softmax',
          output: ['prob'],
        },
      ],
      output: [{name: 'prob', type: {tensorType: {elemType: 1, ...shape([1, 3])}}}],
    },
    irVersion: 7,
    opsetImport: [{domain: '', version: 13}],
    producerName: 'icc-test',
  })
  await writeFile(path, onnx.ModelProto.encode(model).finish())
}
