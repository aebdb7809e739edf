/**
 * The access log of `icc serve`: one `info` line per inference request (service, transport, status and error code,
 * bytes in, queue/decode/inference/total ms, batch size), written through the service's pino logger; and the log
 * stream's format: JSON lines, or a short human format (pino-pretty) for a person at a terminal. `--access-log off`
 * silences the access lines only.
 */
import pino, {type Logger} from 'pino'
import pretty from 'pino-pretty'

import {httpStatus} from './invocations.js'
import {type Dispatcher, type InferenceResult, ServeError} from './types.js'

export type LogFormat = 'json' | 'pretty'

export interface AccessEntry {
  /** Images in the ONNX Runtime run (successful requests). */
  batch?: number
  bytesIn: number
  /** OK, or the error code of the answer. */
  code: string
  service: string
  /** HTTP status of the answer (the native API's equivalent for the Greengrass IPC endpoint). */
  status: number
  timings?: InferenceResult['timings']
  transport: 'http' | 'ipc'
}

export type AccessLog = (entry: AccessEntry) => void

const round = (ms: number) => Math.round(ms * 100) / 100

/** The access log of a host: each line through the logger of the request's service (or `fallback`). */
export function accessLog(loggerOf: (service: string) => Logger | undefined, fallback: Logger): AccessLog {
  return (e) => {
    const t = e.timings
    const fields = {
      bytesIn: e.bytesIn,
      code: e.code,
      status: e.status,
      transport: e.transport,
      ...(t
        ? {
            batch: e.batch,
            decodeMs: round(t.decodeMs),
            inferenceMs: round(t.inferenceMs),
            queueMs: round(t.queueMs),
            totalMs: round(t.totalMs),
          }
        : {}),
    }
    // a request for a service this host does not run goes to the first service's log, naming what was asked for
    const own = loggerOf(e.service)
    ;(own ?? fallback).info(
      own ? fields : {...fields, requestedService: e.service},
      `${e.transport} ${e.status} ${e.code}${t ? ` ${round(t.totalMs)} ms` : ''}`,
    )
  }
}

/** A dispatcher that writes an access line for each inference it answers (the Greengrass IPC endpoint's). */
export function withAccessLog(dispatcher: Dispatcher, log: AccessLog, transport: AccessEntry['transport']): Dispatcher {
  return {
    async infer(service, request) {
      const bytesIn = request.body?.length ?? 0
      try {
        const result = await dispatcher.infer(service, request)
        log({batch: result.batchSize, bytesIn, code: 'OK', service, status: 200, timings: result.timings, transport})
        return result
      } catch (error) {
        const code = error instanceof ServeError ? error.code : 'INTERNAL'
        log({bytesIn, code, service, status: httpStatus(code), transport})
        throw error
      }
    },
    serviceNames: () => dispatcher.serviceNames(),
    status: (name) => dispatcher.status(name),
  }
}

/** The stream a logger writes to: as is (JSON lines), or through pino-pretty's short human format. */
export function logDestination(stream: NodeJS.WritableStream, format: LogFormat = 'json'): pino.DestinationStream {
  if (format === 'json') return stream as pino.DestinationStream
  return pretty({
    colorize: Boolean((stream as {isTTY?: boolean}).isTTY) && !process.env.NO_COLOR,
    destination: stream,
    ignore: 'pid,hostname,service',
    messageFormat: '{service}: {msg}',
    singleLine: true,
    sync: true,
    translateTime: 'SYS:HH:MM:ss.l',
  })
}
