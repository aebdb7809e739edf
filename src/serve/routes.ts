/**
 * The host's routes other than the invocations (those are ./invocations.ts, on node:http directly): one table of
 * route -> handler on the framework (health, readiness, model metadata, metrics), the reload route and the status
 * page, and the framework's own answers (400s, 404, 500), each counted in the metrics under service "".
 */
import type {FastifyInstance, FastifyReply, FastifyRequest} from 'fastify'

import {basename} from 'node:path'

import type {ServiceConfig} from './config.js'
import type {Metrics} from './metrics.js'
import type {ModelReloader} from './reload.js'
import type {Service} from './service.js'

import {DEFAULT_RESIZE_MODE, type ResizeMode} from '../model/types.js'
import {httpStatus} from './invocations.js'
import {registerReloadRoute} from './reload-triggers.js'
import {type RecentErrors, registerStatusPage} from './status-page.js'
import {ServeError} from './types.js'

export interface RouteContext {
  /** Bearer tokens that allow a model reload over TCP. */
  adminTokens: string[]
  /** True once shutdown has begun (readiness says not ready). */
  closing: () => boolean
  /** The configuration of a service, by name. */
  config: (name: string) => ServiceConfig
  metrics: Metrics
  recentErrors: RecentErrors
  reloader: ModelReloader
  resize?: ResizeMode
  services: Map<string, Service>
}

type Handler = (ctx: RouteContext, req: FastifyRequest, reply: FastifyReply) => Promise<unknown>

function sendError(reply: FastifyReply, error: ServeError): FastifyReply {
  if (error.retryAfter !== undefined) reply.header('Retry-After', String(error.retryAfter))
  return reply
    .code(httpStatus(error.code))
    .type('application/json')
    .send({error: {code: error.code, message: error.message}})
}

const notReadyReason = (s: Service) => s.reason ?? `runner ${s.state}`

/** Every service ready (and the host not shutting down): 200, otherwise 503; each service's state either way. */
const readiness: Handler = async (ctx, _req, reply) => {
  const services: Record<string, unknown> = {}
  let all = !ctx.closing()
  for (const s of ctx.services.values()) {
    const ready = s.state === 'ready'
    all &&= ready
    services[s.name] = {
      queueDepth: s.queued,
      ready,
      ...(ready ? {} : {reason: notReadyReason(s)}),
      restarts: s.restarts,
      runnerPid: s.pid,
      state: s.state,
    }
  }

  return reply.code(all ? 200 : 503).send({ready: all, services})
}

/** The model of one service (KServe v2 metadata and icc's own fields). */
const modelMetadata: Handler = async (ctx, req, reply) => {
  const {name} = req.params as {name: string}
  const s = ctx.services.get(name)
  if (!s) return sendError(reply, new ServeError('UNKNOWN_SERVICE', `No service named "${name}".`))
  if (!s.info) {
    const why = notReadyReason(s)
    return sendError(reply, new ServeError('SERVICE_NOT_READY', `The service "${name}" is not ready: ${why}`, 10))
  }

  const i = s.info
  const cfg = ctx.config(name)
  const provenance = ctx.reloader.describe(name)
  // no filesystem paths over TCP (which a loopback listener may serve without a token): the model's file name
  // there, its whole path only on the unix socket, which the folder's permissions keep to this user
  const overTcp = req.socket.remoteAddress !== undefined
  return {
    classes: i.numClasses,
    hash: i.modelHash,
    inputs: [{datatype: 'FP32', name: i.inputName, shape: [-1, ...i.inputShape]}],
    labels: i.labels ?? null,
    memoryLimitKb: cfg.memoryLimitKb,
    name,
    outputs: [{datatype: 'FP32', name: i.outputName, shape: [-1, i.numClasses]}],
    platform: 'onnxruntime',
    preprocessing: {mode: ctx.resize ?? DEFAULT_RESIZE_MODE},
    provider: i.provider,
    runtime: i.runtime,
    ready: s.state === 'ready',
    ...(s.state === 'ready' ? {} : {reason: notReadyReason(s)}),
    // no filesystem paths here: this route needs no token on a loopback TCP listener
    summary: {...i.summary, path: undefined},
    timeoutSeconds: cfg.timeoutSeconds,
    ...provenance,
    ...(provenance && overTcp ? {source: basename(provenance.source)} : {}),
    memoryMode: s.memoryMode,
  }
}

const prometheus: Handler = async (ctx, _req, reply) =>
  reply
    .type('text/plain; version=0.0.4')
    .send(
      ctx.metrics.render(
        [...ctx.services.values()].map((s) => ({name: s.name, queueDepth: s.queued, ready: s.state === 'ready'})),
      ),
    )

/** GET routes of the framework: path -> handler. */
export const ROUTES: ReadonlyArray<[path: string, handler: Handler]> = [
  ['/ping', readiness],
  ['/v2/health/live', async () => ({live: true})],
  ['/v2/health/ready', readiness],
  ['/v2/models/:name', modelMetadata],
  ['/metrics', prometheus],
]

/** The status page's view of the services (./status-page.ts). */
function statusSnapshot(ctx: RouteContext) {
  return {
    recentErrors: ctx.recentErrors.list(),
    services: [...ctx.services.values()].map((s) => {
      const cfg = ctx.config(s.name)
      const {latencyMs, outcomes, restarts} = ctx.metrics.summary(s.name)
      return {
        classes: s.info?.numClasses,
        latencyMs,
        memory: {limitKb: cfg.memoryLimitKb, mode: s.memoryMode, rssKb: s.rssKb},
        model: {hash: s.info?.modelHash ?? '', ...ctx.reloader.describe(s.name)},
        name: s.name,
        provider: s.info?.provider,
        runtime: s.info?.runtime,
        queueDepth: s.queued,
        ready: s.state === 'ready',
        reason: s.state === 'ready' ? undefined : notReadyReason(s),
        requests: outcomes,
        restarts,
      }
    }),
  }
}

/** Register the table, the reload route, the status page and the framework's own answers on `app`. */
export function registerRoutes(app: FastifyInstance, ctx: RouteContext): void {
  // the framework's own answers are counted too (under service "": no service was reached)
  app.setErrorHandler((error, _req, reply) => {
    const e = error as {message: string; statusCode?: number}
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
      ctx.metrics.outcome('', 'BAD_REQUEST')
      return reply.code(e.statusCode).send({error: {code: 'BAD_REQUEST', message: e.message}})
    }

    ctx.metrics.outcome('', 'INTERNAL')
    return sendError(reply, new ServeError('INTERNAL', e.message))
  })
  app.setNotFoundHandler((req, reply) => {
    ctx.metrics.outcome('', 'NOT_FOUND')
    return reply
      .code(404)
      .send({error: {code: 'NOT_FOUND', message: `No route ${req.method} ${req.url.split('?')[0]}`}})
  })
  for (const [path, handler] of ROUTES) app.get(path, async (req, reply) => handler(ctx, req, reply))
  registerReloadRoute(app, ctx.reloader, ctx.adminTokens)
  registerStatusPage(app, () => statusSnapshot(ctx))
}
