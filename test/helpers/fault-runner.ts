/**
 * The tests' runner for `icc serve --runner-entry`: the shipped runner (src/serve/runner-main.ts `runRunner`) with
 * faults a test asks for. A request asks with a marker appended to its image ({@link withFault}): the marker is
 * cut off before the image is decoded, and the fault runs once the image's decode is admitted (the host has been
 * told it started): `hang` (a busy loop, as a stuck native call would block the event loop), `sleep:MS`, `crash`
 * (exit 70 at once) or `alloc:MB` (touch that much memory and hold it). `ICC_TEST_LOAD_ALLOC_MB` in the
 * environment touches that much memory before the model loads.
 */
import {runRunner} from '../../src/serve/runner-main.js'

const MARKER = Buffer.from('\0ICC-FAULT:')
const held: Buffer[] = []

/** The image with a fault for the fault runner appended (the shipped runner would decode it as is). */
export function withFault(image: Uint8Array, fault: string): Buffer {
  return Buffer.concat([image, MARKER, Buffer.from(fault)])
}

function touchMemory(mb: number): void {
  const b = Buffer.allocUnsafe(mb * 1024 * 1024)
  for (let i = 0; i < b.length; i += 4096) b[i] = 1
  held.push(b)
}

async function runFault(fault: string): Promise<void> {
  const [name, arg] = fault.split(':')
  switch (name) {
    case 'alloc': {
      touchMemory(Number(arg || 256))
      await new Promise((r) => {
        setTimeout(r, 3000)
      })
      break
    }

    case 'crash': {
      process.exit(70)
      break
    }

    case 'hang': {
      const until = Date.now() + 10 * 60_000
      while (Date.now() < until) {
        // a stuck computation: the event loop never comes back
      }

      break
    }

    case 'sleep': {
      await new Promise((r) => {
        setTimeout(r, Number(arg || 1000))
      })
      break
    }

    default: {
      throw new Error(`unknown fault "${fault}"`)
    }
  }
}

/** Split a payload into its image and the fault appended by {@link withFault}, if any. */
function splitFault(payload: Buffer): {fault?: string; image: Buffer} {
  const at = payload.lastIndexOf(MARKER)
  if (at === -1 || payload.length - at > 64) return {image: payload}
  return {fault: payload.subarray(at + MARKER.length).toString(), image: payload.subarray(0, at)}
}

// only when run as the runner program (not when a test imports withFault)
if (process.env.ICC_RUNNER_CONFIG) {
  await runRunner({
    beforeDecode(payload) {
      const {fault, image} = splitFault(payload)
      return {admitted: fault ? async () => runFault(fault) : undefined, image}
    },
    beforeLoad() {
      if (process.env.ICC_TEST_LOAD_ALLOC_MB) touchMemory(Number(process.env.ICC_TEST_LOAD_ALLOC_MB))
    },
  })
}
