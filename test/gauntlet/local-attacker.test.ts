/**
 * Another local user is an attacker (issue 21, items 1-2): the default socket folder in a shared $TMPDIR
 * (XDG_RUNTIME_DIR unset) that someone else created first, or that is a symbolic link, is refused by `icc serve`
 * and by `icc invoke` before connecting; `--socket PATH` removes only a stale socket. Real processes, a real second
 * user (created with useradd here, removed after; skipped with a printed reason when not root).
 */
import {execa} from 'execa'
import assert from 'node:assert/strict'
import {chmodSync, existsSync, lstatSync, readFileSync, statSync} from 'node:fs'
import {chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile} from 'node:fs/promises'
import {createServer, type Server} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {icc, unwrap} from '../helpers/cli.js'
import {writeTinyOnnxModel} from '../helpers/onnx-tiny.js'
import {http, noiseImage, startServe, waitFor} from '../helpers/serve-host.js'

const uid = process.getuid?.() ?? 0
/** `icc ARGS` with $TMPDIR = `tmp` and no XDG_RUNTIME_DIR: the default socket is `<tmp>/icc-<uid>/icc.sock`. */
const withTmp = (tmp: string) => ({env: {TMPDIR: tmp, XDG_RUNTIME_DIR: ''}, timeoutMs: 60_000})

/** A stale socket: a process that listened on it was SIGKILLed (the file stays, nobody answers). */
async function staleSocket(path: string): Promise<void> {
  const code = `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`
  await execa(process.execPath, ['-e', code], {reject: false})
  assert.ok(lstatSync(path).isSocket(), 'the stale socket was not left behind')
}

