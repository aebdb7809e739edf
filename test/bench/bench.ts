/**
 * `npm run bench`: the performance benchmark of `icc serve` (a benchmark, never part of `npm test`).
 *
 * Builds its own inputs (ResNet-18 and ResNet-50 with 1000 classes, photo-like JPEGs at 224x224 and 640x480),
 * then measures on this machine, side by side:
 *   - raw: the in-process pipeline, `preprocessInto` (the runner's own preprocessing, into reused tensors) + ONNX
 *     Runtime with the runner's session options, in a process with the runner's V8 tiering (tierUpServingCode):
 *     the floor that the host adds to;
 *   - unix / tcp (/ ipc when available): `icc serve` end to end, the real binary, over its unix socket, TCP, and
 *     the Greengrass IPC endpoint;
 * latency p50/p90/p99 at concurrency 1, throughput at concurrency 1, 2, 4, 16, cold start (process start ->
 * ready line) with a fresh and a warm conversion cache, the RSS of host and runner idle and under load, and the
 * cost of the exact preprocessing (the connector's OpenCV arithmetic, the default) against `--resize fast` on a
 * 640x480 and a 12 MP JPEG (decode + resize to 224x224 alone, p50).
 * Prints a table with the ratio e2e/raw per line and PASS/FAIL per target; `--out FILE` writes all of it as JSON.
 *
 * The HTTP paths (unix, TCP, and the two requests of an IPC call) are measured with a lean keep-alive client
 * (./lean-http.ts) so that the client takes as little of the machine's CPU from the server as it can; `--client
 * node` uses node:http instead, and icc's own IPC client for the IPC path (what each costs is printed).
 *
 * Usage: node dist/test/bench/bench.js [--quick] [--out FILE] [--models 18,50] [--images 224,640]
 * (or --memory: the memory table by depth, ./memory.ts; or --runtime wasm [--quick]: wasm vs native, ./runtimes.ts)
 *        [--transports unix,tcp,ipc] [--client lean|node] [--serve-arg=--flag=value ...] [--raw-levers]
 */
import {execa} from 'execa'
import {readFileSync} from 'node:fs'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {Agent, createServer} from 'node:http'
import {type AddressInfo} from 'node:net'
import {availableParallelism, loadavg, tmpdir} from 'node:os'
import {join} from 'node:path'
import * as ort from 'onnxruntime-node'
import sharp from 'sharp'

import {invokeInferenceService, parsePredictions} from '../../src/client/ipc.js'
import * as modelCore from '../../src/model/index.js'
import {cpuSessionOptions} from '../../src/model/session.js'
import {
  functionArn,
  HEADER_CLIENT_CONTEXT,
  HEADER_FUNCTION_ERROR,
  HEADER_INVOCATION_ID,
  HEADER_INVOCATION_TYPE,
  IPC_API_VERSION,
} from '../../src/serve/ipc.js'
import {readRssKb} from '../../src/serve/memory.js'
import {TensorPool} from '../../src/serve/tensor-pool.js'
import {tierUpServingCode} from '../../src/serve/tuning.js'
import {BIN} from '../helpers/cli.js'
import {http, runnerPid} from '../helpers/serve-host.js'
import {type BenchModel, buildModel, CLASSES, type Depth, photoJpeg} from './inputs.js'
import {LeanHttp} from './lean-http.js'
import {memoryBench} from './memory.js'
import {runtimeBench} from './runtimes.js'
import {median, percentile, throughput} from './stats.js'

interface Args {
  client: 'lean' | 'node'
  images: number[]
  models: Depth[]
  out?: string
  quick: boolean
  rawLevers: boolean
  serveArgs: string[]
  transports: string[]
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    client: 'lean',
    images: [224, 640],
    models: [18, 50],
    quick: false,
    rawLevers: false,
    serveArgs: [],
    transports: ['unix', 'tcp', 'ipc'],
  }
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i]
    switch (v) {
      case '--quick': {
        a.quick = true
        break
      }

      case '--raw-levers': {
        a.rawLevers = true
        break
      }

      case '--out': {
        a.out = argv[++i]
        break
      }

      case '--models': {
        a.models = argv[++i].split(',').map((s) => Number(s) as Depth)
        break
      }

      case '--client': {
        const c = argv[++i]
        if (c !== 'lean' && c !== 'node') throw new Error(`--client is lean or node, got ${c}`)
        a.client = c
        break
      }

      case '--transports': {
        a.transports = argv[++i].split(',')
        break
      }

      case '--images': {
        a.images = argv[++i].split(',').map(Number)
        break
      }

      default:
        if (v.startsWith('--serve-arg=')) a.serveArgs.push(v.slice('--serve-arg='.length))
        else throw new Error(`unknown argument ${v} (see the comment at the top of test/bench/bench.ts)`)
    }
  }

  return a
}

