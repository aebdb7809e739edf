/**
 * Where `icc serve` listens by default, shared by the host and the clients: `$XDG_RUNTIME_DIR/icc/icc.sock`,
 * else `/tmp/icc-<uid>/icc.sock`. The directory is private to the user (0700), the socket 0660.
 */
import {tmpdir} from 'node:os'
import {join} from 'node:path'

export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'icc', 'icc.sock')
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0
  return join(tmpdir(), `icc-${uid}`, 'icc.sock')
}
