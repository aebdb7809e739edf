/**
 * The conventions oclif users expect (issue 20, items 1-2): `icc help`, `-h`, "did you mean" for a mistyped
 * command or flag, shell completion, and usage errors that keep exit 2 and a specific code with `--json`.
 */
import {execa} from 'execa'
import assert from 'node:assert/strict'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {BIN, icc, iccJson, REPO_ROOT, unwrap} from './helpers/cli.js'

describe('CLI conventions', function () {
  this.timeout(120_000)

  it('icc help, icc help serve and -h print help (exit 0)', async () => {
    const all = await icc(['help'])
    assert.equal(all.exitCode, 0, all.stderr)
    assert.match(all.stdout, /COMMANDS[\s\S]*serve[\s\S]*validate-connector/)
    for (const args of [
      ['help', 'serve'],
      ['serve', '-h'],
    ]) {
      const r = await icc(args)
      assert.equal(r.exitCode, 0, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stdout, /USAGE\s+\$ icc serve[\s\S]*--definition/)
    }
  })

  it('a mistyped flag gets "did you mean", exit 2, with and without --json', async () => {
    const plain = await icc(['invoke', 'x.jpg', '--topk', '3'])
    assert.equal(plain.exitCode, 2)
    assert.match(unwrap(plain.stderr), /Nonexistent flag: --topk[\s\S]*Did you mean --top-k\?/)
    const {exitCode, json} = await iccJson(['invoke', 'x.jpg', '--topk', '3'])
    assert.equal(exitCode, 2)
    assert.equal(json.error.code, 'UNKNOWN_FLAG')
    assert.ok(json.error.suggestions.includes('Did you mean --top-k?'), json.error.suggestions.join('|'))
  })

  it('usage errors keep exit 2 and a specific code with --json', async () => {
    const cases: Array<[string[], string, RegExp]> = [
      [['invoke'], 'MISSING_ARGUMENT', /Missing 1 required arg/],
      [['serve', '--port', 'abc'], 'INVALID_FLAG_VALUE', /--port: Expected an integer but received: abc/],
      [['serve', '--log-level', 'loud'], 'INVALID_FLAG_VALUE', /--log-level=loud/],
      [['invoke', 'a.jpg', 'b.jpg'], 'UNEXPECTED_ARGUMENT', /Unexpected argument: b\.jpg/],
    ]
    for (const [args, code, message] of cases) {
      const {exitCode, json} = await iccJson(args)
      assert.equal(exitCode, 2, args.join(' '))
      assert.equal(json.error.code, code, args.join(' '))
      assert.match(json.error.message, message)
      const plain = await icc(args)
      assert.equal(plain.exitCode, 2, args.join(' '))
      assert.match(plain.stderr, new RegExp(`Code: ${code}`))
    }
  })

  it('a mistyped command: "did you mean" on a terminal, exit 127 with the help hint in scripts', async () => {
    const script = await icc(['serv'])
    assert.equal(script.exitCode, 127)
    assert.match(script.stderr, /serv is not a icc command[\s\S]*icc help/)
    // on a terminal (a pty from util-linux `script`), oclif's not-found plugin asks; answer no
    const tty = await execa('script', ['-qec', `${process.execPath} ${BIN} serv`, '/dev/null'], {
      cwd: REPO_ROOT,
      env: {NO_COLOR: '1'},
      input: 'n\r',
      reject: false,
      timeout: 60_000,
    })
    assert.match(String(tty.stdout), /Did you mean serve\?/)
  })

  it('bash and zsh completion scripts (oclif autocomplete)', async () => {
    const home = await mkdtemp(join(tmpdir(), 'icc-ac-'))
    try {
      const env = {HOME: home, XDG_CACHE_HOME: join(home, '.cache')}
      for (const shell of ['bash', 'zsh']) {
        const r = await icc(['autocomplete', 'script', shell], {env})
        assert.equal(r.exitCode, 0, r.stderr)
        assert.match(r.stdout, new RegExp(`ICC_AC_${shell.toUpperCase()}_SETUP_PATH=`))
      }

      const built = await icc(['autocomplete', '--refresh-cache'], {env})
      assert.equal(built.exitCode, 0, built.stderr)
      const setup = await readFile(join(home, '.cache', 'icc', 'autocomplete', 'functions', 'bash', 'icc.bash'), 'utf8')
      assert.match(setup, /serve/)
      assert.match(setup, /--definition/)
    } finally {
      await rm(home, {force: true, recursive: true})
    }
  })
})

describe('npm in this repository', function () {
  this.timeout(120_000)

  it('warns about no unknown project config, and onnxruntime-node may not download at install', async () => {
    const r = await execa('npm', ['config', 'get', 'fund'], {cwd: REPO_ROOT, reject: false})
    assert.equal(r.exitCode, 0, String(r.stderr))
    assert.doesNotMatch(String(r.stderr), /Unknown project config/)
    const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8'))
    assert.equal(pkg.allowScripts['onnxruntime-node'], false)
    // older npm runs the postinstall: CI sets the variable the script reads, and the script then exits at once
    const ci = await readFile(join(REPO_ROOT, '.ci', 'run'), 'utf8')
    assert.match(ci, /export ONNXRUNTIME_NODE_INSTALL=skip\n(.*\n)*npm ci/)
    const install = await execa(process.execPath, ['node_modules/onnxruntime-node/script/install.js'], {
      cwd: REPO_ROOT,
      env: {HTTPS_PROXY: 'http://127.0.0.1:9', ONNXRUNTIME_NODE_INSTALL: 'skip', https_proxy: 'http://127.0.0.1:9'},
      reject: false,
    })
    assert.equal(install.exitCode, 0, String(install.stderr))
    assert.equal(String(install.stdout) + String(install.stderr), '')
  })
})
