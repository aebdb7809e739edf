#!/usr/bin/env node
// `icc serve` is a long-running host: its V8 young generation is held at its start-up size before anything else
// loads, so request bodies are freed young instead of piling up into full collections (src/serve/tuning.ts).
if (process.argv[2] === 'serve') {
  const {holdHostYoungGeneration} = await import('../dist/src/serve/tuning.js')
  holdHostYoungGeneration()
}

const {execute} = await import('@oclif/core')
await execute({dir: import.meta.url})