// ---------------------------------------------------------------- statistics

interface Latency {
  n: number
  p50: number
  p90: number
  p99: number
}

function latencyOf(samples: number[]): Latency {
  const s = [...samples].sort((x, y) => x - y)
  return {n: s.length, p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99)}
}

/**
 * Latency at concurrency 1 of several paths, taking turns in blocks of `block` requests per path, of which the
 * first `skip` are not kept: `n` kept per path.
 *
 * Why blocks and not one request per path in turn: every path of this benchmark runs its own ONNX Runtime session
 * (the raw pipeline in this process, `icc serve` in its runner), and a ResNet's weights fill the CPU's caches. In
 * strict alternation the path right after the raw pipeline always ran with the raw session's weights in the caches
 * and measured 3-4 % slower than the same path placed after a served one (both orders tried: unix 1.106 / TCP 1.073
 * x raw, then TCP 1.123 / unix 1.080). In blocks, each path is measured as it runs in service, right after its own
 * previous request, and a slow phase of a shared machine still hits every path within a second or two.
 * Before measuring, each path runs `warmMs` at concurrency 4, so the host's request path is compiled by the JIT
 * (this phase comes first in a run: without it, the host spent ~1.15 ms of CPU per request at concurrency 1
 * instead of ~0.75 ms, the compiler's background work included).
 */
async function interleavedLatency(
  runners: [string, () => Promise<unknown>][],
  n: number,
  options: {block?: number; skip?: number; warmMs?: number} = {},
): Promise<Record<string, Latency>> {
  const {block = 10, skip = 2, warmMs = 1500} = options
  const samples: Record<string, number[]> = Object.fromEntries(runners.map(([p]) => [p, []]))
  for (const [, one] of runners) await throughput(one, 4, warmMs)
  const kept = block - skip
  for (let b = 0; b < Math.ceil(n / kept); b++) {
    for (const [path, one] of runners) {
      for (let i = 0; i < block; i++) {
        const t = performance.now()
        await one()
        if (i >= skip && samples[path].length < n) samples[path].push(performance.now() - t)
      }
    }
  }

  return Object.fromEntries(Object.entries(samples).map(([p, xs]) => [p, latencyOf(xs)]))
}

async function latency(one: () => Promise<unknown>, n: number): Promise<Latency> {
  for (let i = 0; i < Math.min(5, n); i++) await one()
  const samples: number[] = []
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await one()
    samples.push(performance.now() - t)
  }

  return latencyOf(samples)
}

// ---------------------------------------------------------------- the raw pipeline

/** The runner's session options (src/serve/tuning.ts), optionally overridden for the lever study. */
async function rawSession(
  model: modelCore.LoadedModel,
  extra?: ort.InferenceSession.SessionOptions,
): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(model.onnxPath, {...cpuSessionOptions(availableParallelism()), ...extra})
}

/**
 * One image through the in-process pipeline: the runner's preprocessing into a reused input tensor (the runner's
 * tensor pool, src/serve/tensor-pool.ts, one tensor per concurrent caller), then ONNX Runtime.
 */
function rawRunner(model: modelCore.LoadedModel, session: ort.InferenceSession, jpeg: Buffer): () => Promise<void> {
  const [c, h, w] = model.inputShape
  const input = session.inputNames[0]
  const tensors = new TensorPool(c * h * w, 16)
  const options = {channels: c, contentType: 'image/jpeg', height: h, preprocessing: model.preprocessing, width: w}
  return async () => {
    const tensor = await tensors.fill((t) => modelCore.preprocessInto(jpeg, options, t, 0))
    try {
      await session.run({[input]: new ort.Tensor('float32', tensor, [1, c, h, w])})
    } finally {
      tensors.give(tensor)
    }
  }
}

// ---------------------------------------------------------------- icc serve, end to end

const IPC_TOKEN = 'icc-bench-token'
const SERVICE = 'bench'
type IpcInvoke = (
  args: {AlgoType: string; Body: Uint8Array; ContentType?: string; ServiceName: string},
  options: {port?: number; region?: string; token?: string},
) => Promise<{Body: Buffer}>

/** The Greengrass IPC endpoint: the client, and the flags that turn it on (on a free loopback port). */
async function ipcSupport(): Promise<{flags: string[]; invoke: IpcInvoke; port: number}> {
  const port = await new Promise<number>((resolve, reject) => {
    const srv = createServer()
    srv.listen(0, '127.0.0.1', () => {
      const {port: p} = srv.address() as AddressInfo
      srv.close(() => resolve(p))
    })
    srv.on('error', reject)
  })
  return {flags: ['--ipc-port', String(port), '--ipc-auth-token', IPC_TOKEN], invoke: invokeInferenceService, port}
}

