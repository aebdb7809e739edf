/**
 * `npm run soak`: a bounded load soak of `icc serve` (loopback only; stops by itself).
 *
 * Starts the real binary, warms it up, then keeps `--concurrency` clients (default 32) sending real JPEG/PNG
 * samples over its unix socket for `--duration` seconds (default 60), and checks:
 *   - every request is answered (one answer each: the count of answers equals the count sent), and no answer is an error (503 OVERLOADED is deliberate backpressure
 *     and counted apart);
 *   - latency p50/p99/max;
 *   - RSS of host + runner after warm-up vs at the end (median of the last samples: the host's V8 heap is a
 *     sawtooth): growth must stay under 10 %;
 *   - an overload burst (4x the queue limit, at least 64, at once) is answered with 503 + Retry-After quickly, not stalled.
 * Exits 1 when a check fails. `runSoak` is also used, for a few seconds, by test/gauntlet/soak.test.ts.
 *
 * Usage: node dist/test/bench/soak.js [--concurrency 32] [--duration 60] [--warmup 10] [--model PATH]
 *        [--queue-limit 64]
 */
import {readFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {Agent} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {readRssKb} from '../../src/serve/memory.js'
import {REPO_ROOT} from '../helpers/cli.js'
import {http, runnerPid, startServe} from '../helpers/serve-host.js'
import {median, percentile} from './stats.js'

export interface SoakOptions {
  /** Conversion cache (default: a temporary one). */
  cacheDir?: string
  concurrency: number
  durationMs: number
  /** Model to serve (default: the bundled one). */
  model?: string
  queueLimit?: number
  warmupMs: number
}

export interface SoakResult {
  /** Answers by outcome: `200`, or `<status> <error code>`. */
  answers: Record<string, number>
  latencyMs: {max: number; p50: number; p99: number}
  overload: {
    answered: number
    /** 503 answers, and how many of them carried Retry-After. */
    overloaded: number
    /** The slowest 503, in ms: backpressure must be immediate. */
    slowest503Ms: number
    withRetryAfter: number
  }
  requests: number
  rssKb: {end: number; growthPct: number; start: number}
  /** Host and runner RSS every few seconds of the measured run (KB). */
  rssSamples: {hostKb: number; runnerKb: number; t: number}[]
  /** Answers that were neither 200 nor 503 OVERLOADED, plus requests answered other than exactly once. */
  unexpected: number
}

interface Answer {
  code?: string
  ms: number
  retryAfter?: string
  status: number
}

const SAMPLES = ['sky.jpg', 'grass.png', 'tomato.jpg', 'lemon.jpg'].map((f) => ({
  body: readFileSync(join(REPO_ROOT, 'assets', 'samples', f)),
  type: f.endsWith('.png') ? 'image/png' : 'image/jpeg',
}))

async function invoke(agent: Agent, socket: string, sample: (typeof SAMPLES)[number]): Promise<Answer> {
  const t0 = performance.now()
  try {
    const r = await http({agent, socket}, 'POST', '/invocations', sample.body, {'content-type': sample.type})
    let code: string | undefined
    if (r.status !== 200) {
      try {
        code = r.json<{error?: {code?: string}}>().error?.code
      } catch {
        code = 'UNPARSEABLE'
      }
    }

    return {
      code,
      ms: performance.now() - t0,
      retryAfter: r.headers['retry-after'] as string | undefined,
      status: r.status,
    }
  } catch (error) {
    return {code: `CLIENT ${(error as NodeJS.ErrnoException).code}`, ms: 0, status: 0}
  }
}

function processRssKb(pid: number | undefined): number {
  if (!pid) return 0
  return readRssKb(pid).rssKb ?? 0
}

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const dir = await mkdtemp(join(tmpdir(), 'icc-soak-'))
  const queueLimit = options.queueLimit ?? 64
  const host = await startServe(
    [
      ...(options.model ? ['--model', options.model] : []),
      '--cache-dir',
      options.cacheDir ?? join(dir, 'cache'),
      '--queue-limit',
      String(queueLimit),
      '--log-level',
      'warn',
      '--json',
    ],
    {env: {PATH: process.env.PATH ?? ''}, socket: join(dir, 'icc.sock'), timeoutMs: 120_000},
  )
  const agent = new Agent({keepAlive: true, maxSockets: Math.max(options.concurrency, queueLimit * 4)})
  try {
    const hostPid = host.proc.pid!
    const sample = async () => ({
      hostKb: processRssKb(hostPid),
      runnerKb: processRssKb(await runnerPid({agent, socket: host.socket})),
    })
    const rss = async () => {
      const s = await sample()
      return s.hostKb + s.runnerKb
    }

    const load = async (ms: number, record: Answer[] | undefined) => {
      const deadline = performance.now() + ms
      let sent = 0
      const worker = async (w: number) => {
        for (let i = w; performance.now() < deadline; i += options.concurrency) {
          sent++
          const answer = await invoke(agent, host.socket, SAMPLES[i % SAMPLES.length])
          record?.push(answer)
        }
      }

      await Promise.all(Array.from({length: options.concurrency}, async (_, w) => worker(w)))
      return sent
    }

    await load(options.warmupMs, undefined)
    const start = await rss()
    const answers: Answer[] = []
    const rssSamples: SoakResult['rssSamples'] = []
    const t0 = performance.now()
    const sampler = setInterval(
      async () => {
        rssSamples.push({...(await sample()), t: Math.round((performance.now() - t0) / 1000)})
      },
      Math.max(1000, options.durationMs / 12),
    )
    const requests = await load(options.durationMs, answers).finally(() => clearInterval(sampler))
    // the host's V8 heap is a sawtooth: compare with the median of the last samples, not one point
    const end = median([...rssSamples.slice(-3).map((r) => r.hostKb + r.runnerKb), await rss()])

    // overload: 4x the queue limit (at least 64) at once
    const burst = await Promise.all(
      Array.from({length: Math.max(64, queueLimit * 4)}, async (_, i) =>
        invoke(agent, host.socket, SAMPLES[i % SAMPLES.length]),
      ),
    )
    const overloaded = burst.filter((a) => a.status === 503 && a.code === 'OVERLOADED')

    const byOutcome: Record<string, number> = {}
    for (const a of answers) {
      const key = a.status === 200 ? '200' : `${a.status} ${a.code}`
      byOutcome[key] = (byOutcome[key] ?? 0) + 1
    }

    const unexpected =
      answers.filter((a) => a.status !== 200 && !(a.status === 503 && a.code === 'OVERLOADED')).length +
      Math.abs(requests - answers.length) +
      burst.filter((a) => a.status !== 200 && !(a.status === 503 && a.code === 'OVERLOADED')).length
    const latencies = answers
      .filter((a) => a.status === 200)
      .map((a) => a.ms)
      .sort((a, b) => a - b)
    return {
      answers: byOutcome,
      latencyMs: {max: latencies.at(-1) ?? 0, p50: percentile(latencies, 50) || 0, p99: percentile(latencies, 99) || 0},
      overload: {
        answered: burst.length,
        overloaded: overloaded.length,
        slowest503Ms: Math.max(0, ...overloaded.map((a) => a.ms)),
        withRetryAfter: overloaded.filter((a) => a.retryAfter !== undefined).length,
      },
      requests,
      rssKb: {end, growthPct: start > 0 ? ((end - start) / start) * 100 : 0, start},
      rssSamples,
      unexpected,
    }
  } finally {
    agent.destroy()
    await host.stop()
    await rm(dir, {force: true, recursive: true})
  }
}

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name)
  return i === -1 ? undefined : argv[i + 1]
}

