import {Flags} from '@oclif/core'

import {exportService, type ExportServiceResult} from '../src/service-unit/export.js'
import {BaseCommand} from './_base.js'
import {connectorInputFlags, connectorInputOptions} from './_connector-inputs.js'

export default class ExportService extends BaseCommand {
  static override description = `Export a systemd unit that runs icc serve with the connector's parameters (devices without Greengrass).
Same parameter inputs and checks as create-connector. Writes DIR/icc-<service>.service and DIR/icc-<service>.env
(owner-only). The unit restarts icc on failure, starts at boot (multi-user.target), runs as a dedicated user and is
hardened (NoNewPrivileges, ProtectSystem=strict, ProtectHome, PrivateTmp, ...).
Install: useradd --system icc; cp DIR/*.env /etc/icc/; cp DIR/*.service /etc/systemd/system/; systemctl enable --now icc-<service>.
Exit codes: 0 written, 2 invalid parameters or flags.`
  static override examples = [
    {
      command: '<%= config.bin %> <%= command.id %> --parameters params.json --output ./unit',
      description: 'A unit for the connector parameters in params.json.',
    },
    {
      command:
        '<%= config.bin %> <%= command.id %> --parameters params.json --ipc-port 8000 --icc-home /opt/icc --node /usr/bin/node --output ./unit',
      description: 'Also answer existing Lambda code (ML SDK) on 127.0.0.1:8000; the token is in the env file.',
    },
  ]
  static override flags = {
    ...connectorInputFlags,
    'env-dir': Flags.string({description: 'Where the .env file goes on the device (default /etc/icc).'}),
    'icc-home': Flags.string({description: 'Where icc is installed on the device (default /opt/icc).'}),
    'ipc-port': Flags.integer({
      description: 'Also serve the ML SDK IPC endpoint on this loopback port.',
      max: 65_535,
      min: 1,
    }),
    model: Flags.string({description: 'The model on the device (default MLModelDestinationPath).'}),
    node: Flags.string({description: 'The Node.js executable on the device (default /usr/bin/node).'}),
    output: Flags.string({description: 'Folder to write the unit and environment file into.', required: true}),
    user: Flags.string({description: 'The dedicated system user the service runs as (default icc).'}),
  }

  async run(): Promise<ExportServiceResult> {
    const {flags} = await this.parse(ExportService)
    const result = await exportService({
      ...connectorInputOptions(flags),
      envDir: flags['env-dir'],
      iccHome: flags['icc-home'],
      ipcPort: flags['ipc-port'],
      model: flags.model,
      node: flags.node,
      output: flags.output,
      user: flags.user,
    })
    if (!this.jsonEnabled()) {
      for (const u of result.units) this.log(`${u.unitName}: ${u.unit} (environment: ${u.envFile})`)
    }

    return result
  }
}
