/**
 * Host memory under big uploads (issue 21, item 3), part of `npm run soak`: 100 clients at once each POST a
 * ~15.8 MB body to the real `icc serve` over its unix socket (default `--max-buffered-bytes`: those beyond the
 * budget get 503 OVERLOADED), then the host sits idle. Prints the host's RSS before, its peak during, and every
 * 5 s for 25 s after the last answer, so that memory given back when idle shows; exits 1 when the host still holds
 * more than `--max-idle-growth-mb` (default 128) over its RSS before the uploads after 25 s idle.
 *
 * Usage: node dist/test/bench/uploads.js [--clients 100] [--mb 15.8] [--max-idle-growth-mb 128]
 *        [--max-buffered-mb N] (default: the host's default budget)
 */
import {randomBytes} from 'node:crypto'
import {mkdtemp, rm} from 'node:fs/promises'
import {request} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {readRssKb} from '../../src/serve/memory.js'
import {writeTinyOnnxModel} from '../helpers/onnx-tiny.js'
import {startServe} from '../helpers/serve-host.js'

export interface UploadsResult {
  answers: Record<number, number>
  beforeMb: number
  idleMb: number[]
  peakMb: number
}

async function post(socket: string, body: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      {
        headers: {'content-length': body.length, 'content-type': 'image/jpeg'},
        method: 'POST',
        path: '/invocations',
        socketPath: socket,
      },
      (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      },
    )
    // a refused upload is answered before it is all sent, and its connection closed
    req.on('error', () => resolve(0))
    req.end(body)
  })
}

const mb = (kb: number) => Math.round(kb / 102.4) / 10

export async function runUploads(clients: number, bodyMb: number, bufferedMb?: number): Promise<UploadsResult> {
  const dir = await mkdtemp(join(tmpdir(), 'icc-uploads-'))
  const socket = join(dir, 'icc.sock')
  const budget = bufferedMb === undefined ? [] : ['--max-buffered-bytes', String(Math.round(bufferedMb * 1024 * 1024))]
  const host = await startServe(['--model', await writeTinyOnnxModel(join(dir, 'model.onnx')), ...budget], {socket})
  const rss = () => readRssKb(host.proc.pid!).rssKb ?? 0
  try {
    const beforeKb = rss()
    let peakKb = beforeKb
    const sampler = setInterval(() => {
      peakKb = Math.max(peakKb, rss())
    }, 50)
    const body = randomBytes(Math.round(bodyMb * 1e6))
    const statuses = await Promise.all(Array.from({length: clients}, async () => post(socket, body)))
    clearInterval(sampler)
    const answers: Record<number, number> = {}
    for (const s of statuses) answers[s] = (answers[s] ?? 0) + 1
    const idleMb: number[] = []
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => {
        setTimeout(r, 5000)
      })
      idleMb.push(mb(rss()))
    }

    return {answers, beforeMb: mb(beforeKb), idleMb, peakMb: mb(peakKb)}
  } finally {
    await host.stop()
    await rm(dir, {force: true, recursive: true})
  }
}

function arg(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(name)
  return i === -1 ? fallback : Number(argv[i + 1])
}

async function main(argv: string[]): Promise<number> {
  const clients = arg(argv, '--clients', 100)
  const bodyMb = arg(argv, '--mb', 15.8)
  const maxGrowthMb = arg(argv, '--max-idle-growth-mb', 128)
  const i = argv.indexOf('--max-buffered-mb')
  const r = await runUploads(clients, bodyMb, i === -1 ? undefined : Number(argv[i + 1]))
  console.log(`uploads: ${clients} clients x ${bodyMb} MB at once; answers ${JSON.stringify(r.answers)}`)
  console.log(`  host RSS: before ${r.beforeMb} MB, peak ${r.peakMb} MB, idle every 5 s: ${r.idleMb.join(', ')} MB`)
  const growth = r.idleMb.at(-1)! - r.beforeMb
  if (growth > maxGrowthMb) {
    console.log(`  FAIL: after 25 s idle the host holds ${growth.toFixed(1)} MB more than before (> ${maxGrowthMb})`)
    return 1
  }

  return 0
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2))
}
