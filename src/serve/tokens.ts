/**
 * The shared secrets of `icc serve` (the Greengrass IPC token, the TCP listener's token): read from a file that
 * only its owner can read (so it never has to be on a command line, where every local user can read it in
 * /proc/PID/cmdline), and compared in constant time.
 */
import {createHash, timingSafeEqual} from 'node:crypto'
import {constants} from 'node:fs'
import {open} from 'node:fs/promises'

import {UsageError} from '../errors.js'

/** A checker for one token: true when `given` is it (compared as SHA-256 digests, in constant time). */
export function tokenChecker(token: string): (given: string | undefined) => boolean {
  const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest()
  const expected = digest(token)
  return (given) => typeof given === 'string' && given.length > 0 && timingSafeEqual(digest(given), expected)
}

/**
 * The token in `path` (one line; a trailing newline is dropped). The file must be a regular file (not a link) of
 * the current user that nobody else can read or write (mode 0600 or 0400): TOKEN_FILE_UNSAFE (exit 2) otherwise.
 */
export async function readTokenFile(path: string, flag: string): Promise<string> {
  const unsafe = (why: string) =>
    new UsageError('TOKEN_FILE_UNSAFE', `${flag} ${path}: ${why}.`, {
      suggestions: [`Keep the token in a file of your own that only you can read: chmod 600 ${path}`],
    })
  let handle
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW)
  } catch (error) {
    const {code} = error as NodeJS.ErrnoException
    throw code === 'ELOOP' ? unsafe('it is a symbolic link') : unsafe(`cannot read it (${(error as Error).message})`)
  }

  try {
    const st = await handle.stat()
    const uid = typeof process.getuid === 'function' ? process.getuid() : 0
    if (!st.isFile()) throw unsafe('it is not a regular file')
    if (st.uid !== uid) throw unsafe(`it belongs to user id ${st.uid}, not to you (user id ${uid})`)
    if ((st.mode & 0o077) !== 0) {
      throw unsafe(`other users can read or write it (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')})`)
    }

    if (st.size > 4096) throw unsafe(`it is ${st.size} bytes; a token is one short line`)
    const token = (await handle.readFile('utf8')).replace(/\r?\n$/, '')
    if (token.length === 0 || /[\r\n]/.test(token)) throw unsafe('it must hold the token on one line')
    return token
  } finally {
    await handle.close()
  }
}
