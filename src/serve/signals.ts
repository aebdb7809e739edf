/**
 * The signals of `icc serve` other than SIGTERM/SIGINT (those stop it: ./index.ts), in one place, for the host and
 * the runners:
 *
 * - SIGUSR1: Node opens its inspector on 127.0.0.1:9229 when it receives one, and any local user could attach to it
 *   and run code as the service user. A listener of our own takes SIGUSR1 over from Node's (from the moment it is
 *   installed, early in the host and the runner), so the inspector never opens; the signal is logged and ignored.
 * - SIGUSR2: its default action ends the process (and execa's exit hook re-raises it): logged and ignored.
 * - SIGHUP: the host reloads every model (`onHangup`, ./reload.ts); a runner logs and ignores it. It never ends
 *   the process (the default action, and execa's exit hook, would end the host at once and leave its socket).
 */

export type SignalLog = (signal: NodeJS.Signals, what: string) => void

export interface SignalHandlers {
  /** What SIGHUP does (default: log that it is ignored). */
  onHangup?: () => void
}

/** Install the handlers; returns a function that removes them. */
export function handleServeSignals(log: SignalLog, handlers: SignalHandlers = {}): () => void {
  const ignore = (signal: NodeJS.Signals) => () =>
    log(signal, `${signal} received; ignored (the inspector is not opened; stop icc serve with SIGTERM)`)
  const hangup = handlers.onHangup ?? (() => log('SIGHUP', 'SIGHUP received; ignored by this process'))
  const installed: [NodeJS.Signals, () => void][] = [
    ['SIGUSR1', ignore('SIGUSR1')],
    ['SIGUSR2', ignore('SIGUSR2')],
    ['SIGHUP', hangup],
  ]
  for (const [signal, listener] of installed) process.on(signal, listener)
  return () => {
    for (const [signal, listener] of installed) process.removeListener(signal, listener)
  }
}
