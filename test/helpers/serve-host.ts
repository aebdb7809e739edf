/**
 * Test helpers for `icc serve`: start the real binary as a child process, wait for its ready line, talk to it
 * over its unix socket (or TCP), and stop it. Also makes solid-colour test images with sharp.
 */
import {execa, type ResultPromise} from 'execa'
import {type Agent, request} from 'node:http'
import {connect} from 'node:net'
import {fileURLToPath} from 'node:url'
import sharp from 'sharp'

import {checkModel} from '../../src/device/doctor-icc.js'
import {BIN} from './cli.js'

export {withFault} from './fault-runner.js'

/** The tests' runner with faults (./fault-runner.ts), for `icc serve --runner-entry`. */
export const FAULT_RUNNER = fileURLToPath(new URL('fault-runner.js', import.meta.url))

export interface RunningHost {
  exited: Promise<{exitCode?: number; signal?: string}>
  proc: ResultPromise
  socket: string
  /** Everything the host printed so far. */
  stderr(): string
  stdout(): string
  stop(signal?: NodeJS.Signals): Promise<{exitCode?: number; signal?: string}>
  tcpUrl?: string
}

/** Start `icc serve ARGS`; resolves once it prints its ready line (rejects with its output if it exits first). */
export async function startServe(
  args: string[],
  /**
   * `socket`: the --socket given (undefined: none, the default socket); `faults`: run the fault runner
   * (requests may then carry a fault, see withFault).
   */
  options: {
    /** How to run `icc ARGS` (default this Node and bin/run.js): e.g. under emulation (./emulation.ts). */
    command?: (args: string[]) => [string, string[]]
    env?: Record<string, string>
    faults?: boolean
    socket?: string
    timeoutMs?: number
  },
): Promise<RunningHost> {
  let out = ''
  let err = ''
  const command = options.command ?? ((a: string[]): [string, string[]] => [process.execPath, [BIN, ...a]])
  const proc = execa(
    ...command([
      'serve',
      ...(options.socket === undefined ? [] : ['--socket', options.socket]),
      ...(options.faults ? ['--runner-entry', FAULT_RUNNER] : []),
      ...args,
    ]),
    {
      buffer: false,
      env: {NO_COLOR: '1', ...options.env},
      reject: false,
    },
  )
  proc.stdout?.on('data', (c: Buffer) => {
    out += c.toString()
  })
  proc.stderr?.on('data', (c: Buffer) => {
    err += c.toString()
  })
  const exited = proc.then((r) => ({exitCode: r.exitCode, signal: r.signal}))
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`icc serve not ready in time:\n${out}\n${err}`)),
      options.timeoutMs ?? 30_000,
    )
    const check = setInterval(() => {
      if (/icc serve: ready on|"event":"ready"/.test(out)) {
        clearInterval(check)
        clearTimeout(timer)
        resolve()
      }
    }, 20)
    exited.then((r) => {
      clearInterval(check)
      clearTimeout(timer)
      reject(new Error(`icc serve exited (${r.exitCode ?? r.signal}) before ready:\n${out}\n${err}`))
    })
  })
  const tcp = /(http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1]
  return {
    exited,
    proc,
    socket: options.socket ?? '',
    stderr: () => err,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal)
      const t = setTimeout(() => proc.kill('SIGKILL'), 15_000)
      const r = await exited
      clearTimeout(t)
      return r
    },
    stdout: () => out,
    tcpUrl: tcp,
  }
}

/** A runner's start measured on this machine now (see measureRunnerStart). */
export interface RunnerStart {
  /** Wall time from spawning the runner to its ready report (load, session, warm-up). */
  ms: number
  /** Its peak memory (RSS high-water mark, or its memory group's peak where larger). */
  peakKb: number
  runtime: string
}

/**
 * Start a real runner of `icc serve` on `model` without a memory cap, on the runtime the tests' services run on
 * ($ICC_RUNTIME, else auto; `npm run test:wasm` forces wasm), and stop it: `Service.measureLoad`, as `icc doctor
 * --model`. Tests derive restart deadlines and memory caps from it, so that they hold on the slower, larger wasm
 * runtime and on a loaded machine, while the native run keeps its tight figures.
 */
export async function measureRunnerStart(model: string): Promise<RunnerStart> {
  const started = performance.now()
  const check = await checkModel(model)
  const ms = performance.now() - started
  if (check.status !== 'pass') throw new Error(`the runner did not start on ${model}: ${check.message}`)
  const {peakKb, runtime} = check.evidence as {peakKb: number; runtime: string}
  return {ms, peakKb, runtime}
}

/**
 * A request deadline (--timeout-seconds) for tests where a queued request must outlive a runner's restart: `floor`
 * (the figure the test was written with, kept natively on a quiet machine), or more where a restart of twice the
 * measured start and a second and a half would not fit in it.
 */
export function restartDeadlineSeconds(start: RunnerStart, floor: number): number {
  return Math.max(floor, Math.ceil((2 * start.ms) / 1000 + 1.5))
}