interface Served {
  cacheDir: string
  coldMs: number
  hostPid: number
  runnerPid(): Promise<number | undefined>
  socket: string
  stop(): Promise<void>
  tcpPort: number
}

async function startServe(model: BenchModel, dir: string, cacheDir: string, extra: string[]): Promise<Served> {
  const socket = join(dir, `icc-${Math.random().toString(36).slice(2, 8)}.sock`)
  const t0 = performance.now()
  const proc = execa(
    process.execPath,
    [
      BIN,
      'serve',
      '--model',
      model.servePath,
      '--socket',
      socket,
      '--port',
      '0',
      '--cache-dir',
      cacheDir,
      '--log-level',
      'warn',
      '--queue-limit',
      '256',
      '--service-name',
      SERVICE,
      // the limit is another feature (its cost: docs/performance.md, "Memory"): here it must not get in
      // the way of the measurements
      ...(extra.some((a) => a.startsWith('--memory-limit-kb')) ? [] : ['--memory-limit-kb', '2000000']),
      ...extra,
    ],
    {
      buffer: false,
      env: {AWS_CONTAINER_AUTHORIZATION_TOKEN: IPC_TOKEN, AWS_REGION: 'us-east-1', NO_COLOR: '1'},
      reject: false,
    },
  )
  let out = ''
  let err = ''
  proc.stderr?.on('data', (c: Buffer) => {
    err += c.toString()
  })
  const coldMs = await new Promise<number>((resolve, reject) => {
    proc.stdout?.on('data', (c: Buffer) => {
      out += c.toString()
      if (/icc serve: ready on/.test(out)) resolve(performance.now() - t0)
    })
    proc.then((r) => reject(new Error(`icc serve exited (${r.exitCode}) before ready:\n${out}\n${err}`)))
  })
  const port = Number(/http:\/\/127\.0\.0\.1:(\d+)/.exec(out)?.[1])
  const served: Served = {
    cacheDir,
    coldMs,
    hostPid: proc.pid!,
    runnerPid: async () => runnerPid({agent, socket}),
    socket,
    async stop() {
      proc.kill('SIGTERM')
      const t = setTimeout(() => proc.kill('SIGKILL'), 15_000)
      await proc
      clearTimeout(t)
    },
    tcpPort: port,
  }
  return served
}

const agent = new Agent({keepAlive: true, maxSockets: 64})

const leanClients: LeanHttp[] = []

/**
 * One invocation over HTTP with the chosen client. Every answer's status and shape (`[...]`) is checked; the
 * first one is read whole (a JSON array of one number per class) before the path is measured (see main).
 */
function httpRunner(
  target: {socket?: string; url?: string},
  jpeg: Buffer,
  client: Args['client'],
): () => Promise<Buffer | string> {
  if (client === 'node') {
    return async () => {
      const r = await http({...target, agent}, 'POST', '/invocations', jpeg, {'content-type': 'image/jpeg'})
      if (r.status !== 200) throw new Error(`icc serve answered ${r.status}: ${r.body.slice(0, 300)}`)
      return r.body
    }
  }

  const url = target.url ? new URL(target.url) : undefined
  const lean = new LeanHttp(url ? {host: url.hostname, port: Number(url.port)} : {socket: target.socket!})
  leanClients.push(lean)
  const post = lean.poster('/invocations', jpeg, 'image/jpeg')
  return async () => {
    const r = await post()
    if (r.status !== 200 || r.body[0] !== 0x5b || r.body.at(-1) !== 0x5d) {
      throw new Error(`icc serve answered ${r.status}: ${r.body.toString('utf8', 0, 300)}`)
    }

    return r.body
  }
}

/** The first answer of a path, read whole (by icc's client parser): one probability per class. */
function checkAnswer(body: Buffer | string, classes: number): void {
  const n = parsePredictions(body).length
  if (n !== classes) throw new Error(`${n} probabilities instead of ${classes}: ${String(body).slice(0, 200)}`)
}

/** CPU time (user + system) of a process so far, in ms, from /proc/<pid>/stat. */
function cpuMs(pid?: number): number {
  if (!pid) return 0
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100 // utime, stime in clock ticks (100/s on Linux)
  } catch {
    return 0
  }
}

