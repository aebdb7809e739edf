/**
 * What starts a model reload of `icc serve` (./reload.ts does the reload): the Triton/KServe model-repository route
 * `POST /v2/repository/models/{name}/load` (on the unix socket; on TCP only with a bearer token: `--admin-token`
 * or the Greengrass IPC auth token), and `--watch`: a debounced watch of the file or folder at `--model` that
 * reloads once what is there has stopped changing (an archive still being written is not read half-way).
 */
import type {FastifyInstance, FastifyRequest} from 'fastify'

import {timingSafeEqual} from 'node:crypto'
import {type FSWatcher, watch} from 'node:fs'
import {readdir, stat} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'

import {IccError} from '../errors.js'
import {type ModelReloader} from './reload.js'

/** A request that came over TCP (a unix-socket connection has no remote port). */
function overTcp(req: FastifyRequest): boolean {
  return typeof req.raw.socket.remotePort === 'number'
}

function tokenMatches(given: string, tokens: string[]): boolean {
  const g = Buffer.from(given)
  return tokens.some((t) => {
    const b = Buffer.from(t)
    return b.length === g.length && timingSafeEqual(b, g)
  })
}

const STATUS: Record<string, number> = {RELOAD_NO_MEMORY: 409, SHUTTING_DOWN: 503, UNKNOWN_SERVICE: 404}

/** Register `POST /v2/repository/models/:name/load`; `tokens` are the bearer tokens accepted over TCP. */
export function registerReloadRoute(app: FastifyInstance, reloader: ModelReloader, tokens: string[]): void {
  app.post('/v2/repository/models/:name/load', async (req, reply) => {
    if (overTcp(req)) {
      const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]
      if (tokens.length === 0 || !auth || !tokenMatches(auth, tokens)) {
        return reply.code(tokens.length === 0 ? 403 : 401).send({
          error: {
            code: 'ADMIN_TOKEN_REQUIRED',
            message:
              tokens.length === 0
                ? 'Model reload over TCP needs icc serve --admin-token (or --ipc-port); use the unix socket or send SIGHUP.'
                : 'Send "Authorization: Bearer <token>" with the --admin-token (or the IPC auth token).',
          },
        })
      }
    }

    const {name} = req.params as {name: string}
    try {
      return {loaded: true, ...(await reloader.reload(name, 'http'))}
    } catch (error) {
      const e = error instanceof IccError ? error : new IccError('RELOAD_FAILED', (error as Error).message)
      return reply.code(STATUS[e.code] ?? 422).send({error: {code: e.code, message: e.message, modelKept: true}})
    }
  })
}

/** A cheap fingerprint of a file or a folder's files (names, sizes, mtimes): equal twice in a row = settled. */
async function fingerprint(path: string): Promise<string> {
  try {
    const s = await stat(path)
    if (!s.isDirectory()) return `${s.size}:${s.mtimeMs}`
    const names = (await readdir(path)).sort()
    const parts = await Promise.all(
      names.map(async (n) => {
        const f = await stat(join(path, n)).catch(() => undefined)
        return `${n}:${f?.size}:${f?.mtimeMs}`
      }),
    )
    return parts.join('|')
  } catch {
    return 'missing'
  }
}

export interface ModelWatch {
  close(): void
}

/**
 * Call `onSettled` once the file or folder at `path` changed and then stayed the same for `quietMs` (checked again
 * after another `quietMs`; a file still growing keeps postponing it). A file is watched through its folder, so an
 * editor's or `mv`'s replace is seen too.
 */
export async function watchModel(path: string, onSettled: () => void, quietMs = 1000): Promise<ModelWatch> {
  const isDir = (await stat(path)).isDirectory()
  let last = await fingerprint(path)
  let timer: NodeJS.Timeout | undefined
  let closed = false
  const check = async () => {
    const first = await fingerprint(path)
    await new Promise((r) => {
      timer = setTimeout(r, quietMs)
    })
    if (closed) return
    const second = await fingerprint(path)
    if (first !== second) {
      timer = setTimeout(() => {
        check().catch(() => {})
      }, quietMs)
      return
    }

    if (second === last || second === 'missing') return
    last = second
    onSettled()
  }

  const onEvent = (_event: string, file: Buffer | null | string) => {
    if (!isDir && file !== null && String(file) !== basename(path)) return
    clearTimeout(timer)
    timer = setTimeout(() => {
      check().catch(() => {})
    }, quietMs)
  }

  const watcher: FSWatcher = watch(isDir ? path : dirname(path), onEvent)
  watcher.on('error', () => {})
  return {
    close() {
      closed = true
      clearTimeout(timer)
      watcher.close()
    },
  }
}

/** Watch the model source of each service; a settled change reloads that service. */
export async function watchServices(
  reloader: ModelReloader,
  services: {modelPath: string; name: string}[],
  quietMs?: number,
): Promise<ModelWatch> {
  const watches = await Promise.all(
    services.map(async (s) => watchModel(s.modelPath, () => reloader.reload(s.name, 'watch').catch(() => {}), quietMs)),
  )
  return {close: () => watches.forEach((w) => w.close())}
}
