/**
 * The runner's inference line: the order in which decoded images reach ONNX Runtime, and how they form batches.
 *
 * Every request joins the line when its frame arrives and is decoded at once, on its own (sharp works on libuv's
 * threads). ONNX Runtime runs one batch at a time, in arrival order: when it is free, every image already decoded
 * at the head of the line, up to `maxBatch`, goes into the next run. A batch only forms from requests that are
 * waiting anyway, so a lone request never waits for company. A request whose decoding failed is answered (through
 * `fail`) when it reaches the head, so answers keep their order.
 *
 * Why the line looks at the head only one event-loop turn after it could: onnxruntime-node runs a session on the
 * JavaScript thread, so while an inference runs, the decodes that finish meanwhile on sharp's threads cannot
 * report back. They all report in the next poll phase, one after the other; taking the head at the first report
 * would start a run of one image with the next one decoded a few microseconds later. Waiting for the check phase
 * (`setImmediate`) lets every finished decode join the batch. On the 2-core CI machine this turned runs of two
 * from ~25 % to ~80 % of the requests at concurrency 4 (`npm run bench`, docs/performance-log.md), at no cost to a
 * lone request (one turn of the loop, microseconds).
 *
 * Why a decoded head may wait a little for the requests right behind it: when ONNX Runtime is free and the head is
 * decoded while the next request (already here) is still being decoded, running the head alone would hold the
 * JavaScript thread for a whole inference, the next request's decode could not report until it ends, and the line
 * would fall into runs of one that alternate with runs of two (a third of the requests at concurrency 4 ran
 * alone). So the head waits until the requests already in the line, up to `maxBatch`, are decoded too, or
 * `maxWaitMs` at most (a slow or hostile image only delays its neighbours that long, once). Only requests already
 * here are waited for, never ones that might come: a request alone in the line runs at once.
 */

export type Decoded<T> = {error: unknown} | {value: T}

export interface InferenceLineOptions<H, T> {
  /** Answer a request whose decoding failed (called in line order). */
  fail(header: H, error: unknown): void
  /** Most images per run (at least 1). */
  maxBatch: number
  /**
   * Longest a decoded head waits for requests behind it that are still being decoded, in ms (default
   * {@link DEFAULT_MAX_WAIT_MS}).
   */
  maxWaitMs?: number
  /**
   * Run one batch (1..maxBatch requests, in line order) and answer its requests; the line waits for it. A rejection
   * is the caller's to answer: the line only goes on with the next batch.
   */
  run(batch: {header: H; value: T}[]): Promise<void>
}

/**
 * Default bound of the wait for a full batch: a few decodes of a camera-sized JPEG on a small CPU (a 640x480 one
 * takes ~3 ms on 2 cores), well under one inference of the smallest ResNet.
 */
export const DEFAULT_MAX_WAIT_MS = 10

interface Job<H, T> {
  decoded?: Decoded<T>
  header: H
}

export class InferenceLine<H, T> {
  private readonly line: Job<H, T>[] = []
  private readonly maxWaitMs: number
  private running = false
  private turnPending = false
  private waitExpired = false
  private waitTimer?: NodeJS.Timeout

  constructor(private readonly options: InferenceLineOptions<H, T>) {
    if (!Number.isInteger(options.maxBatch) || options.maxBatch < 1) {
      throw new RangeError(`maxBatch must be a positive integer, not ${options.maxBatch}`)
    }

    this.maxWaitMs = options.maxWaitMs ?? DEFAULT_MAX_WAIT_MS
    if (!(this.maxWaitMs >= 0)) throw new RangeError(`maxWaitMs must be 0 or more, not ${options.maxWaitMs}`)
  }

  /** Requests in the line (waiting for their decode or for ONNX Runtime), not counting a batch that is running. */
  get length(): number {
    return this.line.length
  }

  /** Put a request at the end of the line; `decoding` settles with its decoded value (or rejects). */
  add(header: H, decoding: Promise<T>): void {
    const job: Job<H, T> = {header}
    this.line.push(job)
    decoding.then(
      (value) => this.settle(job, {value}),
      (error: unknown) => this.settle(job, {error}),
    )
  }

  private async drain(): Promise<void> {
    this.running = true
    try {
      while (this.readyToRun()) {
        const batch = this.take()
        if (batch.length === 0) continue // only failed decodes were at the head: answered, look again
        await this.options.run(batch).catch(() => {})
        // the decodes that finished during the run report in the next poll phase: let them in first
        await nextTurn()
      }
    } finally {
      this.running = false
    }
  }

  /**
   * Whether a run starts now: the head is decoded, and so are the requests behind it up to `maxBatch` (or the wait
   * for them is over). While waiting, a timer ends the wait; a decode that reports in the meantime looks again.
   */
  private readyToRun(): boolean {
    if (!this.line[0]?.decoded) return false
    const n = Math.min(this.options.maxBatch, this.line.length)
    let complete = true
    for (let i = 1; i < n && complete; i++) complete = this.line[i].decoded !== undefined
    if (complete || this.waitExpired) {
      clearTimeout(this.waitTimer)
      this.waitTimer = undefined
      this.waitExpired = false
      return true
    }

    this.waitTimer ??= setTimeout(() => {
      this.waitTimer = undefined
      this.waitExpired = true
      if (!this.running) this.drain().catch(() => {})
    }, this.maxWaitMs)
    return false
  }

  private settle(job: Job<H, T>, decoded: Decoded<T>): void {
    job.decoded = decoded
    if (this.running || this.turnPending) return
    this.turnPending = true
    setImmediate(() => {
      this.turnPending = false
      if (!this.running) this.drain().catch(() => {})
    })
  }

  /** The next batch: decoded requests at the head of the line (failed ones are answered on the way). */
  private take(): {header: H; value: T}[] {
    const batch: {header: H; value: T}[] = []
    while (this.line.length > 0 && this.line[0].decoded && batch.length < this.options.maxBatch) {
      const job = this.line.shift()!
      const d = job.decoded!
      if ('error' in d) this.options.fail(job.header, d.error)
      else batch.push({header: job.header, value: d.value})
    }

    return batch
  }
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => {
    setImmediate(resolve)
  })
}