/**
 * One call through the Greengrass IPC endpoint: POST the image, GET the result by its invocation id. With the lean
 * client both requests are written by hand (the headers the ML SDK sends); with `--client node`, icc's own
 * TypeScript client (`invokeInferenceService`, node:http) makes the call. Returns the connector body `[...]`.
 */
function ipcRunner(
  ipc: {invoke: IpcInvoke; port: number},
  jpeg: Buffer,
  client: Args['client'],
): () => Promise<Buffer> {
  if (client === 'node') {
    return async () => {
      const r = await ipc.invoke(
        {AlgoType: 'image-classification', Body: jpeg, ContentType: 'image/jpeg', ServiceName: SERVICE},
        {port: ipc.port, region: 'us-east-1', token: IPC_TOKEN},
      )
      if (r.Body.length < 2) throw new Error('empty IPC answer')
      return r.Body
    }
  }

  const lean = new LeanHttp({host: '127.0.0.1', port: ipc.port})
  leanClients.push(lean)
  const path = `/${IPC_API_VERSION}/functions/${functionArn('us-east-1', 'image-classification', SERVICE)}`
  const context = Buffer.from(JSON.stringify({custom: {'Content-Type': 'image/jpeg'}})).toString('base64')
  const postHead = Buffer.from(
    `POST ${path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${IPC_TOKEN}\r\n${HEADER_CLIENT_CONTEXT}: ${context}\r\n` +
      `${HEADER_INVOCATION_TYPE}: RequestResponse\r\nContent-Type: application/octet-stream\r\nContent-Length: ${jpeg.length}\r\n\r\n`,
    'latin1',
  )
  const getHead = `GET ${path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${IPC_TOKEN}\r\n${HEADER_INVOCATION_ID}: `
  const invocationId = new RegExp(`\r\n${HEADER_INVOCATION_ID}: *([^\r]+)`, 'i')
  const functionError = new RegExp(`\r\n${HEADER_FUNCTION_ERROR}:`, 'i')
  return async () => {
    const posted = await lean.send(postHead, jpeg)
    const id = invocationId.exec(posted.head)?.[1]
    if (posted.status !== 202 || !id) {
      throw new Error(
        `the IPC endpoint answered the POST with ${posted.status}: ${posted.body.toString('utf8', 0, 300)}`,
      )
    }

    const r = await lean.send(Buffer.from(`${getHead}${id}\r\n\r\n`, 'latin1'))
    if (r.status !== 200 || functionError.test(r.head)) {
      throw new Error(`the IPC endpoint answered the GET with ${r.status}: ${r.body.toString('utf8', 0, 300)}`)
    }

    const reply = JSON.parse(r.body.toString('utf8')) as {Body?: unknown}
    if (typeof reply.Body !== 'string' || !reply.Body.startsWith('[')) {
      throw new Error(`the IPC reply has no connector Body: ${r.body.toString('utf8', 0, 300)}`)
    }

    return Buffer.from(reply.Body, 'latin1')
  }
}

/**
 * Host + runner RSS sampled every 100 ms while `work` runs: the highest sum seen, and its parts; and the CPU time
 * each of host, runner and this (client) process spent meanwhile.
 */
async function rssDuring<T>(
  pids: {host: number; runner?: number},
  work: Promise<T>,
): Promise<{
  cpuMs: {client: number; host: number; runner: number}
  hostKb: number
  result: T
  runnerKb: number
  totalKb: number
}> {
  const cpu0 = {client: process.cpuUsage(), host: cpuMs(pids.host), runner: cpuMs(pids.runner)}
  let best = {hostKb: 0, runnerKb: 0, totalKb: 0}
  const sample = () => {
    const h = readRssKb(pids.host).rssKb ?? 0
    const r = pids.runner ? (readRssKb(pids.runner).rssKb ?? 0) : 0
    if (h + r > best.totalKb) best = {hostKb: h, runnerKb: r, totalKb: h + r}
  }

  const timer = setInterval(sample, 100)
  try {
    const result = await work
    sample()
    const client = process.cpuUsage(cpu0.client)
    const cpu = {
      client: (client.user + client.system) / 1000,
      host: cpuMs(pids.host) - cpu0.host,
      runner: cpuMs(pids.runner) - cpu0.runner,
    }
    return {...best, cpuMs: cpu, result}
  } finally {
    clearInterval(timer)
  }
}

// ---------------------------------------------------------------- the run

interface Row {
  concurrencies: Record<string, number>
  /** CPU ms per request of host, runner and the benchmark client, at concurrency 4. */
  cpuPerRequestMs?: {client: number; host: number; runner: number}
  image: string
  latency: Latency
  model: string
  path: string
  ratioLatencyP50?: number
  ratioThroughput?: Record<string, number>
}

const fmt = (v: number, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : '-')

