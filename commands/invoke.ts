import {Args, Flags} from '@oclif/core'
import {readFile} from 'node:fs/promises'

import {invokeNative, type NativeInvokeResult} from '../src/client/native.js'
import {UsageError} from '../src/errors.js'
import {BaseCommand} from './_base.js'

export default class Invoke extends BaseCommand {
  static override args = {
    image: Args.string({description: 'Image file (JPEG or PNG).', required: true}),
  }
  static override description =
    'Send an image to a running `icc serve` and print the probabilities in the connector format [p0,p1,...].'
  static override examples = [
    {
      command: '<%= config.bin %> <%= command.id %> --service-name imageClassification cat.jpg',
      description: 'Print the connector body.',
    },
    {
      command: '<%= config.bin %> <%= command.id %> --service-name imageClassification cat.jpg --top-k 3',
      description: 'The three most likely classes as JSON.',
    },
    {
      command: '<%= config.bin %> <%= command.id %> --url http://127.0.0.1:8080 cat.png',
      description: 'Over TCP instead of the unix socket.',
    },
  ]
  static override flags = {
    'content-type': Flags.string({description: 'Content-Type to send (default: sniffed from the bytes).'}),
    labels: Flags.string({
      dependsOn: ['top-k'],
      description: 'With --top-k: name the top classes from this file (one a line, or a JSON array), client-side.',
    }),
    'service-name': Flags.string({description: 'LocalInferenceServiceName (default: the first service).'}),
    socket: Flags.string({description: 'Unix socket of icc serve (default: its default socket).', exclusive: ['url']}),
    'timeout-ms': Flags.integer({default: 60_000, description: 'Client-side timeout.', min: 1}),
    'top-k': Flags.integer({description: 'Also return the K most likely classes (prints JSON).', min: 1}),
    url: Flags.string({description: 'Base URL of icc serve over TCP, e.g. http://127.0.0.1:8080.'}),
  }

  async run(): Promise<NativeInvokeResult> {
    const {args, flags} = await this.parse(Invoke)
    let body: Buffer
    try {
      body = await readFile(args.image)
    } catch (error) {
      throw new UsageError('FILE_NOT_READABLE', `Cannot read the image ${args.image}: ${(error as Error).message}`)
    }

    const result = await invokeNative({
      body,
      contentType: flags['content-type'],
      labelsFile: flags.labels,
      serviceName: flags['service-name'],
      socketPath: flags.socket,
      timeoutMs: flags['timeout-ms'],
      topK: flags['top-k'],
      url: flags.url,
    })
    if (!this.jsonEnabled()) this.log(result.body)
    return result
  }
}
