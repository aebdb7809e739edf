/**
 * The README's quick start, run as written (`npm run quickstart` is `bash bin/quickstart.sh`): a real `icc serve`
 * on the bundled default model, a real `icc invoke` per sample image. Each sample is named after its dominant
 * colour, and the default model must say so.
 */
import {execa} from 'execa'
import assert from 'node:assert/strict'
import {readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {REPO_ROOT} from './helpers/cli.js'
import {tempDir} from './helpers/model-fixtures.js'

describe('README quick start', function () {
  this.timeout(180_000)

  it('npm run quickstart serves the default model and names the colour of every sample image', async () => {
    const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8'))
    assert.equal(pkg.scripts.quickstart, 'bash bin/quickstart.sh')
    const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8')
    assert.match(readme, /npm ci && npm run quickstart/)

    const cache = await tempDir()
    const r = await execa('bash', ['bin/quickstart.sh'], {
      cwd: REPO_ROOT,
      env: {ICC_CACHE_DIR: cache, NO_COLOR: '1'},
      reject: false,
      timeout: 170_000,
    })
    assert.equal(r.exitCode, 0, `${r.stdout}\n${r.stderr}`)
    const socket = /ready on unix:([^\s"]+)/.exec(r.stdout)![1]
    // Nothing left running: no process still has the quick start's socket on its command line.
    const left: string[] = []
    for (const pid of (await readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
      if (cmdline.includes(socket)) left.push(`${pid}: ${cmdline.replaceAll('\0', ' ')}`)
    }

    assert.deepEqual(left, [])

    const expected: Record<string, string> = {grass: 'green', lemon: 'yellow', sky: 'blue', tomato: 'red'}
    const samples = await readdir(join(REPO_ROOT, 'assets', 'samples'))
    assert.deepEqual(samples.map((f) => f.replace(/\..*$/, '')).sort(), Object.keys(expected).sort())
    const blocks = r.stdout.split('$ icc invoke').slice(1)
    assert.equal(blocks.length, samples.length)
    for (const block of blocks) {
      const name = /samples\/(\w+)\./.exec(block)![1]
      const body = /^\[[^\]]+\]$/m.exec(block)![0]
      const probs = (JSON.parse(body) as number[]).map(Number)
      assert.equal(probs.length, 10, block)
      assert.ok(Math.abs(probs.reduce((a, b) => a + b, 0) - 1) < 1e-4, block)
      assert.match(block, new RegExp(`top class: ${expected[name]} \\(`), block)
    }
  })
})