async function main(): Promise<void> {
  // --memory: the memory table by depth instead (./memory.ts)
  if (process.argv.includes('--memory')) return memoryBench(process.argv.slice(2))
  // --runtime wasm: the WebAssembly runtime against the native one (./runtimes.ts)
  if (process.argv.includes('--runtime')) return runtimeBench(process.argv.slice(2))
  const args = parseArgs(process.argv.slice(2))
  // the raw pipeline's JavaScript (and the clients') tiers up as the runner's does, so the floor stays what the
  // runner does: at the runner's V8 setting, not V8's default
  tierUpServingCode()
  const cfg = args.quick
    ? {coldRuns: 1, latencyN: 40, latencyWarmMs: 500, throughputMs: 1500, windows: 2}
    : {coldRuns: 3, latencyN: 200, latencyWarmMs: 1500, throughputMs: 2000, windows: 5}
  const concurrencies = [1, 2, 4, 16]
  const dir = await mkdtemp(join(tmpdir(), 'icc-bench-'))
  const started = Date.now()
  const log = (s: string) => process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0)}s] ${s}\n`)
  const report: Record<string, any> = {
    cpus: availableParallelism(),
    date: new Date().toISOString(),
    loadavgAtStart: loadavg(),
    mode: args.quick ? 'quick' : 'full',
    node: process.version,
    ort: ort.env.versions?.common,
    rows: [] as Row[],
    serveArgs: args.serveArgs,
  }
  try {
    log(`building inputs in ${dir}`)
    const images: Record<string, Buffer> = {}
    for (const size of args.images) {
      const [w, h] = size === 224 ? [224, 224] : [640, 480]
      images[`${w}x${h}`] = await photoJpeg(w, h, size)
    }

    report.images = Object.fromEntries(Object.entries(images).map(([k, v]) => [k, {bytes: v.length}]))
    log('preprocessing: exact vs fast')
    report.preprocessing = await preprocessingCost(args.quick)
    const models: BenchModel[] = []
    for (const depth of args.models) models.push(await buildModel(dir, depth))
    report.models = models.map((m) => ({depth: m.depth, origin: m.origin}))

    const rows = report.rows as Row[]
    const ipc = args.transports.includes('ipc') ? await ipcSupport() : undefined
    report.ipc = ipc ? {port: ipc.port} : 'not selected'
    if (!ipc) log('ipc transport not selected (--transports): no ipc column')
    report.coldStart = {}
    report.rss = {}
    for (const m of models) {
      const name = `resnet${m.depth}`
      const loaded = await modelCore.loadModel(m.servePath, {cacheDir: join(dir, 'raw-cache')})
      // ResNet-50 is there for memory; its timings are measured on the larger image only in quick mode
      const imageNames = args.quick && m.depth === 50 ? Object.keys(images).slice(-1) : Object.keys(images)

      if (args.rawLevers) {
        await rawLevers(loaded, images[imageNames.at(-1)!], cfg, log)
        continue
      }

      // 1. cold start: fresh cache, then warm cache; the last warm start is the one measured below
      log(`${name}: cold starts`)
      const cold: {fresh: number[]; warm: number[]} = {fresh: [], warm: []}
      const warmCache = join(dir, `cache-${name}`)
      for (let i = 0; i < cfg.coldRuns; i++) {
        const fresh = await startServe(m, dir, join(dir, `cache-${name}-fresh-${i}`), args.serveArgs)
        cold.fresh.push(fresh.coldMs)
        await fresh.stop()
      }

      let served = await startServe(m, dir, warmCache, args.serveArgs)
      await served.stop()
      for (let i = 0; i < cfg.coldRuns; i++) {
        const last = i === cfg.coldRuns - 1
        served = await startServe(m, dir, warmCache, [...args.serveArgs, ...(last && ipc ? ipc.flags : [])])
        cold.warm.push(served.coldMs)
        if (!last) await served.stop()
      }

      report.coldStart[name] = {freshCacheMs: median(cold.fresh), runs: cold, warmCacheMs: median(cold.warm)}
      log(`  fresh cache ${fmt(median(cold.fresh), 0)} ms, warm cache ${fmt(median(cold.warm), 0)} ms`)

      // 2. raw and end to end, side by side
      const session = await rawSession(loaded)
      const runnerPid = await served.runnerPid()
      const pids = {host: served.hostPid, runner: runnerPid}
      const idle = {
        hostKb: readRssKb(pids.host).rssKb ?? 0,
        runnerKb: runnerPid ? (readRssKb(runnerPid).rssKb ?? 0) : 0,
      }
      let underLoad = {hostKb: 0, runnerKb: 0, totalKb: 0}
      const targets: [string, {socket?: string; url?: string}][] = [
        ['unix', {socket: served.socket}],
        ['tcp', {url: `http://127.0.0.1:${served.tcpPort}`}],
      ]
      if (ipc) targets.push(['ipc', {}])
      const chosen = targets.filter(([t]) => args.transports.includes(t))
      const paths = args.quick && m.depth === 50 ? chosen.slice(0, 1) : chosen
      for (const img of imageNames) {
        const runners: [string, () => Promise<unknown>][] = [['raw', rawRunner(loaded, session, images[img])]]
        for (const [path, target] of paths) {
          const one =
            path === 'ipc' ? ipcRunner(ipc!, images[img], args.client) : httpRunner(target, images[img], args.client)
          try {
            checkAnswer(await one(), CLASSES)
            runners.push([path, one])
          } catch (error) {
            report.errors = {...report.errors, [path]: (error as Error).message}
            log(`  ${path} failed, column left out: ${(error as Error).message}`)
          }
        }

        // latency: the paths take turns block by block (see interleavedLatency), so a neighbour's burst hits them all
        log(`${name} ${img}: latency at concurrency 1 (${runners.map(([p]) => p).join(', ')}, in blocks in turn)`)
        const lat = await interleavedLatency(runners, cfg.latencyN, {warmMs: cfg.latencyWarmMs})
        // throughput: window by window, the paths take turns at each concurrency, and every round goes through
        // all the concurrencies; each (path, concurrency) keeps its median window. A slow phase of a shared machine
        // thus hits every path and every concurrency alike (the c=4 target compares with the raw pipeline's best
        // concurrency, which must not come from a quieter minute than the windows it is compared with)
        log(`${name} ${img}: throughput at concurrency ${concurrencies.join(', ')} (${cfg.windows} rounds)`)
        const rates: Record<string, Record<number, number[]>> = {}
        const cpu: Record<string, {calls: number; client: number; host: number; runner: number}> = {}
        for (let round = 0; round < cfg.windows; round++) {
          for (const c of concurrencies) {
            for (const [path, one] of runners) {
              const r = await rssDuring(pids, throughput(one, c, cfg.throughputMs))
              rates[path] ??= {}
              rates[path][c] ??= []
              rates[path][c].push(r.result.rate)
              if (path === 'raw') continue
              if (c === 4) {
                cpu[path] ??= {calls: 0, client: 0, host: 0, runner: 0}
                const acc = cpu[path]
                acc.calls += r.result.calls
                acc.client += r.cpuMs.client
                acc.host += r.cpuMs.host
                acc.runner += r.cpuMs.runner
              }

              if (r.totalKb > underLoad.totalKb) {
                underLoad = {hostKb: r.hostKb, runnerKb: r.runnerKb, totalKb: r.totalKb}
              }
            }
          }
        }

        let raw: Row | undefined
        for (const [path] of runners) {
          const row: Row = {concurrencies: {}, image: img, latency: lat[path], model: name, path}
          for (const c of concurrencies) row.concurrencies[c] = median(rates[path][c])
          const acc = cpu[path]
          if (acc) {
            row.cpuPerRequestMs = {
              client: acc.client / acc.calls,
              host: acc.host / acc.calls,
              runner: acc.runner / acc.calls,
            }
          }

          if (raw) {
            row.ratioLatencyP50 = row.latency.p50 / raw.latency.p50
            row.ratioThroughput = Object.fromEntries(
              concurrencies.map((c) => [c, row.concurrencies[c] / raw!.concurrencies[c]]),
            )
          } else raw = row

          rows.push(row)
          log(
            `  ${path}: p50 ${fmt(row.latency.p50)} ms${row.ratioLatencyP50 ? ` (x${fmt(row.ratioLatencyP50, 2)})` : ''}, ` +
              `${JSON.stringify(row.concurrencies)}` +
              (row.cpuPerRequestMs ? `, cpu/request at c=4 ${JSON.stringify(row.cpuPerRequestMs)}` : ''),
          )
        }
      }

      await session.release()
      report.rss[name] = {
        idle: {...idle, totalKb: idle.hostKb + idle.runnerKb},
        runnerPeakKb: runnerPid ? readRssKb(runnerPid).hwmKb : undefined,
        underLoad,
      }
      await served.stop()
    }

    if (!args.rawLevers) {
      report.targets = targets(report)
      printTable(report)
    }
  } finally {
    agent.destroy()
    for (const c of leanClients) c.close()
    report.loadavgAtEnd = loadavg()
    report.seconds = Math.round((Date.now() - started) / 1000)
    if (args.out) await writeFile(args.out, JSON.stringify(report, null, 2) + '\n')
    await rm(dir, {force: true, recursive: true})
  }
}

