import assert from 'node:assert/strict'

import {
  connectorArn,
  CONNECTORS,
  parametersFor,
  parseConnectorArn,
  platformForArchitecture,
} from '../../src/connector/catalog.js'
import {iccJson} from '../helpers/cli.js'

describe('connector catalog', () => {
  it('has the three connectors of the documentation with their ARNs', () => {
    assert.deepEqual(
      CONNECTORS.map((c) => connectorArn(c, 1)),
      [
        'arn:aws:greengrass:region::/connectors/ImageClassificationAarch64JTX2/versions/1',
        'arn:aws:greengrass:region::/connectors/ImageClassificationx86-64/versions/1',
        'arn:aws:greengrass:region::/connectors/ImageClassificationARMv7/versions/1',
      ],
    )
  })

  it('offers GPUAcceleration only on the Jetson TX2 connector, and MLFeedbackConnectorConfigId only on v2', () => {
    for (const c of CONNECTORS) {
      const v1 = new Set(parametersFor(c, 1).map((p) => p.name))
      const v2 = parametersFor(c, 2)
      assert.equal(v1.has('GPUAcceleration'), c.platform === 'jtx2')
      assert.ok(!v1.has('MLFeedbackConnectorConfigId'))
      assert.deepEqual(
        v2.find((p) => p.name === 'MLFeedbackConnectorConfigId'),
        {
          name: 'MLFeedbackConnectorConfigId',
          required: false,
        },
      )
    }
  })

  it('keeps the library tables exactly as documented', () => {
    const x86 = CONNECTORS.find((c) => c.platform === 'x86_64')!
    assert.deepEqual(
      x86.libraries.map((l) => `${l.soname}:${l.minimumVersions.join('+')}`),
      [
        'ld-linux-x86-64.so.2:GCC_4.0.0',
        'libc.so.6:GLIBC_2.4',
        'libgfortran.so.3:GFORTRAN_1.0',
        'libm.so.6:GLIBC_2.23',
        'libpthread.so.0:GLIBC_2.2.5',
        'librt.so.1:GLIBC_2.2.5',
        'libstdc++.so.6:CXXABI_1.3.8+GLIBCXX_3.4.21',
      ],
    )
    const arm = CONNECTORS.find((c) => c.platform === 'armv7')!
    assert.deepEqual(arm.libraries.at(-1), {
      minimumVersions: ['CXXABI_1.3.8', 'CXXABI_ARM_1.3.3', 'GLIBCXX_3.4.20'],
      soname: 'libstdc++.so.6',
    })
    const jtx2 = CONNECTORS.find((c) => c.platform === 'jtx2')!
    assert.equal(jtx2.libraries.length, 14)
    assert.deepEqual(jtx2.libraries.find((l) => l.soname === 'libgomp.so.1')?.minimumVersions, ['GOMP_4.0', 'OMP_1.0'])
    assert.deepEqual(
      jtx2.libraries.filter((l) => l.minimumVersions.length === 0).map((l) => l.soname),
      [
        'libcublas.so.9.0',
        'libcudart.so.9.0',
        'libcudnn.so.7',
        'libcufft.so.9.0',
        'libcurand.so.9.0',
        'libcusolver.so.9.0',
      ],
    )
  })

  it('parses connector ARNs and rejects others', () => {
    const p = parseConnectorArn('arn:aws:greengrass:us-west-2::/connectors/ImageClassificationARMv7/versions/2')
    assert.equal(p?.connector.platform, 'armv7')
    assert.equal(p?.version, 2)
    assert.equal(p?.region, 'us-west-2')
    assert.equal(
      parseConnectorArn('arn:aws:greengrass:us-west-2::/connectors/ImageClassificationARMv7/versions/3'),
      undefined,
    )
    assert.equal(parseConnectorArn('arn:aws:greengrass:us-west-2::/connectors/Twilio/versions/1'), undefined)
  })

  it('maps uname -m to platforms', () => {
    assert.equal(platformForArchitecture('x86_64'), 'x86_64')
    assert.equal(platformForArchitecture('armv7l'), 'armv7')
    assert.equal(platformForArchitecture('aarch64'), 'jtx2')
    assert.equal(platformForArchitecture('mips'), undefined)
  })

  it('icc list-connectors --json prints the catalog', async () => {
    const {exitCode, json} = await iccJson(['list-connectors'])
    assert.equal(exitCode, 0)
    assert.equal(json.connectors.length, 3)
    assert.equal(json.connectors[1].name, 'ImageClassificationx86-64')
    assert.equal(json.connectors[0].supportsGpu, true)
  })
})
