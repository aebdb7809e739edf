/**
 * The status page of `icc serve` (`GET /` on the unix socket and TCP): each service (model, classes, readiness,
 * provider, memory), live counters and latency percentiles (the same data as /metrics, ./metrics.ts), recent
 * errors, and a form to drop an image and see the top-5 classes (it calls the service's invocation route).
 * Plain HTML and a little JavaScript served by icc itself (no CDN, no build step); the data is `GET /status.json`,
 * polled every 2 s; everything is written into the page as text, never as HTML.
 */
import type {FastifyInstance} from 'fastify'

export interface RecentError {
  at: string
  code: string
  message?: string
  service: string
  status: number
  transport: string
}

/** The last `size` failed requests (and failed reloads), newest last. */
export class RecentErrors {
  private readonly items: RecentError[] = []

  constructor(private readonly size = 20) {}

  add(e: Omit<RecentError, 'at'>): void {
    this.items.push({at: new Date().toISOString(), ...e})
    if (this.items.length > this.size) this.items.shift()
  }

  list(): RecentError[] {
    return [...this.items]
  }
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>icc serve</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5rem;color:#222;max-width:70rem}
h1{font-size:1.3rem}h2{font-size:1.1rem;margin-top:1.5rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}
.ok{color:#080;font-weight:bold}.bad{color:#b00;font-weight:bold}
#drop{border:2px dashed #999;padding:1rem;margin:.5rem 0}
</style>
</head>
<body>
<h1>icc serve</h1>
<p id="updated">loading…</p>
<h2>Services</h2>
<table id="services"><thead><tr><th>Service</th><th>Ready</th><th>Model</th><th>Classes</th><th>Provider</th>
<th>Memory (runner / limit, mode)</th><th>Requests</th><th>Total ms p50 / p90 / p99</th><th>Inference ms p50 / p99</th>
<th>Restarts</th></tr></thead><tbody></tbody></table>
<h2>Classify an image</h2>
<form id="classify">
<div id="drop">Drop an image here, or <input type="file" id="file" name="image" accept="image/jpeg,image/png"></div>
<label>Service <select id="service" name="service"></select></label>
<button type="submit" id="go">Classify</button>
</form>
<table id="top"><thead><tr><th>Class</th><th>Label</th><th>Probability</th></tr></thead><tbody></tbody></table>
<p id="classify-error" class="bad"></p>
<h2>Recent errors</h2>
<table id="errors"><thead><tr><th>Time</th><th>Service</th><th>Transport</th><th>Status</th><th>Code</th></tr></thead>
<tbody></tbody></table>
<script src="/status.js"></script>
</body>
</html>
`

const SCRIPT = `'use strict'
const $ = (id) => document.getElementById(id)
function row(cells) {
  const tr = document.createElement('tr')
  for (const c of cells) {
    const td = document.createElement('td')
    if (c && typeof c === 'object') { td.textContent = c.text; td.className = c.cls } else td.textContent = String(c)
    tr.append(td)
  }
  return tr
}
const pct = (l) => (l ? l.p50 + ' / ' + l.p90 + ' / ' + l.p99 : '–')
let chosen = null
async function refresh() {
  try {
    const s = await (await fetch('/status.json')).json()
    $('updated').textContent = 'Updated ' + new Date().toLocaleTimeString()
    const body = $('services').tBodies[0]
    body.replaceChildren(...s.services.map((v) => {
      const n = Object.values(v.requests).reduce((a, b) => a + b, 0)
      const req = n + ' (' + Object.entries(v.requests).map(([k, c]) => k + ' ' + c).join(', ') + ')'
      const mem = v.memory.rssKb + ' / ' + v.memory.limitKb + ' KB, ' + (v.memory.mode || '?')
      return row([v.name, v.ready ? {text: 'ready', cls: 'ok'} : {text: v.reason || 'not ready', cls: 'bad'},
        v.model.hash.slice(0, 12) + ' ' + v.model.source, v.classes, v.provider, mem, req, pct(v.latencyMs.total),
        v.latencyMs.inference ? v.latencyMs.inference.p50 + ' / ' + v.latencyMs.inference.p99 : '–',
        Object.values(v.restarts).reduce((a, b) => a + b, 0)])
    }))
    const select = $('service')
    if (select.options.length !== s.services.length) {
      select.replaceChildren(...s.services.map((v) => new Option(v.name, v.name)))
    }
    $('errors').tBodies[0].replaceChildren(
      ...s.recentErrors.reverse().map((e) => row([e.at, e.service, e.transport, e.status, e.code])))
  } catch (e) {
    $('updated').textContent = 'icc serve is not answering (' + e.message + ')'
  }
}
async function classify(file) {
  $('classify-error').textContent = ''
  const name = encodeURIComponent($('service').value)
  const r = await fetch('/services/' + name + '/invocations?top_k=5', {
    body: file, headers: {'content-type': file.type || 'application/x-image'}, method: 'POST'})
  const j = await r.json()
  if (!r.ok) { $('classify-error').textContent = j.error.code + ': ' + j.error.message; return }
  $('top').tBodies[0].replaceChildren(
    ...j.top.map((t) => row([t.index, t.label ?? '', (t.probability * 100).toFixed(1) + ' %'])))
  refresh()
}
$('file').addEventListener('change', (e) => { chosen = e.target.files[0] || null })
$('classify').addEventListener('submit', (e) => {
  e.preventDefault()
  if (chosen) classify(chosen); else $('classify-error').textContent = 'Choose or drop an image first.'
})
$('drop').addEventListener('dragover', (e) => e.preventDefault())
$('drop').addEventListener('drop', (e) => {
  e.preventDefault()
  chosen = e.dataTransfer.files[0] || null
  if (chosen) classify(chosen)
})
refresh()
setInterval(refresh, 2000)
`

const HEADERS = {
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'self'; style-src 'unsafe-inline' 'self'; img-src 'self' data:",
  'x-content-type-options': 'nosniff',
}

/** Register `GET /`, `GET /status.js` and `GET /status.json` (its data from `status()`). */
export function registerStatusPage(app: FastifyInstance, status: () => object): void {
  app.get('/', async (_req, reply) => reply.headers(HEADERS).type('text/html; charset=utf-8').send(PAGE))
  app.get('/status.js', async (_req, reply) =>
    reply.headers(HEADERS).type('text/javascript; charset=utf-8').send(SCRIPT),
  )
  app.get('/status.json', async (_req, reply) => reply.headers({'cache-control': 'no-store'}).send(status()))
}
