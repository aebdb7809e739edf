// @tier unit: needs neither ../shared nor child processes (npm run test:unit)
import assert from 'node:assert/strict'

import {createProgressBar, createSpinner, formatBytes} from '../../src/aws/progress.js'

describe('progress feedback', () => {
  it('renders bytes, percent, rate and ETA when enabled', () => {
    let t = 0
    const out: string[] = []
    const bar = createProgressBar({
      enabled: true,
      label: 'model.tar.gz',
      now: () => t,
      stream: {write: (s: string) => out.push(s)},
      total: 4 * 1024 * 1024,
    })
    t = 1000
    bar.update(1024 * 1024)
    bar.done()
    assert.match(out[0], /model\.tar\.gz 1\.0 MiB \/ 4\.0 MiB \[######-+\] 25% {2}1\.0 MiB\/s {2}ETA 3s/)
    assert.ok(out.at(-1)!.endsWith('\n'))
  })

  it('stays silent when disabled', () => {
    const out: string[] = []
    const bar = createProgressBar({enabled: false, label: 'x', stream: {write: (s: string) => out.push(s)}, total: 10})
    bar.update(5)
    bar.done()
    const spinner = createSpinner({enabled: false, stream: {write: (s: string) => out.push(s)}, text: 'waiting'})
    spinner.stop('done')
    assert.deepEqual(out, [])
  })

  it('formats sizes', () => {
    assert.equal(formatBytes(512), '512 B')
    assert.equal(formatBytes(1536), '1.5 KiB')
    assert.equal(formatBytes(3 * 1024 ** 3), '3.0 GiB')
  })
})
