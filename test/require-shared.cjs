// Root hook of the full test suite (.mocharc.json): fail once, with what to do, when ../shared is missing.
// The tiers that read it (model numerics, symbol and params readers, preprocessing, quantization, the connector
// documentation's examples) would otherwise each fail with ENOENT; `npm run test:unit` never needs it.
const {existsSync} = require('node:fs')
const {join} = require('node:path')

const shared = join(__dirname, '..', '..', 'shared')

exports.mochaHooks = {
  beforeAll() {
    if (existsSync(join(shared, 'seed', 'image-classification-connector.md'))) return
    throw new Error(
      `${shared} is missing. The full suite (npm test) reads the connector documentation and the real MXNet ` +
        'models there (tiers: model numerics, symbol/params readers, preprocessing, quantization, connector ' +
        'examples). Put the shared/ folder beside this repository, or run `npm run test:unit` (no ../shared, ' +
        'no child processes).',
    )
  },
}
