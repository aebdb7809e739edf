import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'

import {ModelError} from '../../src/errors.js'
import {readParams} from '../../src/model/mxnet-params.js'
import {inferShapes, parseSymbol} from '../../src/model/mxnet-symbol.js'
import {writeParams} from '../../src/model/writer.js'
import {SHARED} from '../helpers/cli.js'

const MODELS = join(SHARED, 'models')

function expectModelError(fn: () => unknown, pattern: RegExp, code = 'BAD_PARAMS'): void {
  try {
    fn()
  } catch (error) {
    assert.ok(error instanceof ModelError, String(error))
    assert.equal(error.code, code)
    assert.match(error.message, pattern)
    return
  }

  assert.fail('expected a ModelError')
}

describe('MXNet params reader', () => {
  const arrays = [
    {data: [1.5, -2.25, 3, 0.125, 65_504, -0.000_061_035_156_25], name: 'arg:conv0_weight', shape: [2, 3]},
    {data: [0.1, 0.2, 0.3], name: 'aux:bn_moving_var', shape: [3]},
    {data: [7], name: 'fc_bias', shape: [1]},
  ]
  for (const format of ['legacy', 'V1', 'V2', 'V3'] as const) {
    for (const dtype of ['float32', 'float16', 'float64'] as const) {
      it(`round-trips ${format} records of ${dtype}`, () => {
        const p = readParams(writeParams(arrays, {dtype, format}))
        assert.equal(p.format, format)
        assert.deepEqual(
          p.arrays.map((a) => [a.kind, a.name, a.shape, a.dtype]),
          [
            ['arg', 'conv0_weight', [2, 3], dtype],
            ['aux', 'bn_moving_var', [3], dtype],
            ['none', 'fc_bias', [1], dtype],
          ],
        )
        const tol = dtype === 'float16' ? 1e-3 : 1e-7
        for (const [i, a] of arrays.entries()) {
          for (const [k, v] of a.data.entries())
            assert.ok(Math.abs(p.arrays[i].data[k] - v) <= Math.abs(v) * tol, `${v}`)
        }

        assert.equal(p.byName.get('bn_moving_var')?.data.length, 3)
      })
    }
  }

  it('reads files without names', () => {
    const p = readParams(writeParams([{data: [1, 2], shape: [2]}], {names: true}))
    assert.equal(p.arrays[0].name, '')
    assert.equal(p.arrays[0].kind, 'none')
    assert.deepEqual(Array.from(p.arrays[0].data), [1, 2])
    assert.equal(readParams(writeParams([{data: [3], shape: [1]}])).arrays[0].name, '')
  })

  it('refuses sparse storage with a clear error', () => {
    const bytes = writeParams([{data: [1], name: 'arg:w', shape: [1]}], {format: 'V2'})
    new DataView(bytes.buffer).setInt32(24 + 4, 1, true) // storage type after the record magic
    expectModelError(() => readParams(bytes), /sparse storage/, 'SPARSE_PARAMS')
  })

  it('refuses a bad file magic', () => {
    const bytes = writeParams([{data: [1], name: 'arg:w', shape: [1]}])
    bytes[0] = 0x13
    expectModelError(() => readParams(bytes, 'x.params'), /x\.params: bad magic/)
    expectModelError(() => readParams(new Uint8Array(3)), /too short/)
  })

  it('refuses truncated files at every length', () => {
    const bytes = writeParams([{data: [1, 2, 3, 4], name: 'arg:w', shape: [2, 2]}], {format: 'V2'})
    for (let n = 16; n < bytes.length; n += 3) {
      if (n === bytes.length) continue
      assert.throws(() => readParams(bytes.subarray(0, n)), ModelError, `length ${n}`)
    }
  })

  it('refuses declared sizes larger than the file without allocating them', () => {
    const bytes = writeParams([{data: [1, 2, 3, 4], name: 'arg:w', shape: [2, 2]}], {format: 'V2'})
    const view = new DataView(bytes.buffer)
    // first dim (int64) at 24 (magic) + 4 + 4 (stype) + 4 (ndim)
    view.setBigInt64(36, 1n << 40n, true)
    expectModelError(() => readParams(bytes), /larger than the file/)
    const count = writeParams([{data: [1], name: 'arg:w', shape: [1]}])
    new DataView(count.buffer).setBigUint64(16, 1n << 50n, true)
    expectModelError(() => readParams(count), /more than the file can hold/)
    const dims = writeParams([{data: [1], name: 'arg:w', shape: [1]}], {format: 'legacy'})
    new DataView(dims.buffer).setUint32(24, 1000, true)
    expectModelError(() => readParams(dims), /1000 dimensions/)
  })

  it('reads the fashion-MNIST V2 params (Gluon export, float32)', () => {
    const p = readParams(readFileSync(join(MODELS, 'fashion-mnist-lenet', 'fashion-mnist-0039.params')))
    assert.equal(p.format, 'V2')
    assert.deepEqual(p.byName.get('hybridsequential16_conv0_weight')?.shape, [8, 1, 4, 4])
    assert.deepEqual(p.byName.get('hybridsequential16_dense1_weight')?.shape, [10, 16])
  })

  for (const [stage, size] of [
    ['det1', 12],
    ['det2', 24],
  ] as const) {
    it(`reads the MTCNN ${stage} legacy params with the names and shapes its symbol implies`, () => {
      const dir = join(MODELS, 'mtcnn-legacy')
      const p = readParams(readFileSync(join(dir, `${stage}-0001.params`)))
      assert.equal(p.format, 'legacy')
      const sym = parseSymbol(readFileSync(join(dir, `${stage}-symbol.json`), 'utf8'))
      const {varShapes} = inferShapes(sym, {data: [1, 3, size, size]})
      const wanted = [...varShapes].filter(([n]) => n !== 'data' && !n.endsWith('label'))
      assert.deepEqual(p.arrays.map((a) => a.name).sort(), wanted.map(([n]) => n).sort())
      for (const [name, shape] of wanted) assert.deepEqual(p.byName.get(name)?.shape, shape, name)
      assert.ok(p.arrays.every((a) => a.kind === 'arg' && a.dtype === 'float32'))
      assert.ok(p.arrays.every((a) => a.data.every((v) => Number.isFinite(v))))
    })
  }
})
