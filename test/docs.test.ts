// @tier unit: needs neither ../shared nor child processes (npm run test:unit)
/**
 * The user's documentation stays true and small: README.md at most 20 KiB (issue 19: the long explanations live
 * in docs/), its exit-code table exactly the codes of src/errors.ts, every command of the CLI in one of its
 * examples with flags that command has, every `icc ...` a message or a page tells the user to run with flags its
 * command has, and every relative link of README.md and docs/*.md pointing at a file
 * (and heading) that exists.
 */
import assert from 'node:assert/strict'
import {existsSync, readdirSync, readFileSync} from 'node:fs'
import {dirname, join, relative, resolve} from 'node:path'

import {ExitCode} from '../src/errors.js'
import {REPO_ROOT} from './helpers/cli.js'

const README_MAX_BYTES = 20 * 1024

const read = (file: string) => readFileSync(join(REPO_ROOT, file), 'utf8')
const markdownFiles = () => [
  'README.md',
  ...readdirSync(join(REPO_ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
]

/** The text outside fenced code blocks, and the code blocks (continuation lines joined). */
function splitFences(markdown: string): {code: string[]; prose: string} {
  const code: string[] = []
  const prose: string[] = []
  let block: string[] | undefined
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) {
      if (block) code.push(block.join('\n').replaceAll(/\\\n\s*/g, ' '))
      block = block ? undefined : []
    } else (block ?? prose).push(line)
  }

  return {code, prose: prose.join('\n')}
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens. */
const slug = (heading: string) =>
  heading
    .toLowerCase()
    .replaceAll(/[^\p{L}\p{N}\s_-]/gu, '')
    .replaceAll(/\s/g, '-')

function anchors(markdown: string): Set<string> {
  const {prose} = splitFences(markdown)
  return new Set([...prose.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) => slug(m[1].trim())))
}

/** `icc <command>` lines of the README's examples: command id (`cache:list`) -> the flags used with it. */
function exampleCommands(readme: string): Map<string, Set<string>> {
  const used = new Map<string, Set<string>>()
  for (const block of splitFences(readme).code) {
    for (const line of block.split('\n')) {
      const m = /(?:^|\s)icc ((?:cache )?[a-z][a-z-]*)(.*)$/.exec(line.replace(/\s#\s.*$/, ''))
      if (!m) continue
      const id = m[1].replace(' ', ':')
      const flags = used.get(id) ?? new Set<string>()
      for (const f of m[2].matchAll(/(?:^|\s)--([a-z][a-z0-9-]*)/g)) flags.add(f[1])
      used.set(id, flags)
    }
  }

  return used
}

describe('documentation (README.md, docs/)', () => {
  it(`README.md is at most ${README_MAX_BYTES} bytes`, () => {
    const size = Buffer.byteLength(read('README.md'))
    assert.ok(
      size <= README_MAX_BYTES,
      `README.md is ${size} bytes: move long explanations into a file under docs/ and link to it`,
    )
  })

  it("the README's exit-code table has every code of src/errors.ts, and no other", () => {
    const readme = read('README.md')
    const section = readme.slice(
      readme.indexOf('## Exit codes'),
      readme.indexOf('\n## ', readme.indexOf('## Exit codes') + 1),
    )
    const documented = [...section.matchAll(/^\| (\d+) \|/gm)].map((m) => Number(m[1])).sort((a, b) => a - b)
    const codes = [...new Set(Object.values(ExitCode))].sort((a, b) => a - b)
    assert.deepEqual(documented, codes)
  })

  it('every command appears in a README example, with flags it has', () => {
    const manifest = JSON.parse(read('oclif.manifest.json')) as {
      commands: Record<string, {flags: Record<string, unknown>; pluginName: string}>
    }
    const used = exampleCommands(read('README.md'))
    const commands = Object.entries(manifest.commands).filter(([, c]) => c.pluginName === 'icc')
    assert.ok(commands.length > 10, `${commands.length} commands in the manifest`)
    const missing = commands.map(([id]) => id).filter((id) => !used.has(id))
    assert.deepEqual(missing, [], 'commands with no example in the README')
    const wrong = [...used].flatMap(([id, flags]) => {
      const command = manifest.commands[id]
      if (!command) return [`icc ${id}: no such command`]
      return [...flags].filter((f) => !(f in command.flags)).map((f) => `icc ${id} --${f}: no such flag`)
    })
    assert.deepEqual(wrong, [])
  })

  it('every `icc ...` in backticks (messages in src/ and commands/, the docs) has flags its command has', () => {
    // the commands a message or a page tells the user to run (`icc convert-model MODEL --output ...`) must run
    const manifest = JSON.parse(read('oclif.manifest.json')) as {commands: Record<string, {flags: object}>}
    const sources = (dir: string): string[] =>
      readdirSync(join(REPO_ROOT, dir), {recursive: true, withFileTypes: true})
        .filter((e) => e.isFile() && e.name.endsWith('.ts'))
        .map((e) => relative(REPO_ROOT, join(e.parentPath, e.name)))
    const wrong: string[] = []
    let checked = 0
    for (const file of [...sources('src'), ...sources('commands'), ...markdownFiles()]) {
      // (not a line icc prints, `icc serve: ready ...`; a backslash ends a code span in a template literal)
      for (const [, code] of read(file).matchAll(/`icc ([a-z][a-z-]*(?![a-z:-])[^`\n]*)/g)) {
        const words = code.replace(/\\$/, '')
        const [first, second] = words.split(/\s+/)
        const id = [`${first}:${second}`, first].find((c) => c in manifest.commands)
        const topic = Object.keys(manifest.commands).some((c) => c.startsWith(`${first}:`))
        if (!id && topic && second === undefined) continue
        if (!id) {
          wrong.push(`${file}: \`icc ${words}\`: no such command`)
          continue
        }

        checked++
        for (const [, flag] of words.matchAll(/(?:^|\s)--([a-z][a-z0-9-]*)/g)) {
          if (!(flag in manifest.commands[id].flags)) wrong.push(`${file}: \`icc ${words}\`: no flag --${flag}`)
        }
      }
    }

    assert.ok(checked > 20, `${checked} commands checked`)
    assert.deepEqual(wrong, [])
  })

  it('every relative link of README.md and docs/*.md points at a file and heading that exist', () => {
    const broken: string[] = []
    for (const file of markdownFiles()) {
      const {prose} = splitFences(read(file))
      for (const [, target] of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/i.test(target)) continue
        const [path, anchor] = target.split('#')
        const resolved = path ? resolve(dirname(join(REPO_ROOT, file)), path) : join(REPO_ROOT, file)
        if (!existsSync(resolved)) broken.push(`${file}: ${target} (no such file)`)
        else if (anchor && resolved.endsWith('.md') && !anchors(readFileSync(resolved, 'utf8')).has(anchor)) {
          broken.push(`${file}: ${target} (no heading "#${anchor}" in ${relative(REPO_ROOT, resolved)})`)
        }
      }
    }

    assert.deepEqual(broken, [])
  })
})
