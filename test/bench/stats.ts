/** Statistics and load loops shared by `npm run bench`, `npm run bench:int8` and `npm run soak`. */

/** Nearest-rank percentile of ascending samples (NaN when there are none). */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
}

/** Median of samples in any order. */
export function median(samples: number[]): number {
  return percentile(
    [...samples].sort((x, y) => x - y),
    50,
  )
}

/**
 * Run `one` at the given concurrency for about `ms` after a short warm-up: requests per second, and how many
 * calls were made in all, warm-up included (for CPU time per request).
 */
export async function throughput(
  one: () => Promise<unknown>,
  concurrency: number,
  ms: number,
): Promise<{calls: number; rate: number}> {
  let calls = 0
  const loop = async (until: number) => {
    await Promise.all(
      Array.from({length: concurrency}, async () => {
        while (performance.now() < until) {
          await one()
          calls++
        }
      }),
    )
  }

  await loop(performance.now() + Math.min(500, ms / 4))
  const warm = calls
  const t0 = performance.now()
  await loop(t0 + ms)
  return {calls, rate: (calls - warm) / ((performance.now() - t0) / 1000)}
}