export interface HttpResult {
  body: string
  headers: Record<string, string | string[] | undefined>
  json<T = any>(): T
  status: number
}

/** One HTTP request over a unix socket (or to a TCP base URL), optionally through a keep-alive agent. */
export async function http(
  target: {agent?: Agent; socket?: string; url?: string},
  method: string,
  path: string,
  body?: Uint8Array,
  headers: Record<string, string> = {},
): Promise<HttpResult> {
  const base = target.url ? new URL(target.url) : undefined
  return new Promise<HttpResult>((resolve, reject) => {
    const req = request(
      {
        agent: target.agent,
        headers: {...headers, ...(body ? {'content-length': String(body.length)} : {})},
        hostname: base?.hostname,
        method,
        path,
        port: base?.port,
        socketPath: base ? undefined : target.socket,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          resolve({body: text, headers: res.headers, json: () => JSON.parse(text), status: res.statusCode ?? 0})
        })
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

export async function solidImage(
  format: 'jpeg' | 'png',
  colour: {b: number; g: number; r: number},
  width = 40,
  height = 30,
): Promise<Buffer> {
  const img = sharp({create: {background: colour, channels: 3, height, width}})
  return format === 'jpeg' ? img.jpeg({quality: 95}).toBuffer() : img.png().toBuffer()
}

/** A noisy image (so the probabilities are not trivially uniform). */
export async function noiseImage(format: 'jpeg' | 'png', width = 64, height = 48, seed = 1): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3)
  let x = seed
  for (let i = 0; i < raw.length; i++) {
    x = (x * 1_103_515_245 + 12_345) % 2_147_483_648
    raw[i] = (x >> 16) & 0xff
  }

  const img = sharp(raw, {raw: {channels: 3, height, width}})
  return format === 'jpeg' ? img.jpeg().toBuffer() : img.png().toBuffer()
}

/** The pid of the first service's runner, from `GET /ping`. */
export async function runnerPid(target: {agent?: Agent; socket?: string; url?: string}): Promise<number | undefined> {
  const r = await http(target, 'GET', '/ping')
  return (Object.values(r.json().services)[0] as {runnerPid?: number} | undefined)?.runnerPid
}

/** Is a process with this pid running? */
export function alive(pid: number | undefined): boolean {
  if (!pid) return false
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Wait until the predicate holds (bounded). */
export async function waitFor(pred: () => Promise<boolean>, timeoutMs = 15_000, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    if (await pred()) return

    await new Promise((r) => {
      setTimeout(r, 50)
    })
  }

  throw new Error(`timed out waiting for ${what}`)
}

/** Parse the connector body `[p0,...]` strictly. */
export function parseConnectorBody(body: string): number[] {
  if (!/^\[[^\s]*\]$/.test(body)) throw new Error(`not a connector body: ${body.slice(0, 200)}`)
  return body
    .slice(1, -1)
    .split(',')
    .map((s) => {
      const v = Number(s)
      if (s === '' || Number.isNaN(v)) throw new Error(`bad value "${s}" in ${body}`)
      return v
    })
}

/**
 * Connect (a unix socket path, or a TCP port on 127.0.0.1), send `payload` (if any), and resolve with what came
 * back once the server closes the connection; reject if it is still open after `limitMs`. `halfClose`: end the
 * sending side right after the payload.
 */
export async function closedWithin(
  to: number | string,
  payload: string,
  limitMs: number,
  options: {halfClose?: boolean} = {},
): Promise<{ms: number; reply: string}> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now()
    let reply = ''
    const onConnect = () => {
      if (payload) sock.write(payload, 'latin1')
      if (options.halfClose) sock.end()
    }

    const sock = typeof to === 'number' ? connect(to, '127.0.0.1', onConnect) : connect(to, onConnect)
    sock.on('data', (d) => {
      reply += d.toString()
    })
    sock.on('close', () => resolve({ms: Date.now() - t0, reply}))
    sock.on('error', () => {})
    setTimeout(() => {
      sock.destroy()
      reject(new Error(`connection still open after ${limitMs} ms`))
    }, limitMs)
  })
}

const X86 = 'arn:aws:greengrass:us-west-2::/connectors/ImageClassificationx86-64/versions/1'

/** An Image Classification connector of a definition version (x86_64), serving `model` as `name`. */
export function connector(id: string, name: string, model: string, extra: Record<string, string> = {}) {
  return {
    ConnectorArn: X86,
    Id: id,
    Parameters: {
      LocalInferenceServiceMemoryLimitKB: '500000',
      LocalInferenceServiceName: name,
      LocalInferenceServiceTimeoutSeconds: '5',
      MLModelDestinationPath: model,
      MLModelResourceId: 'my-ml-resource',
      MLModelSageMakerJobArn: 'arn:aws:sagemaker:us-west-2:123456789012:training-job/MyImageClassifier',
      ...extra,
    },
  }
}
