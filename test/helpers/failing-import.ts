/**
 * A Node module hook (for NODE_OPTIONS=--import) that makes importing the named packages fail as a native module
 * that does not load on this machine does (e.g. sharp's prebuilt on an old glibc, onnxruntime-node on armv7):
 * how tests simulate another machine's missing binaries in a real child process.
 */
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'

/** The error message each failing import throws. */
export function injectedFailure(specifier: string): string {
  return `Cannot load the native module of "${specifier}" on this machine (injected by the test)`
}

/** Write the hook into `dir`; the environment that makes `specifiers` fail to import in a child Node process. */
export async function failingImports(dir: string, specifiers: string[]): Promise<{NODE_OPTIONS: string}> {
  const loader = join(dir, 'failing-imports-loader.mjs')
  await writeFile(
    loader,
    `const failing = new Set(${JSON.stringify(specifiers)})
export async function resolve(specifier, context, next) {
  if (failing.has(specifier)) throw new Error(${JSON.stringify(injectedFailure('SPEC'))}.replace('SPEC', specifier))
  return next(specifier, context)
}\n`,
  )
  const hook = join(dir, 'failing-imports.mjs')
  await writeFile(
    hook,
    `import {register} from 'node:module'\nregister(${JSON.stringify(pathToFileURL(loader).href)})\n`,
  )
  return {NODE_OPTIONS: `--import ${hook}`}
}
