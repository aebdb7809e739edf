/**
 * Where `icc serve` listens by default, shared by the host and the clients: `$XDG_RUNTIME_DIR/icc/icc.sock`,
 * else `$TMPDIR/icc-<uid>/icc.sock`; and the checks that make that folder and a `--socket` path safe to use.
 *
 * The default folder may sit in a directory every local user can write (/tmp), so another user could create it
 * first. It is trusted only when it is a real directory (not a symlink), owned by the current user and writable
 * by nobody else; that is checked with fstat on a descriptor opened with O_NOFOLLOW | O_DIRECTORY (one look at
 * one object, not two lookups by path). The host creates it 0700 when it is missing; the clients only check it.
 * A path given with `--socket` is the user's choice: only a stale socket there (one nobody answers on) is removed.
 */
import {constants} from 'node:fs'
import {lstat, mkdir, open, unlink} from 'node:fs/promises'
import {connect} from 'node:net'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'

import {UsageError} from '../errors.js'

export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'icc', 'icc.sock')
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0
  return join(tmpdir(), `icc-${uid}`, 'icc.sock')
}

const currentUid = () => (typeof process.getuid === 'function' ? process.getuid() : 0)

function unsafeFolder(dir: string, why: string): UsageError {
  return new UsageError('UNSAFE_SOCKET_FOLDER', `The socket folder ${dir} is not safe to use: ${why}.`, {
    details: {folder: dir},
    suggestions: [
      `Remove it (as its owner or root) so icc serve can create it again, private to you (0700), or set XDG_RUNTIME_DIR / pass --socket with a path in a folder only you can write.`,
    ],
  })
}

/**
 * Check that `dir` is a directory (not a symlink), owned by the current user, that no one else can write to;
 * with `create`, make it (0700) when it does not exist. Throws UNSAFE_SOCKET_FOLDER (exit 2) otherwise.
 */
export async function checkSocketFolder(dir: string, options: {create?: boolean} = {}): Promise<void> {
  const flags = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW
  let handle
  try {
    handle = await open(dir, flags)
  } catch (error) {
    const {code} = error as NodeJS.ErrnoException
    if (code === 'ENOENT' && options.create) {
      // not recursive: the parent ($TMPDIR, $XDG_RUNTIME_DIR) must exist; EEXIST (someone was quicker) is refused
      // by the check below on the next open
      await mkdir(dir, {mode: 0o700}).catch((error_: NodeJS.ErrnoException) => {
        if (error_.code !== 'EEXIST') throw error_
      })
      return checkSocketFolder(dir)
    }

    if (code === 'ENOENT') return // nothing there: the client's connect says "nothing is listening"
    // O_NOFOLLOW | O_DIRECTORY on a symbolic link fails with ELOOP or ENOTDIR: say which it is
    const link = await lstat(dir).then(
      (s) => s.isSymbolicLink(),
      () => false,
    )
    if (code === 'ELOOP' || link) throw unsafeFolder(dir, 'it is a symbolic link')
    if (code === 'ENOTDIR') throw unsafeFolder(dir, 'it is not a directory')
    throw unsafeFolder(dir, `it cannot be opened (${(error as Error).message})`)
  }

  try {
    const st = await handle.stat()
    const uid = currentUid()
    if (st.uid !== uid) throw unsafeFolder(dir, `it belongs to user id ${st.uid}, not to you (user id ${uid})`)
    if ((st.mode & 0o022) !== 0) {
      throw unsafeFolder(dir, `other users can write to it (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')})`)
    }
  } finally {
    await handle.close()
  }
}

/** Does a server answer on this unix socket? */
async function socketAnswers(path: string): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = connect(path)
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

/**
 * Make `path` ready to listen on: the default folder checked (and created), a given path's folder created when
 * missing; at the path itself, nothing, or a stale socket (removed). A live socket is SOCKET_IN_USE, anything
 * else (a file, a folder, a link) SOCKET_PATH_TAKEN, both exit 2, and nothing is removed.
 */
export async function prepareSocketPath(path: string, isDefault: boolean): Promise<void> {
  const dir = dirname(path)
  if (isDefault) {
    // $XDG_RUNTIME_DIR itself exists (the session's); $TMPDIR too
    await checkSocketFolder(dir, {create: true})
  } else {
    await mkdir(dir, {mode: 0o700, recursive: true})
  }

  let st
  try {
    st = await lstat(path)
  } catch {
    return
  }

  if (!st.isSocket()) {
    const what = st.isSymbolicLink() ? 'a symbolic link' : st.isDirectory() ? 'a directory' : 'a file'
    throw new UsageError(
      'SOCKET_PATH_TAKEN',
      `${path} exists and is ${what}, not a socket; icc serve leaves it alone.`,
      {
        suggestions: ['Remove it yourself if it is not needed, or pass --socket with another path.'],
      },
    )
  }

  if (await socketAnswers(path)) {
    throw new UsageError('SOCKET_IN_USE', `Another server is already listening on ${path}.`, {
      suggestions: ['Stop it, or pass --socket with another path.'],
    })
  }

  await unlink(path)
}
