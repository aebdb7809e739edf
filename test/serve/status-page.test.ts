/**
 * The status page of `icc serve` in a real headless browser (Debian's chromium driven by playwright-core): the real
 * host on the bundled default model, the page loads and shows the service, and dropping a bundled sample image into
 * its form shows the sample's colour as the top class. Also served on the unix socket, with its data.
 */
import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {type Browser, chromium} from 'playwright-core'

import {REPO_ROOT} from '../helpers/cli.js'
import {http, type RunningHost, startServe} from '../helpers/serve-host.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

describe('icc serve status page (headless chromium)', function () {
  this.timeout(240_000)
  let dir: string
  let host: RunningHost
  let browser: Browser | undefined

  before(async function () {
    if (!existsSync(CHROMIUM)) {
      console.log(`    skipped: no chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`)
      this.skip()
    }

    dir = await mkdtemp(join(tmpdir(), 'icc-status-'))
    host = await startServe(['--port', '0'], {
      env: {ICC_CACHE_DIR: join(dir, 'cache')},
      socket: join(dir, 'icc.sock'),
      timeoutMs: 200_000,
    })
    browser = await chromium.launch({args: ['--no-sandbox'], executablePath: CHROMIUM, headless: true})
  })

  after(async () => {
    await browser?.close()
    await host?.stop()
    if (dir) await rm(dir, {force: true, recursive: true})
  })

  it('loads, shows the service, and classifies a dropped sample image (top class: its colour)', async () => {
    const page = await browser!.newPage()
    const failed: string[] = []
    page.on('requestfailed', (r) => failed.push(r.url()))
    page.on('pageerror', (e) => failed.push(e.message))
    await page.goto(host.tcpUrl!)
    await page.locator('#services tbody tr').first().waitFor()
    const cells = await page.locator('#services tbody tr').first().locator('td').allTextContents()
    assert.equal(cells[0], 'imageClassification')
    assert.equal(cells[1], 'ready')
    assert.equal(cells[3], '10') // classes

    await page.setInputFiles('#file', join(REPO_ROOT, 'assets', 'samples', 'sky.jpg'))
    await page.click('#go')
    await page.locator('#top tbody tr').first().waitFor()
    const rows = await page.locator('#top tbody tr').allTextContents()
    assert.equal(rows.length, 5)
    assert.match(rows[0], /blue/)

    // the counters move: the page's next refresh shows the request. A locator filter, not waitForFunction: that
    // one evaluates its predicate with eval in the page, which the page's CSP (no 'unsafe-eval') rightly refuses.
    await page.locator('#services tbody tr', {hasText: /OK 1/}).first().waitFor()
    assert.deepEqual(failed, [])
    await page.close()
  })

  it('is served on the unix socket too, with its data at /status.json and a content security policy', async () => {
    const socket = {socket: host.socket}
    const page = await http(socket, 'GET', '/')
    assert.equal(page.status, 200)
    assert.match(String(page.headers['content-type']), /text\/html/)
    assert.match(String(page.headers['content-security-policy']), /default-src 'self'/)
    assert.doesNotMatch(page.body, /https?:\/\//) // nothing from elsewhere
    await http(socket, 'POST', '/invocations', Buffer.from('not an image'), {'content-type': 'image/jpeg'})
    const data = (await http(socket, 'GET', '/status.json')).json()
    const [s] = data.services
    assert.equal(s.name, 'imageClassification')
    assert.equal(s.classes, 10)
    assert.ok(s.requests.OK >= 1)
    assert.ok(s.latencyMs.total.p50 > 0)
    assert.ok(s.latencyMs.total.p99 >= s.latencyMs.total.p50)
    assert.ok(s.memory.rssKb > 0)
    assert.equal(data.recentErrors.at(-1).code, 'BAD_IMAGE')
  })
})
