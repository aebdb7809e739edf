// @tier unit: needs neither ../shared nor child processes (npm run test:unit)
import assert from 'node:assert/strict'
import {mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {detectPlatform, parseOsRelease} from '../../src/device/platform.js'
import {tempDir} from './fixtures.js'

async function rootWithModel(model?: string): Promise<string> {
  const root = await tempDir('plat')
  if (model !== undefined) {
    await mkdir(join(root, 'proc/device-tree'), {recursive: true})
    await writeFile(join(root, 'proc/device-tree/model'), `${model}\0`)
  }

  return root
}

describe('device: platform detection from fixture /proc files', () => {
  it('a Jetson TX2 from its device-tree model', async () => {
    const root = await rootWithModel('quill') // an unrelated model string first: aarch64 alone is not a TX2
    assert.equal((await detectPlatform({machine: 'aarch64', root})).platform, 'jtx2') // the catalog maps aarch64 to jtx2
    const tx2 = await rootWithModel('NVIDIA Jetson TX2 Developer Kit')
    const r = await detectPlatform({machine: 'aarch64', root: tx2})
    assert.equal(r.platform, 'jtx2')
    assert.equal(r.model, 'NVIDIA Jetson TX2 Developer Kit')
    assert.match(r.reason, /Jetson TX2/)
  })

  it('a Raspberry Pi, also with a 64-bit kernel', async () => {
    const pi = await rootWithModel('Raspberry Pi 3 Model B Rev 1.2')
    assert.equal((await detectPlatform({machine: 'armv7l', root: pi})).platform, 'armv7')
    const r = await detectPlatform({machine: 'aarch64', root: pi})
    assert.equal(r.platform, 'armv7')
    assert.match(r.reason, /32-bit armhf/)
  })

  it('x86_64 without a device tree, and no platform for other machines', async () => {
    const none = await rootWithModel()
    assert.equal((await detectPlatform({machine: 'x86_64', root: none})).platform, 'x86_64')
    const riscv = await detectPlatform({machine: 'riscv64', root: none})
    assert.equal(riscv.platform, undefined)
    assert.match(riscv.reason, /no Image Classification connector exists for machine "riscv64"/)
  })

  it('parses os-release fields with either quoting', () => {
    assert.deepEqual(parseOsRelease('NAME="Amazon Linux"\nID="amzn"\nID_LIKE=\'centos rhel\'\nVERSION_ID=2\n# c\n'), {
      ID: 'amzn',
      ID_LIKE: 'centos rhel',
      NAME: 'Amazon Linux',
      VERSION_ID: '2',
    })
  })
})
