/**
 * `icc export-service`: the systemd unit and environment file, checked by systemd's own `systemd-analyze verify`
 * (Debian's systemd package), with the hardening and restart policy the issue asks for, settings passed as
 * single words from the environment file, and the same parameter errors as create-connector.
 */
import {execa} from 'execa'
import assert from 'node:assert/strict'
import {mkdtemp, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {iccJson, REPO_ROOT} from '../helpers/cli.js'
import {assertSameParameterError} from '../helpers/same-error.js'

const PARAMS = {
  LocalInferenceServiceMemoryLimitKB: '500000',
  LocalInferenceServiceName: 'imageClassification',
  LocalInferenceServiceTimeoutSeconds: '10',
  MLModelDestinationPath: '/srv/models/100% $HOME "cats"',
  MLModelResourceId: 'my-ml-resource',
  MLModelSageMakerJobArn: 'arn:aws:sagemaker:us-west-2:123456789012:training-job/MyImageClassifier',
}

async function verify(unit: string) {
  return execa('systemd-analyze', ['verify', '--man=no', unit], {reject: false})
}

describe('icc export-service', function () {
  this.timeout(120_000)
  let dir: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'icc-unit-'))
  })

  after(async () => {
    if (dir) await rm(dir, {force: true, recursive: true})
  })

  it('writes a hardened unit that systemd-analyze verify accepts', async () => {
    const params = join(dir, 'params.json')
    await writeFile(params, JSON.stringify(PARAMS))
    const out = join(dir, 'unit')
    const r = await iccJson([
      'export-service',
      '--parameters',
      params,
      '--output',
      out,
      '--node',
      process.execPath,
      '--icc-home',
      REPO_ROOT,
      '--ipc-port',
      '8000',
    ])
    assert.equal(r.exitCode, 0, r.stderr)
    const {unit, envFile} = r.json.units[0]
    const v = await verify(unit)
    assert.equal(v.exitCode, 0, `${v.stdout}\n${v.stderr}`)
    assert.doesNotMatch(String(v.stderr), /icc-imageClassification\.service:\d+:/, String(v.stderr))

    const text = await readFile(unit, 'utf8')
    for (const line of [
      'Restart=on-failure',
      'WantedBy=multi-user.target',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'PrivateDevices=yes',
      'User=icc',
    ]) {
      assert.ok(text.split('\n').includes(line), `${line} missing from\n${text}`)
    }

    assert.match(text, /^ExecStart=".*" ".*\/bin\/run\.js" serve --model \$\{ICC_MODEL\} /m)
    const env = await readFile(envFile, 'utf8')
    assert.match(env, /^ICC_MODEL="\/srv\/models\/100% \\\$HOME \\"cats\\""$/m)
    assert.match(env, /^AWS_CONTAINER_AUTHORIZATION_TOKEN="[\w-]{20,}"$/m)
    assert.equal((await stat(envFile)).mode & 0o077, 0, 'the env file holds the token: owner only')
  })

  it('verify fails on a broken unit (the check can fail)', async () => {
    const broken = join(dir, 'broken.service')
    await writeFile(broken, '[Service]\nExecStart=relative/path serve\nRestart=sometimes\n')
    const v = await verify(broken)
    assert.notEqual(`${v.exitCode}:${v.stderr}`, '0:', 'systemd-analyze verify found nothing wrong')
  })

  it('rejects parameters create-connector rejects, with the same message', async () => {
    const bad = join(dir, 'bad.json')
    await writeFile(bad, JSON.stringify({...PARAMS, LocalInferenceServiceMemoryLimitKB: 500_000}))
    await assertSameParameterError('export-service', bad, ['--output', join(dir, 'x')])
  })
})
