/**
 * The runner's input tensors, reused: a free list of `Float32Array`s of one image's `[C, H, W]` size, and one
 * buffer per batch size for the runs of several images.
 *
 * Why: a fresh 224x224 input is a 602 KB `Float32Array`. V8 gets it zero-filled from the C allocator, and the
 * runner's allocator hands anything over 128 KiB out as fresh pages (the fixed thresholds of ./tuning.ts that keep
 * its memory low after a model load), so every request paid ~150 page faults and a zero fill, and the arrays
 * waited for a garbage collection to give their memory back: ~0.25 ms more decoding per image than in-process, and
 * up to ~30 MB of dead tensors in the runner's RSS under load (`npm run bench`, docs/performance-log.md). A tensor
 * taken here is written whole by the preprocessing (`preprocessInto`), so it needs no zero fill either.
 *
 * A tensor goes back once ONNX Runtime is done with it (after its run, or after a failed decode). The pool keeps at
 * most `keep` free tensors; beyond that (more requests in flight than usual) tensors are allocated and dropped as
 * before, so the pool never holds more than the pipeline needs.
 */
export class TensorPool {
  private readonly batches = new Map<number, Float32Array>()
  private readonly free: Float32Array[] = []

  /**
   * @param length elements of one image's tensor (C x H x W)
   * @param keep most free tensors held
   */
  constructor(
    readonly length: number,
    readonly keep: number,
  ) {
    if (!Number.isInteger(length) || length < 1) throw new RangeError(`length must be a positive integer: ${length}`)
    if (!Number.isInteger(keep) || keep < 0) throw new RangeError(`keep must be a non-negative integer: ${keep}`)
  }

  /** Free tensors held now. */
  get held(): number {
    return this.free.length
  }

  /**
   * The input of a run of `images` images: one buffer per batch size, reused by every run of that size (the runner
   * runs one batch at a time, so a buffer is never in two runs at once).
   */
  batch(images: number): Float32Array {
    let buffer = this.batches.get(images)
    if (!buffer) {
      buffer = new Float32Array(images * this.length)
      this.batches.set(images, buffer)
    }

    return buffer
  }

  /**
   * A tensor taken from the pool and written whole by `write` (the preprocessing); given back, and the error
   * rethrown, when `write` fails. The caller gives it back once ONNX Runtime is done with it.
   */
  async fill(write: (tensor: Float32Array) => Promise<unknown>): Promise<Float32Array> {
    const tensor = this.take()
    try {
      await write(tensor)
    } catch (error) {
      this.give(tensor)
      throw error
    }

    return tensor
  }

  /** Give a tensor back (nothing happens to one of another size, or when the pool is full). */
  give(tensor: Float32Array): void {
    if (tensor.length !== this.length || this.free.length >= this.keep || this.free.includes(tensor)) return
    this.free.push(tensor)
  }

  /** A tensor of `length` elements with undefined contents (the caller writes all of it). */
  take(): Float32Array {
    return this.free.pop() ?? new Float32Array(this.length)
  }
}