function targets(report: Record<string, any>): {name: string; pass: boolean; value: string}[] {
  const rows = report.rows as Row[]
  const out: {name: string; pass: boolean; value: string}[] = []
  for (const r of rows.filter((x) => x.model === 'resnet18' && x.path !== 'raw')) {
    const raw = rows.find((x) => x.model === r.model && x.path === 'raw' && x.image === r.image)!
    const best = Math.max(...Object.values(raw.concurrencies))
    out.push(
      {
        name: `resnet18 ${r.path} ${r.image}: e2e p50 at c=1 <= 1.10 x raw p50`,
        pass: r.latency.p50 <= 1.1 * raw.latency.p50,
        value: `${fmt(r.latency.p50)} ms vs ${fmt(raw.latency.p50)} ms (x${fmt(r.latency.p50 / raw.latency.p50, 3)})`,
      },
      {
        name: `resnet18 ${r.path} ${r.image}: throughput at c=4 >= 0.95 x raw best`,
        pass: r.concurrencies[4] >= 0.95 * best,
        value: `${fmt(r.concurrencies[4])}/s vs ${fmt(best)}/s (x${fmt(r.concurrencies[4] / best, 3)})`,
      },
    )
  }

  const cold = report.coldStart?.resnet18
  if (cold) {
    out.push({
      name: 'resnet18: cold start with a warm conversion cache <= 2 s',
      pass: cold.warmCacheMs <= 2000,
      value: `${fmt(cold.warmCacheMs, 0)} ms`,
    })
  }

  const rss = report.rss?.resnet50
  if (rss) {
    out.push({
      name: 'resnet50: host + runner RSS under load <= 400 MB',
      pass: rss.underLoad.totalKb <= 400 * 1024,
      value: `${fmt(rss.underLoad.totalKb / 1024)} MB (host ${fmt(rss.underLoad.hostKb / 1024)} + runner ${fmt(rss.underLoad.runnerKb / 1024)})`,
    })
  }

  return out
}

