/**
 * Mocha configuration of the fast test tier (`npm run test:unit`): the test files whose first line declares
 * `@tier unit`, i.e. those that need neither ../shared nor child processes. `npm test` runs every tier
 * (.mocharc.json). A test file without the marker runs only in the full suite.
 */
const {readdirSync, readFileSync} = require('node:fs')
const {join, relative} = require('node:path')

const testFiles = (dir) =>
  readdirSync(dir, {withFileTypes: true}).flatMap((e) =>
    e.isDirectory() ? testFiles(join(dir, e.name)) : e.name.endsWith('.test.ts') ? [join(dir, e.name)] : [],
  )

const root = __dirname
const unit = testFiles(join(root, 'test'))
  .filter((file) => readFileSync(file, 'utf8').split('\n', 1)[0].includes('@tier unit'))
  .map((file) => join('dist', relative(root, file)).replace(/\.ts$/, '.js'))

module.exports = {
  spec: unit,
  timeout: 60_000,
  reporter: './test/reporter.cjs',
}
