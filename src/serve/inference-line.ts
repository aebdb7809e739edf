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
 * from ~25 % to ~80 % of the requests at concurrency 4 (`npm run bench`, README "Performance"), at no cost to a
 * lone request (one turn of the loop, microseconds).
 */

export type Decoded<T> = {error: unknown} | {value: T}

export interface InferenceLineOptions<H, T> {
  /** Answer a request whose decoding failed (called in line order). */
  fail(header: H, error: unknown): void
  /** Most images per run (at least 1). */
  maxBatch: number
  /**
   * Run one batch (1..maxBatch requests, in line order) and answer its requests; the line waits for it. A rejection
   * is the caller's to answer: the line only goes on with the next batch.
   */
  run(batch: {header: H; value: T}[]): Promise<void>
}

interface Job<H, T> {
  decoded?: Decoded<T>
  header: H
}

export class InferenceLine<H, T> {
  private readonly line: Job<H, T>[] = []
  private running = false
  private turnPending = false

  constructor(private readonly options: InferenceLineOptions<H, T>) {
    if (!Number.isInteger(options.maxBatch) || options.maxBatch < 1) {
      throw new RangeError(`maxBatch must be a positive integer, not ${options.maxBatch}`)
    }
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
      for (let batch = this.take(); batch.length > 0; batch = this.take()) {
        await this.options.run(batch).catch(() => {})
        // the decodes that finished during the run report in the next poll phase: let them in first
        await nextTurn()
      }
    } finally {
      this.running = false
    }
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
