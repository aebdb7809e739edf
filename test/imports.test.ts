// @tier unit: needs neither ../shared nor child processes (npm run test:unit)
/**
 * The import graph of src/ and commands/: no module reaches itself through its imports (a cycle makes load order
 * matter and hides which part depends on which), and no library module imports a command.
 */
import assert from 'node:assert/strict'
import {readdirSync, readFileSync} from 'node:fs'
import {dirname, join, relative, resolve} from 'node:path'

import {REPO_ROOT} from './helpers/cli.js'

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+'(\.{1,2}\/[^']+)'|import\(\s*'(\.{1,2}\/[^']+)'\s*\)/g

function sources(dir: string): string[] {
  return readdirSync(dir, {withFileTypes: true}).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  )
}

/** Each module (path relative to the repo) -> the modules it imports, type-only imports included. */
function importGraph(roots: string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  for (const file of roots.flatMap((r) => sources(join(REPO_ROOT, r)))) {
    const text = readFileSync(file, 'utf8')
    const targets = [...text.matchAll(IMPORT)].map((m) =>
      relative(REPO_ROOT, resolve(dirname(file), (m[1] ?? m[2]).replace(/\.js$/, '.ts'))),
    )
    graph.set(relative(REPO_ROOT, file), targets)
  }

  return graph
}

/** The cycles of a graph, each as the path that closes it (depth-first search, each cycle reported once). */
function findCycles(graph: Map<string, string[]>): string[][] {
  const cycles: string[][] = []
  const state = new Map<string, 'done' | 'open'>()
  const stack: string[] = []
  const visit = (node: string) => {
    state.set(node, 'open')
    stack.push(node)
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next])
      else if (!state.has(next)) visit(next)
    }

    stack.pop()
    state.set(node, 'done')
  }

  for (const node of graph.keys()) if (!state.has(node)) visit(node)
  return cycles
}

describe('the import graph', () => {
  it('finds a cycle when there is one (the check itself)', () => {
    const graph = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts']],
      ['c.ts', ['a.ts']],
      ['d.ts', ['a.ts']],
    ])
    assert.deepEqual(findCycles(graph), [['a.ts', 'b.ts', 'c.ts', 'a.ts']])
    assert.deepEqual(findCycles(new Map([['a.ts', ['b.ts']]])), [])
  })

  it('src/ and commands/ have no import cycle', () => {
    const graph = importGraph(['src', 'commands'])
    assert.ok(graph.size > 50, `only ${graph.size} modules found`)
    assert.ok(
      [...graph.values()].flat().some((t) => t.startsWith('src/')),
      'no import between modules was recognised',
    )
    assert.deepEqual(
      findCycles(graph).map((c) => c.join(' -> ')),
      [],
    )
  })

  it('no module of src/ imports a command', () => {
    for (const [file, targets] of importGraph(['src'])) {
      for (const t of targets) assert.ok(!t.startsWith('commands/'), `${file} imports ${t}`)
    }
  })
})
