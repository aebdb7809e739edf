/**
 * The README's exit-code table holds for the cases a field report found wrong (issue 20, item 3): a file that is
 * not a model exits the same from serve as from inspect-model; invoke with no server running has its own code;
 * create-connector's help lists the code of a deployment still running when --wait gives up.
 */
import assert from 'node:assert/strict'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {icc, iccJson, REPO_ROOT} from './helpers/cli.js'

describe('exit codes (README table)', function () {
  this.timeout(180_000)
  let tmp: string
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'icc-exit-'))
  })
  after(() => rm(tmp, {force: true, recursive: true}))

  it('a picture given as the model: serve exits as inspect-model does (2, UNKNOWN_MODEL_FORMAT)', async () => {
    const png = join(REPO_ROOT, 'assets', 'samples', 'grass.png')
    const inspect = await iccJson(['inspect-model', png, '--cache-dir', join(tmp, 'cache')])
    const serve = await iccJson(
      ['serve', '--model', png, '--socket', join(tmp, 's.sock'), '--cache-dir', join(tmp, 'cache')],
      {timeoutMs: 120_000},
    )
    assert.equal(inspect.exitCode, 2)
    assert.equal(inspect.json.error.code, 'UNKNOWN_MODEL_FORMAT')
    assert.equal(serve.exitCode, inspect.exitCode, serve.stderr)
    assert.equal(serve.json.error.code, inspect.json.error.code)
  })

  it('invoke with no server running: 9 SERVICE_UNREACHABLE, not 8 (the service answered an error)', async () => {
    const image = join(REPO_ROOT, 'assets', 'samples', 'sky.jpg')
    const {exitCode, json} = await iccJson(['invoke', image, '--socket', join(tmp, 'nobody.sock')])
    assert.equal(exitCode, 9)
    assert.equal(json.error.code, 'SERVICE_UNREACHABLE')
    const tcp = await icc(['invoke', image, '--url', 'http://127.0.0.1:9'])
    assert.equal(tcp.exitCode, 9)
    const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8')
    assert.match(readme, /\| 9 \| invoke: nothing listens/)
  })

  it("create-connector's help lists exit 1 for DEPLOYMENT_TIMEOUT, as the code throws", async () => {
    const help = (await icc(['create-connector', '--help'])).stdout.replaceAll(/\s+/g, ' ')
    assert.match(help, /1 the deployment was still running when --wait gave up \(DEPLOYMENT_TIMEOUT/)
    assert.match(help, /3 AWS error[^.]*DEPLOYMENT_FAILED/)
  })
})
