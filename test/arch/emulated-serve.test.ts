/**
 * icc itself on the connector's other architectures (`npm run test:arch`; part of `npm test`): under qemu
 * user-mode emulation, the real `icc serve` runs on the emulated Node (armv7l 20.11, arm64 22) with icc's
 * production dependencies installed for that CPU from the npm registry, loads a SageMaker-format CIFAR ResNet-20
 * written by icc's MXNet writer, and classifies a bundled sample through the emulated `icc invoke` and through the
 * Python Greengrass ML SDK over the IPC port; both answers match the x86 native `icc predict` (max abs diff
 * <= 1e-5, same top class). A machine that cannot emulate skips with the reason (.ci/run sets emulation up).
 */
import {execa} from 'execa'
import assert from 'node:assert/strict'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {icc, REPO_ROOT} from '../helpers/cli.js'
import {
  AARCH64,
  type ArchTarget,
  ARMV7,
  cannotEmulate,
  type EmulatedIcc,
  prepareEmulatedIcc,
} from '../helpers/emulation.js'
import {python, sdkCasesScript} from '../helpers/lambda.js'
import {writeModelDir} from '../helpers/model-fixtures.js'
import {type RunningHost, startServe} from '../helpers/serve-host.js'

const CLASSES = 10
const SERVICE = 'imageClassification'
const REGION = 'us-east-1'
const SAMPLE = join(REPO_ROOT, 'assets', 'samples', 'lemon.jpg')

/** How far apart two answers are, and whether they agree on the top class. */
function compare(a: number[], b: number[]): {maxDiff: number; sameTop: boolean} {
  assert.equal(a.length, b.length)
  const top = (v: number[]) => v.indexOf(Math.max(...v))
  return {maxDiff: Math.max(...a.map((x, i) => Math.abs(x - b[i]))), sameTop: top(a) === top(b)}
}

function seconds(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(1)} s`
}

/** Does this build's `icc serve` take `--runtime` (the onnxruntime-web backend armv7 needs)? */
async function hasRuntimeFlag(): Promise<boolean> {
  const help = await icc(['serve', '--help'])
  return help.stdout.includes('--runtime')
}

/** The runtime flags a target's serve needs, or why it cannot run in this build. */
type RuntimeChoice = {args: string[]} | {skip: string}

function describeArch(target: ArchTarget, runtime: () => Promise<RuntimeChoice>) {
  describe(`icc serve emulated on ${target.cpu} (${target.platform})`, function () {
    this.timeout(900_000)
    let dir: string
    let emulated: EmulatedIcc
    let host: RunningHost | undefined
    let native: number[]
    let ipcEnv: Record<string, string>

    before(async function () {
      const choice = await runtime()
      const why = (await cannotEmulate(target)) ?? ('skip' in choice ? choice.skip : undefined)
      if (why || 'skip' in choice) {
        console.log(`      skipped: ${why}`)
        this.skip()
      }

      dir = await mkdtemp(join(tmpdir(), `icc-arch-${target.cpu}-`))
      const model = await writeModelDir(join(dir, 'model'), {numClasses: CLASSES})
      const x86 = await icc(['predict', '-m', model.dir, SAMPLE, '--cache-dir', join(dir, 'cache-x86')])
      assert.equal(x86.exitCode, 0, x86.stderr)
      native = JSON.parse(x86.stdout.trim()) as number[]

      let t = performance.now()
      emulated = await prepareEmulatedIcc(target, join(dir, 'app'))
      console.log(`      prepared ${target.nodePackage} and the ${target.cpu} dependencies in ${seconds(t)}`)
      t = performance.now()
      host = await startServe(
        ['--model', model.dir, '--service-name', SERVICE, '--cache-dir', join(dir, 'cache'), '--ipc-port', '0'],
        {
          command: (args) => emulated.command([...args, '--region', REGION, '--print-env', '--json', ...choice.args]),
          env: {PATH: process.env.PATH ?? ''},
          socket: join(dir, 'icc.sock'),
          timeoutMs: 600_000,
        },
      )
      console.log(`      emulated icc serve ready in ${seconds(t)}`)
      ipcEnv = (JSON.parse(host.stdout().split('\n')[0]) as {ipc: {env: Record<string, string>}}).ipc.env
    })

    after(async () => {
      await host?.stop()
      if (dir) await rm(dir, {force: true, recursive: true})
    })

    it(`serves on ${target.cpu} and the emulated icc invoke matches x86 within 1e-5, same top class`, async () => {
      const t = performance.now()
      const [file, args] = emulated.command(['invoke', SAMPLE, '--socket', host!.socket, '--service-name', SERVICE])
      const r = await execa(file, args, {env: {NO_COLOR: '1'}, reject: false, timeout: 600_000})
      assert.equal(r.exitCode, 0, String(r.stderr))
      console.log(`      emulated icc invoke answered in ${seconds(t)}`)
      const {maxDiff, sameTop} = compare(JSON.parse(String(r.stdout).trim()) as number[], native)
      assert.ok(maxDiff <= 1e-5, `max abs diff ${maxDiff}`)
      assert.ok(sameTop, 'top class differs')
    })

    it('answers the Python Greengrass ML SDK over the IPC port with the x86 answer', async () => {
      const script = join(dir, 'classify.py')
      await writeFile(script, `${sdkCasesScript(SERVICE)}\nprint(json.dumps(attempt({}, **good)))\n`)
      const r = await python(script, ipcEnv, [SAMPLE])
      assert.equal(r.exitCode, 0, String(r.stderr))
      const answer = JSON.parse(String(r.stdout)) as {error?: string; message?: string; ok?: string}
      assert.ok(answer.ok, `${answer.error}: ${answer.message}`)
      const {maxDiff, sameTop} = compare(JSON.parse(answer.ok) as number[], native)
      assert.ok(maxDiff <= 1e-5, `max abs diff ${maxDiff}`)
      assert.ok(sameTop, 'top class differs')
    })
  })
}

describe('icc on the connector platforms under emulation (test:arch)', () => {
  // aarch64 (Jetson TX2 platform): onnxruntime-node's own linux-arm64 binary.
  describeArch(AARCH64, async () => ({args: []}))
  // armv7 (Raspberry Pi): no onnxruntime-node binary exists for 32-bit ARM, so the WebAssembly backend.
  describeArch(ARMV7, async () =>
    (await hasRuntimeFlag())
      ? {args: ['--runtime', 'wasm']}
      : {
          skip: 'this build of icc serve has no --runtime flag (the onnxruntime-web backend armv7 needs is not merged yet)',
        },
  )
})