function printTable(report: Record<string, any>): void {
  const lines: string[] = []
  const pad = (s: string, n: number) => s.padEnd(n)
  const lpad = (s: string, n: number) => s.padStart(n)
  lines.push(
    `icc bench (${report.mode}) on ${report.cpus} CPUs, node ${report.node}, load avg at start ${report.loadavgAtStart.map((x: number) => x.toFixed(2)).join(' ')}`,
    '',
    `${pad('model', 9)}${pad('path', 6)}${pad('image', 9)}${lpad('p50', 8)}${lpad('p90', 8)}${lpad('p99', 8)}${lpad('x raw', 7)}` +
      `${lpad('c=1/s', 8)}${lpad('c=2/s', 8)}${lpad('c=4/s', 8)}${lpad('c=16/s', 8)}   x raw (c=1 2 4 16)`,
  )
  for (const r of report.rows as Row[]) {
    lines.push(
      `${pad(r.model, 9)}${pad(r.path, 6)}${pad(r.image, 9)}${lpad(fmt(r.latency.p50), 8)}${lpad(fmt(r.latency.p90), 8)}` +
        `${lpad(fmt(r.latency.p99), 8)}${lpad(r.ratioLatencyP50 ? fmt(r.ratioLatencyP50, 2) : '', 7)}` +
        [1, 2, 4, 16].map((c) => lpad(fmt(r.concurrencies[c]), 8)).join('') +
        (r.ratioThroughput ? `   ${[1, 2, 4, 16].map((c) => fmt(r.ratioThroughput![c], 2)).join(' ')}` : ''),
    )
  }

  lines.push('', 'cold start (process start -> ready line), median:')
  for (const [name, c] of Object.entries(report.coldStart as Record<string, any>)) {
    lines.push(`  ${name}: fresh cache ${fmt(c.freshCacheMs, 0)} ms, warm cache ${fmt(c.warmCacheMs, 0)} ms`)
  }

  lines.push('', 'preprocessing (decode + resize to 224x224, p50 ms): exact (default) vs --resize fast')
  for (const [image, c] of Object.entries((report.preprocessing ?? {}) as Record<string, any>)) {
    lines.push(`  ${image}: exact ${fmt(c.exactMs)} ms, fast ${fmt(c.fastMs)} ms (x${fmt(c.exactMs / c.fastMs, 2)})`)
  }

  lines.push('', 'RSS (MB): host + runner')
  for (const [name, r] of Object.entries(report.rss as Record<string, any>)) {
    const mb = (kb: number) => fmt(kb / 1024)
    lines.push(
      `  ${name}: idle ${mb(r.idle.hostKb)} + ${mb(r.idle.runnerKb)} = ${mb(r.idle.totalKb)}; ` +
        `under load ${mb(r.underLoad.hostKb)} + ${mb(r.underLoad.runnerKb)} = ${mb(r.underLoad.totalKb)}; ` +
        `runner peak (VmHWM: the load, then serving batches up to c=16) ${mb(r.runnerPeakKb ?? Number.NaN)}`,
    )
  }

  // a quick run's windows are too few and too short (the host not fully warmed up) to decide a target: its verdicts
  // are marked as indications; two quick runs missed a concurrency-4 target that every full run since met
  const quick = report.mode === 'quick'
  lines.push('', quick ? 'targets (quick run: indications only; the full run decides):' : 'targets:')
  for (const t of report.targets as {name: string; pass: boolean; value: string}[]) {
    lines.push(`  ${t.pass ? 'PASS' : 'FAIL'}${quick ? '?' : ' '} ${t.name}: ${t.value}`)
  }

  process.stdout.write(lines.join('\n') + '\n')
}