async function main(argv: string[]): Promise<number> {
  const concurrency = Number(arg(argv, '--concurrency') ?? 32)
  const durationMs = Number(arg(argv, '--duration') ?? 60) * 1000
  const result = await runSoak({
    concurrency,
    durationMs,
    model: arg(argv, '--model'),
    queueLimit: Number(arg(argv, '--queue-limit') ?? 64),
    warmupMs: Number(arg(argv, '--warmup') ?? Math.min(20, durationMs / 6000)) * 1000,
  })
  const checks: [string, boolean][] = [
    [`unexpected answers: ${result.unexpected} (want 0)`, result.unexpected === 0],
    [`RSS growth after warm-up: ${result.rssKb.growthPct.toFixed(1)} % (want < 10 %)`, result.rssKb.growthPct < 10],
    [
      `overload burst: ${result.overload.overloaded}/${result.overload.answered} got 503, ${result.overload.withRetryAfter} with Retry-After, slowest 503 ${result.overload.slowest503Ms.toFixed(0)} ms (want 503s with Retry-After, under 1 s)`,
      result.overload.overloaded > 0 &&
        result.overload.withRetryAfter === result.overload.overloaded &&
        result.overload.slowest503Ms < 1000,
    ],
  ]
  console.log(
    `soak: concurrency ${concurrency} for ${durationMs / 1000} s: ${result.requests} requests ` +
      `(${(result.requests / (durationMs / 1000)).toFixed(1)}/s), answers ${JSON.stringify(result.answers)}`,
  )
  console.log(
    `latency p50 ${result.latencyMs.p50.toFixed(1)} ms, p99 ${result.latencyMs.p99.toFixed(1)} ms, max ${result.latencyMs.max.toFixed(1)} ms; ` +
      `RSS host+runner ${result.rssKb.start} KB -> ${result.rssKb.end} KB`,
  )
  console.log(
    `RSS (s: host+runner KB): ${result.rssSamples.map((r) => `${r.t}: ${r.hostKb}+${r.runnerKb}`).join(', ')}`,
  )
  for (const [text, ok] of checks) console.log(`${ok ? 'PASS' : 'FAIL'} ${text}`)
  return checks.every(([, ok]) => ok) ? 0 : 1
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2))
}
