import {listConnectors, type ListConnectorsResult, renderConnectorTable} from '../src/connector/list.js'
import {BaseCommand} from './_base.js'

export default class ListConnectors extends BaseCommand {
  static override description =
    'List the Image Classification connectors (platforms, ARNs, parameters, required system libraries).'
  static override examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'Show the catalog as a table.'},
    {command: '<%= config.bin %> <%= command.id %> --json', description: 'The same catalog as JSON.'},
  ]

  async run(): Promise<ListConnectorsResult> {
    await this.parse(ListConnectors)
    const result = listConnectors()
    if (!this.jsonEnabled()) this.log(renderConnectorTable(result))
    return result
  }
}