describe('gauntlet: another local user and the socket path', function () {
  this.timeout(120_000)
  let dir: string
  let model: string
  let image: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'icc-attacker-'))
    model = await writeTinyOnnxModel(join(dir, 'model.onnx'))
    image = join(dir, 'noise.jpg')
    await writeFile(image, await noiseImage('jpeg'))
  })

  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  describe('with a second local user', () => {
    const attacker = `iccatk${process.pid}`
    let shared: string
    let attackerUid: number
    let forger: ReturnType<typeof execa> | undefined

    before(async function () {
      if (uid !== 0) {
        console.log(`      (skipped: creating a second local user needs root; running as uid ${uid})`)
        this.skip()
      }

      await execa('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', attacker])
      attackerUid = Number((await execa('id', ['-u', attacker])).stdout)
      // a shared temporary directory like /tmp: anyone may create entries (sticky)
      shared = join(dir, 'shared-tmp')
      await mkdir(shared)
      await chmod(shared, 0o1777)
      await chmod(dir, 0o755)
    })

    after(async () => {
      forger?.kill('SIGKILL')
      await forger
      if (uid === 0) await execa('userdel', [attacker], {reject: false})
    })

    it("refuses a default socket folder another user created first (serve and invoke), and never talks to the attacker's socket", async () => {
      const folder = join(shared, `icc-${uid}`)
      const sock = join(folder, 'icc.sock')
      // the attacker creates the folder world-writable and listens on the default path with a forged answer
      await execa('setpriv', [
        `--reuid=${attacker}`,
        `--regid=${attacker}`,
        '--clear-groups',
        'mkdir',
        '-m',
        '0777',
        folder,
      ])
      const forge = `
        require('net').createServer((c) => {
          require('fs').writeFileSync(${JSON.stringify(join(folder, 'connected'))}, 'yes')
          c.end('HTTP/1.1 200 OK\\r\\ncontent-length: 7\\r\\n\\r\\n[0.999]')
        }).listen(${JSON.stringify(sock)}, () => require('fs').chmodSync(${JSON.stringify(sock)}, 0o777))`
      // setpriv execs node itself (no parent left in between): killing `forger` ends the attacker's server
      forger = execa(
        'setpriv',
        [`--reuid=${attacker}`, `--regid=${attacker}`, '--clear-groups', process.execPath, '-e', forge],
        {
          reject: false,
        },
      )
      await waitFor(async () => existsSync(sock), 15_000, 'the forged socket')

      const served = await icc(['serve', '--model', model], withTmp(shared))
      assert.equal(served.exitCode, 2, served.stderr)
      assert.match(unwrap(served.stderr), /socket folder .* is not safe to use: it belongs to user id \d+, not to you/)
      assert.match(unwrap(served.stderr), /Remove it/)
      // nothing of the attacker's was touched: the folder keeps its owner and mode, the socket is there
      assert.equal(statSync(folder).uid, attackerUid)
      assert.equal(statSync(folder).mode & 0o777, 0o777)
      assert.ok(lstatSync(sock).isSocket())

      const invoked = await icc(['invoke', image], withTmp(shared))
      assert.equal(invoked.exitCode, 2, invoked.stderr)
      assert.doesNotMatch(invoked.stdout, /0\.999/)
      assert.match(unwrap(invoked.stderr), /UNSAFE_SOCKET_FOLDER|not safe to use/)
      assert.ok(!existsSync(join(folder, 'connected')), 'the client connected to the attacker socket')
    })

    it('refuses a default socket folder that is a symbolic link, leaving its target alone', async () => {
      const target = join(dir, 'target')
      await mkdir(target)
      await chmod(target, 0o755)
      await writeFile(join(target, 'icc.sock'), 'not yours to delete')
      const tmp = join(dir, 'tmp-link')
      await mkdir(tmp)
      await symlink(target, join(tmp, `icc-${uid}`))

      const served = await icc(['serve', '--model', model], withTmp(tmp))
      assert.equal(served.exitCode, 2, served.stderr)
      assert.match(unwrap(served.stderr), /is not safe to use: it is a symbolic link/)
      assert.equal(statSync(target).mode & 0o777, 0o755)
      assert.equal(readFileSync(join(target, 'icc.sock'), 'utf8'), 'not yours to delete')

      const invoked = await icc(['invoke', image], withTmp(tmp))
      assert.equal(invoked.exitCode, 2, invoked.stderr)
      assert.match(unwrap(invoked.stderr), /symbolic link/)
    })
  })

  it('refuses its own default folder when others can write to it; creates a missing one 0700 and serves there', async () => {
    const tmp = join(dir, 'tmp-own')
    await mkdir(join(tmp, `icc-${uid}`), {recursive: true})
    chmodSync(join(tmp, `icc-${uid}`), 0o777)
    const refused = await icc(['serve', '--model', model], withTmp(tmp))
    assert.equal(refused.exitCode, 2, refused.stderr)
    assert.match(unwrap(refused.stderr), /other users can write to it \(mode 0777\)/)

    await rm(join(tmp, `icc-${uid}`), {recursive: true})
    const sock = join(tmp, `icc-${uid}`, 'icc.sock')
    const host = await startServe(['--model', model], {env: {TMPDIR: tmp, XDG_RUNTIME_DIR: ''}})
    try {
      assert.equal(statSync(join(tmp, `icc-${uid}`)).mode & 0o777, 0o700)
      const r = await icc(['invoke', image], withTmp(tmp))
      assert.equal(r.exitCode, 0, r.stderr)
      assert.match(r.stdout, /^\[/)
      assert.equal((await http({socket: sock}, 'GET', '/ping')).status, 200)
    } finally {
      await host.stop()
    }
  })

  it('--socket PATH: a regular file, a folder or a live socket there is an error (nothing removed); a stale socket is replaced', async () => {
    const file = join(dir, 'precious.txt')
    await writeFile(file, 'keep me')
    const r1 = await icc(['serve', '--model', model, '--socket', file])
    assert.equal(r1.exitCode, 2, r1.stderr)
    assert.match(unwrap(r1.stderr), /exists and is a file, not a socket/)
    assert.equal(await readFile(file, 'utf8'), 'keep me')

    const folder = join(dir, 'a-folder')
    await mkdir(folder)
    const r2 = await icc(['serve', '--model', model, '--socket', folder])
    assert.equal(r2.exitCode, 2, r2.stderr)
    assert.match(unwrap(r2.stderr), /is a directory, not a socket/)
    assert.ok(statSync(folder).isDirectory())

    const live: Server = createServer()
    const liveSock = join(dir, 'live.sock')
    await new Promise<void>((resolve) => {
      live.listen(liveSock, resolve)
    })
    try {
      const r3 = await icc(['serve', '--model', model, '--socket', liveSock])
      assert.equal(r3.exitCode, 2, r3.stderr)
      assert.match(r3.stderr, /already listening/)
    } finally {
      live.close()
    }

    const stale = join(dir, 'stale.sock')
    await staleSocket(stale)
    const host = await startServe(['--model', model], {socket: stale})
    try {
      assert.equal((await http({socket: stale}, 'GET', '/ping')).status, 200)
    } finally {
      await host.stop()
    }
  })
})
