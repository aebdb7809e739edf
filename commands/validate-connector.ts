import {Args, Flags} from '@oclif/core'

import {validateConnectorFile, type ValidateConnectorResult} from '../src/connector/validate.js'
import {ExitCode} from '../src/errors.js'
import {BaseCommand} from './_base.js'
import {platformFlag} from './_platform.js'

export default class ValidateConnector extends BaseCommand {
  static override args = {
    file: Args.string({
      description: 'A Parameters JSON file, or a connector definition version JSON file.',
      required: true,
    }),
  }
  static override description = `Validate connector parameters or a whole connector definition version, offline.
The file is either a Parameters object (as for create-connector --parameters) or the JSON given to
aws greengrass create-connector-definition --initial-version ({"Connectors": [...]}). Every problem is reported at
once, each with its location and a fix. Exit codes: 0 valid, 2 invalid (or unreadable).`
  static override examples = [
    {command: '<%= config.bin %> <%= command.id %> connectors.json', description: 'Check a definition version file.'},
    {
      command: '<%= config.bin %> <%= command.id %> params.json --platform jtx2 --connector-version 2',
      description: 'Check a Parameters file for the JTX2 connector, version 2.',
    },
    {command: '<%= config.bin %> <%= command.id %> params.json --json', description: 'The problems as JSON.'},
  ]
  static override flags = {
    'connector-version': Flags.integer({
      description: 'Connector version for a Parameters file (default: inferred).',
      max: 2,
      min: 1,
    }),
    platform: platformFlag('Connector of a Parameters file (default: inferred).'),
  }

  async run(): Promise<ValidateConnectorResult> {
    const {args, flags} = await this.parse(ValidateConnector)
    const result = await validateConnectorFile({
      connectorVersion: flags['connector-version'],
      file: args.file,
      platform: flags.platform,
    })
    if (!this.jsonEnabled()) {
      for (const c of result.connectors) {
        this.log(
          `${c.at || result.file}: ${c.connector} version ${c.version}${c.serviceName ? `, service ${c.serviceName}` : ''}`,
        )
      }

      if (result.assumed) this.log(`Checked against ${result.assumed}.`)
      if (result.otherConnectors > 0) this.log(`${result.otherConnectors} other connector(s): structure checked only.`)
      if (result.valid) this.log(`${result.file} is valid.`)
      else {
        this.log(`${result.file}: ${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}`)
        for (const p of result.problems) {
          this.log(`  ${p.path || '/'}: ${p.message}${p.suggestion ? `\n      fix: ${p.suggestion}` : ''}`)
        }
      }
    }

    if (!result.valid) process.exitCode = ExitCode.Usage
    return result
  }
}
