/**
 * The runner's decode memory budget (issue 21): its memory limit minus what the loaded model holds, shared by the
 * decodes running at once. A decode asks for what its image needs (../model/decode-memory.ts, from the header,
 * before anything is decoded) and starts when that fits beside the decodes running, or when no other decode runs;
 * the ones that do not fit wait in arrival order, so a big image waits instead of pushing the runner over its
 * limit and killing its neighbours. An image that cannot fit even alone (`aloneBytes`: the limit less the
 * runner's own anonymous memory, as its shared libraries' pages can be given back) is refused at once with
 * `IMAGE_TOO_LARGE` (answered as `BAD_IMAGE`).
 */
import {ModelError} from '../errors.js'

const MB = 1024 * 1024

interface Waiter {
  bytes: number
  start: () => void
}

export class DecodeAdmission {
  private inUse = 0
  private readonly waiting: Waiter[] = []

  /**
   * @param budgetBytes memory the decodes may use together
   * @param aloneBytes most memory one decode may use when no other runs
   * @param limitKb the runner's memory limit, for the message of a refusal
   * @param onRelease called when a decode of at least `collectFromBytes` ends (the runner collects its garbage:
   *   the decoded image is a Buffer that V8 would otherwise free late)
   */
  constructor(
    readonly budgetBytes: number,
    readonly aloneBytes: number,
    private readonly limitKb: number,
    private readonly onRelease?: () => void,
    private readonly collectFromBytes = 32 * MB,
  ) {}

  /** Bytes held by the decodes running now. */
  get held(): number {
    return this.inUse
  }

  /** Wait until `bytes` fit beside the decodes running (in arrival order); resolves to the release function. */
  async reserve(bytes: number, image: {height: number; width: number}): Promise<() => void> {
    if (bytes > this.aloneBytes) throw this.tooLarge(bytes, image)
    if (this.waiting.length > 0 || !this.fits(bytes)) {
      // counted by admitWaiting when it starts this one
      await new Promise<void>((start) => {
        this.waiting.push({bytes, start})
      })
    } else {
      this.inUse += bytes
    }

    let released = false
    return () => {
      if (released) return
      released = true
      this.inUse -= bytes
      if (bytes >= this.collectFromBytes) this.onRelease?.()
      this.admitWaiting()
    }
  }

  private fits(bytes: number): boolean {
    return this.inUse === 0 || this.inUse + bytes <= this.budgetBytes
  }

  private admitWaiting(): void {
    while (this.waiting.length > 0 && this.fits(this.waiting[0].bytes)) {
      const next = this.waiting.shift()!
      this.inUse += next.bytes
      next.start()
    }
  }

  private tooLarge(bytes: number, image: {height: number; width: number}): ModelError {
    const need = Math.ceil(bytes / MB)
    const have = Math.floor(this.aloneBytes / MB)
    return new ModelError(
      'IMAGE_TOO_LARGE',
      `The image is too large for the memory limit: decoding its ${image.width}x${image.height} pixels needs about ${need} MB, and the runner has ${have} MB for decoding (LocalInferenceServiceMemoryLimitKB=${this.limitKb}, less what the model holds).`,
      {
        details: {availableBytes: this.aloneBytes, height: image.height, neededBytes: bytes, width: image.width},
        suggestions: [
          'Send a smaller image (the model only needs its input size), or raise --memory-limit-kb (LocalInferenceServiceMemoryLimitKB).',
        ],
      },
    )
  }
}
