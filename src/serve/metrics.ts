/**
 * Prometheus metrics of `icc serve` (text exposition format 0.0.4, served at GET /metrics):
 *
 * - icc_requests_total{service,outcome}: invocations by outcome (OK or the error code), every answer counted once:
 *   those of the services, of the host (UNKNOWN_SERVICE, OVERLOADED...) and of the routes (415, 400, 413, 404);
 *   `service=""` when the request reached no service of this host (an unknown name, a path that is no route);
 * - icc_request_duration_seconds{service,phase}: histograms for queue, decode, inference and total time;
 * - icc_batched_requests_total{service,batch_size}: successful requests by the size of the ONNX Runtime run that
 *   served them (dynamic batching, `--max-batch`);
 * - icc_runner_restarts_total{service,reason}: runner restarts (crash, timeout, memory);
 * - icc_runner_rss_bytes{service}: the runner's resident memory; icc_service_ready / icc_queue_depth gauges.
 */
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
const PHASES = ['queue', 'decode', 'inference', 'total'] as const

interface Histogram {
  buckets: number[]
  count: number
  sum: number
}

/** The q-quantile of a histogram in ms, linear within the bucket it falls in (the last finite bound beyond). */
function quantileMs(h: Histogram, q: number): number {
  const rank = q * h.count
  let below = 0
  for (const [i, le] of BUCKETS.entries()) {
    if (h.buckets[i] >= rank) {
      const lower = i === 0 ? 0 : BUCKETS[i - 1]
      const inBucket = h.buckets[i] - below
      const seconds = inBucket === 0 ? le : lower + ((le - lower) * (rank - below)) / inBucket
      return Math.round(seconds * 100_000) / 100
    }

    below = h.buckets[i]
  }

  return BUCKETS.at(-1)! * 1000
}

const esc = (v: string) => v.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n')

/** A counter labelled by service and one more label: counts, and their lines in the exposition format. */
class ServiceCounter {
  private readonly counts = new Map<string, number>()

  constructor(
    private readonly name: string,
    private readonly help: string,
    private readonly label: string,
  ) {}

  /** The counts of one service, by label value. */
  of(service: string): Record<string, number> {
    const out: Record<string, number> = {}
    for (const [key, n] of this.counts) {
      const [s, value] = key.split('\u0000')
      if (s === service) out[value] = n
    }

    return out
  }

  add(service: string, value: number | string): void {
    const key = `${service}\u0000${value}`
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1)
  }

  render(lines: string[]): void {
    lines.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`)
    for (const [key, n] of this.counts) {
      const [service, value] = key.split('\u0000')
      lines.push(`${this.name}{service="${esc(service)}",${this.label}="${esc(value)}"} ${n}`)
    }
  }
}

export class Metrics {
  private batches = new ServiceCounter(
    'icc_batched_requests_total',
    'Successful requests by the number of images in the ONNX Runtime run that served them.',
    'batch_size',
  )
  private histograms = new Map<string, Histogram>()
  private outcomes = new ServiceCounter(
    'icc_requests_total',
    'Inference requests by outcome (OK or the error code); service="" when no service of this host was reached.',
    'outcome',
  )
  private restarts = new ServiceCounter('icc_runner_restarts_total', 'Runner restarts by reason.', 'reason')
  private rssKb = new Map<string, number>()

  outcome(
    service: string,
    outcome: string,
    timings?: {decodeMs: number; inferenceMs: number; queueMs: number; totalMs: number},
    batchSize = 1,
  ): void {
    this.outcomes.add(service, outcome)
    if (!timings) return
    this.batches.add(service, batchSize)
    const ms = {
      decode: timings.decodeMs,
      inference: timings.inferenceMs,
      queue: timings.queueMs,
      total: timings.totalMs,
    }
    for (const phase of PHASES) this.observe(`${service}\u0000${phase}`, ms[phase] / 1000)
  }

  render(gauges: {name: string; queueDepth: number; ready: boolean}[]): string {
    const lines: string[] = []
    this.outcomes.render(lines)
    lines.push(
      '# HELP icc_request_duration_seconds Time per phase of successful requests: queue, decode, inference, total.',
      '# TYPE icc_request_duration_seconds histogram',
    )
    for (const [key, h] of this.histograms) {
      const [service, phase] = key.split('\u0000')
      const labels = `service="${esc(service)}",phase="${phase}"`
      for (const [i, le] of BUCKETS.entries()) {
        lines.push(`icc_request_duration_seconds_bucket{${labels},le="${le}"} ${h.buckets[i]}`)
      }

      lines.push(
        `icc_request_duration_seconds_bucket{${labels},le="+Inf"} ${h.count}`,
        `icc_request_duration_seconds_sum{${labels}} ${h.sum}`,
        `icc_request_duration_seconds_count{${labels}} ${h.count}`,
      )
    }

    this.batches.render(lines)
    this.restarts.render(lines)
    lines.push(
      '# HELP icc_runner_rss_bytes Resident memory of the runner process.',
      '# TYPE icc_runner_rss_bytes gauge',
    )
    for (const [service, kb] of this.rssKb) lines.push(`icc_runner_rss_bytes{service="${esc(service)}"} ${kb * 1024}`)
    lines.push('# HELP icc_service_ready 1 when the service answers requests.', '# TYPE icc_service_ready gauge')
    for (const g of gauges) lines.push(`icc_service_ready{service="${esc(g.name)}"} ${g.ready ? 1 : 0}`)
    lines.push('# HELP icc_queue_depth Requests waiting or running.', '# TYPE icc_queue_depth gauge')
    for (const g of gauges) lines.push(`icc_queue_depth{service="${esc(g.name)}"} ${g.queueDepth}`)
    return lines.join('\n') + '\n'
  }

  /**
   * What the status page shows of one service, from the same counters and histograms as /metrics: requests by
   * outcome, restarts by reason, and the 50th/90th/99th percentile of each phase in ms, interpolated within the
   * histogram's buckets as Prometheus' histogram_quantile does (null before the first successful request).
   */
  summary(service: string): {
    latencyMs: Record<(typeof PHASES)[number], null | {p50: number; p90: number; p99: number}>
    outcomes: Record<string, number>
    restarts: Record<string, number>
  } {
    const latencyMs = {} as Record<(typeof PHASES)[number], null | {p50: number; p90: number; p99: number}>
    for (const phase of PHASES) {
      const h = this.histograms.get(`${service}\u0000${phase}`)
      latencyMs[phase] = h ? {p50: quantileMs(h, 0.5), p90: quantileMs(h, 0.9), p99: quantileMs(h, 0.99)} : null
    }

    return {latencyMs, outcomes: this.outcomes.of(service), restarts: this.restarts.of(service)}
  }

  restart(service: string, reason: string): void {
    this.restarts.add(service, reason)
  }

  rss(service: string, kb: number): void {
    this.rssKb.set(service, kb)
  }

  private observe(key: string, seconds: number): void {
    let h = this.histograms.get(key)
    if (!h) {
      h = {buckets: BUCKETS.map(() => 0), count: 0, sum: 0}
      this.histograms.set(key, h)
    }

    h.count++
    h.sum += seconds
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]) h.buckets[i]++
  }
}