/**
 * Decode + resize to 224x224 alone, exact (the default) and fast taking turns, on a 640x480 and a 12 MP (4000x3000)
 * photo-like JPEG: p50 ms of each and their ratio.
 */
async function preprocessingCost(quick: boolean): Promise<Record<string, {exactMs: number; fastMs: number}>> {
  const out: Record<string, {exactMs: number; fastMs: number}> = {}
  for (const [w, h, n] of [
    [640, 480, quick ? 20 : 60],
    [4000, 3000, quick ? 4 : 10],
  ]) {
    const jpeg = w > 1000 ? await largePhotoJpeg(w, h) : await photoJpeg(w, h, 12)
    const times: Record<'exact' | 'fast', number[]> = {exact: [], fast: []}
    for (let i = 0; i <= n; i++) {
      for (const resize of ['exact', 'fast'] as const) {
        const t0 = performance.now()
        await modelCore.preprocessImage(jpeg, {channels: 3, height: 224, resize, width: 224})
        if (i > 0) times[resize].push(performance.now() - t0) // the first turn warms up
      }
    }

    out[`${w}x${h}`] = {exactMs: median(times.exact), fastMs: median(times.fast)}
  }

  return out
}

/** A camera-sized photo-like JPEG, made in a second: a 1000x750 one scaled up, with sensor-like noise added. */
async function largePhotoJpeg(width: number, height: number): Promise<Buffer> {
  const raw = await sharp(await photoJpeg(1000, 750, 12))
    .resize(width, height)
    .raw()
    .toBuffer()
  let s = 7
  for (let i = 0; i < raw.length; i++) {
    s = (s * 1_103_515_245 + 12_345) % 2_147_483_648
    raw[i] = Math.max(0, Math.min(255, raw[i] + ((s >>> 26) - 16)))
  }

  return sharp(raw, {raw: {channels: 3, height, width}})
    .jpeg({quality: 88})
    .toBuffer()
}

/** Lever study: the raw pipeline under different ONNX Runtime session options. */
async function rawLevers(
  model: modelCore.LoadedModel,
  jpeg: Buffer,
  cfg: {latencyN: number; throughputMs: number},
  log: (s: string) => void,
): Promise<void> {
  const variants: [string, ort.InferenceSession.SessionOptions | undefined][] = [
    ['runner options (src/serve/tuning.ts)', undefined],
    ['+ intra-op spinning on', {extra: {session: {intra_op: {allow_spinning: '1'}}}}],
    ['+ intra-op threads 1', {intraOpNumThreads: 1}],
    ['+ no CPU arena, no memory pattern', {enableCpuMemArena: false, enableMemPattern: false}],
    ['+ parallel executor, 2 inter-op threads', {executionMode: 'parallel', interOpNumThreads: 2}],
    ['+ graph optimisation extended', {graphOptimizationLevel: 'extended'}],
    ['+ graph optimisation basic', {graphOptimizationLevel: 'basic'}],
  ]
  for (const [label, opts] of variants) {
    const session = await rawSession(model, opts)
    const one = rawRunner(model, session, jpeg)
    const lat = await latency(one, cfg.latencyN)
    const t1 = (await throughput(one, 1, cfg.throughputMs)).rate
    const t4 = (await throughput(one, 4, cfg.throughputMs)).rate
    log(`lever ${label}: p50 ${fmt(lat.p50)} ms, c=1 ${fmt(t1)}/s, c=4 ${fmt(t4)}/s`)
    await session.release()
  }
}

await main()
