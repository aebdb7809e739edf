// @tier unit: needs neither ../shared nor child processes (npm run test:unit)
/**
 * One place creates ONNX Runtime sessions (src/model/session.ts): no other module of src/ or commands/ calls
 * `InferenceSession.create` or imports a runtime's values statically (which would also stop icc loading where
 * onnxruntime-node has no binary); src/model/index.ts is a pure barrel; src/index.ts exports the model core and the
 * host, as its comment says; the runtime asked for is checked.
 */
import assert from 'node:assert/strict'
import {readdirSync, readFileSync} from 'node:fs'
import {join, relative} from 'node:path'

import * as library from '../../src/index.js'
import {askedRuntime} from '../../src/model/session.js'
import {REPO_ROOT} from '../helpers/cli.js'

const FACTORY = 'src/model/session.ts'

function sources(dir: string): string[] {
  return readdirSync(dir, {withFileTypes: true}).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  )
}

/** `file: line` for each line of src/ and commands/ (but the factory) that `pattern` matches. */
function offenders(pattern: RegExp): string[] {
  return ['src', 'commands']
    .flatMap((dir) => sources(join(REPO_ROOT, dir)))
    .map((file) => relative(REPO_ROOT, file))
    .filter((file) => file !== FACTORY)
    .flatMap((file) =>
      readFileSync(join(REPO_ROOT, file), 'utf8')
        .split('\n')
        .filter((line) => pattern.test(line))
        .map((line) => `${file}: ${line.trim()}`),
    )
}

describe('the ONNX Runtime session factory', () => {
  it('is the only place that creates sessions or imports a runtime statically', () => {
    assert.ok(readFileSync(join(REPO_ROOT, FACTORY), 'utf8').includes('InferenceSession.create'), 'the factory')
    assert.deepEqual(offenders(/InferenceSession\.create/), [])
    assert.deepEqual(offenders(/^import (?!type)[^']*'onnxruntime-(node|web)'/), [])
  })

  it('src/model/index.ts is a pure barrel, and src/index.ts exports the model core and the host', () => {
    const code = readFileSync(join(REPO_ROOT, 'src/model/index.ts'), 'utf8')
      .replaceAll(/\/\*\*[\s\S]*?\*\//g, '')
      .split('\n')
      .filter((line) => line.trim() !== '')
    assert.deepEqual(
      code.filter((line) => !/^export (\*|\{[^}]*\}) from '\.\/[\w-]+(\/index)?\.js'$/.test(line)),
      [],
    )
    for (const name of ['loadModel', 'predict', 'createSession', 'serve', 'startHost', 'validateParameters'])
      assert.equal(typeof (library as Record<string, unknown>)[name], 'function', name)
  })

  it('takes auto, native or wasm from --runtime or ICC_RUNTIME, and names a bad value and where it came from', () => {
    const saved = process.env.ICC_RUNTIME
    try {
      delete process.env.ICC_RUNTIME
      assert.equal(askedRuntime(), 'auto')
      process.env.ICC_RUNTIME = 'wasm'
      assert.equal(askedRuntime(), 'wasm')
      assert.equal(askedRuntime('native'), 'native')
      process.env.ICC_RUNTIME = 'gpu'
      assert.throws(() => askedRuntime(), {code: 'BAD_RUNTIME', exitCode: 2, message: /ICC_RUNTIME must be one of/})
      assert.throws(() => askedRuntime('fast'), {message: /--runtime must be one of auto, native, wasm, got "fast"/})
    } finally {
      if (saved === undefined) delete process.env.ICC_RUNTIME
      else process.env.ICC_RUNTIME = saved
    }
  })
})
