#!/usr/bin/env node
// `icc serve` is a long-running host: its V8 young generation is held at its start-up size before anything else
// loads, so request bodies are freed young instead of piling up into full collections (src/serve/tuning.ts).
if (process.argv[2] === 'serve') {
  const {holdHostYoungGeneration} = await import('../dist/src/serve/tuning.js')
  holdHostYoungGeneration()
}

// The commands that convert a model run with the runner's malloc settings, in a child process that has them
// (src/serve/malloc-reexec.ts).
const {MALLOC_COMMANDS, rerunWithMallocSettings} = await import('../dist/src/serve/malloc-reexec.js')
if (MALLOC_COMMANDS.has(process.argv[2])) {
  const code = await rerunWithMallocSettings(process.argv)
  if (code !== undefined) process.exit(code)
}

const {execute} = await import('@oclif/core')
await execute({dir: import.meta.url})
