/**
 * Terminal feedback for long AWS operations, written to stderr so stdout stays clean for results and --json:
 * a download progress bar (bytes, percent, rate, ETA) and a spinner for polling loops. Both are silent unless
 * explicitly enabled (the commands enable them only on a TTY and without --json).
 */

export interface ProgressBar {
  done(): void
  update(bytesSoFar: number): void
}

export interface Spinner {
  stop(finalText?: string): void
  text(text: string): void
}

interface Writable {
  write(chunk: string): unknown
}

/** 1536 → "1.5 KiB". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = n
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }

  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '--'
  const total = Math.max(0, Math.round(s))
  const m = Math.floor(total / 60)
  return m > 0 ? `${m}m${String(total % 60).padStart(2, '0')}s` : `${total}s`
}

export function createProgressBar(options: {
  enabled: boolean
  label: string
  now?: () => number
  stream?: Writable
  total?: number
}): ProgressBar {
  const stream = options.stream ?? process.stderr
  const now = options.now ?? (() => Date.now())
  const start = now()
  let last = 0
  let lastBytes = 0
  const render = (bytes: number, final: boolean) => {
    const elapsed = Math.max((now() - start) / 1000, 0.001)
    const rate = bytes / elapsed
    const {total} = options
    let line = `${options.label} ${formatBytes(bytes)}`
    if (total && total > 0) {
      const ratio = Math.min(bytes / total, 1)
      const width = 24
      const filled = Math.round(ratio * width)
      line += ` / ${formatBytes(total)} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${Math.floor(ratio * 100)}%`
      line += `  ${formatBytes(Math.round(rate))}/s  ETA ${formatSeconds(rate > 0 ? (total - bytes) / rate : Infinity)}`
    } else {
      line += `  ${formatBytes(Math.round(rate))}/s`
    }

    stream.write(`\r${line}\u001B[K${final ? '\n' : ''}`)
  }

  return {
    done() {
      if (options.enabled) render(lastBytes, true)
    },
    update(bytes) {
      lastBytes = bytes
      if (!options.enabled) return
      const t = now()
      if (t - last < 100) return
      last = t
      render(bytes, false)
    },
  }
}

const FRAMES = ['|', '/', '-', '\\']

export function createSpinner(options: {enabled: boolean; stream?: Writable; text: string}): Spinner {
  const stream = options.stream ?? process.stderr
  let current = options.text
  let frame = 0
  let stopped = false
  const draw = () => stream.write(`\r${FRAMES[frame++ % FRAMES.length]} ${current}\u001B[K`)
  const timer = options.enabled ? setInterval(draw, 120) : undefined
  timer?.unref()
  if (options.enabled) draw()
  return {
    stop(finalText) {
      if (stopped) return
      stopped = true
      if (timer) clearInterval(timer)
      if (options.enabled) stream.write(`\r${finalText ?? current}\u001B[K\n`)
    },
    text(text) {
      current = text
    },
  }
}

/** Run `work` with a spinner and its elapsed time ("converting model 3s") on stderr when `enabled`. */
export async function spinWhile<T>(enabled: boolean, label: string, work: () => Promise<T>): Promise<T> {
  if (!enabled) return work()
  const start = Date.now()
  const spinner = createSpinner({enabled, text: label})
  const tick = setInterval(() => spinner.text(`${label} ${formatSeconds((Date.now() - start) / 1000)}`), 250)
  tick.unref()
  try {
    return await work()
  } finally {
    clearInterval(tick)
    spinner.stop(`${label}: done in ${formatSeconds((Date.now() - start) / 1000)}`)
  }
}
