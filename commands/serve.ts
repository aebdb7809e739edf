import {Flags, type Interfaces} from '@oclif/core'

import type {Runtime} from '../src/model/session.js'
import type {ResizeMode} from '../src/model/types.js'

import {DEFAULT_MAX_BODY_BYTES, serve, type ServeOptions, type ServeResult} from '../src/serve/index.js'
import {BaseCommand} from './_base.js'
import {cacheDirFlag, inputShapeFlag, labelsFlag, resizeFlag, runtimeFlag} from './_model.js'

type ServeFlags = Interfaces.InferredFlags<(typeof Serve)['flags']>

export default class Serve extends BaseCommand {
  static override description = `Run the local inference service(s) of the Image Classification connector.

Listens on a unix socket (default $XDG_RUNTIME_DIR/icc/icc.sock or /tmp/icc-$UID/icc.sock) and optionally TCP. Each service runs its model in its own supervised runner process with the connector's timeout and memory limit. Prints "icc serve: ready on ..." once it answers; SIGTERM/SIGINT drain and stop it (exit 0).`
  static override examples = [
    {
      command: '<%= config.bin %> <%= command.id %>',
      description: 'Serve the bundled default model as "imageClassification".',
    },
    {
      command:
        '<%= config.bin %> <%= command.id %> --model /ml/model --service-name imageClassification --timeout-seconds 10 --memory-limit-kb 500000',
      description: 'Serve a SageMaker model with the connector parameters as flags.',
    },
    {
      command: '<%= config.bin %> <%= command.id %> --definition connectors.json --port 8080',
      description:
        'Every Image Classification connector of a definition version becomes a service; also on TCP 127.0.0.1:8080.',
    },
    {
      command: '<%= config.bin %> <%= command.id %> --model /ml/model --ipc-port 8000 --region us-west-2 --print-env',
      description: 'Also answer existing Lambda code that uses the Greengrass ML SDK; print the environment it needs.',
    },
    {
      command: '<%= config.bin %> <%= command.id %> --parameters params.json --log-dir /var/log/icc',
      description: 'Parameters from a file, logs per service.',
    },
  ]
  static override flags = {
    'access-log': Flags.string({
      default: 'on',
      description: 'One info line per request (service, transport, status, error code, bytes in, timings, batch).',
      options: ['on', 'off'],
    }),
    'admin-token': Flags.string({
      description:
        'Bearer token that allows POST /v2/repository/models/{name}/load (model reload) over TCP; prefer $ICC_ADMIN_TOKEN (a flag shows in ps). The unix socket needs none.',
      env: 'ICC_ADMIN_TOKEN',
    }),
    'allow-cpu-fallback': Flags.boolean({
      description: 'With GPUAcceleration GPU: run on the CPU (with a warning) when CUDA cannot be loaded.',
    }),
    'cache-dir': cacheDirFlag,
    'client-timeout-seconds': Flags.integer({
      default: 30,
      description:
        'Slow clients: request headers must arrive within this many seconds, the whole request within this plus the service timeout.',
      min: 1,
    }),
    'crash-cooldown-seconds': Flags.integer({
      default: 60,
      description:
        'After a crash loop (5 runner crashes within 60 s) the service is not ready for this long, then tries again.',
      min: 1,
    }),
    definition: Flags.string({
      description: 'Connector definition version JSON: one service per Image Classification connector.',
    }),
    'gpu-acceleration': Flags.string({description: 'GPUAcceleration: CPU or GPU (CUDA).', options: ['CPU', 'GPU']}),
    'auth-token': Flags.string({
      description:
        'Token the TCP listener asks for (Authorization: Bearer <token>) on every route; required with a non-loopback --host. Prefer --auth-token-file.',
      dependsOn: ['port'],
      exclusive: ['auth-token-file'],
    }),
    'auth-token-file': Flags.string({
      description: 'A file of yours (mode 0600) holding the TCP listener token.',
      dependsOn: ['port'],
    }),
    'input-shape': inputShapeFlag,
    labels: labelsFlag,
    host: Flags.string({
      description: 'TCP host for --port (default 127.0.0.1; a warning is printed for non-loopback).',
      dependsOn: ['port'],
    }),
    'ipc-auth-token': Flags.string({
      description:
        'Token Lambda code must send to the IPC endpoint (default: $AWS_CONTAINER_AUTHORIZATION_TOKEN, else generated and printed once). Other local users can read a command line: prefer --ipc-auth-token-file.',
      dependsOn: ['ipc-port'],
      exclusive: ['ipc-auth-token-file'],
    }),
    'ipc-auth-token-file': Flags.string({
      description: 'A file of yours (mode 0600) holding the IPC token.',
      dependsOn: ['ipc-port'],
    }),
    'ipc-port': Flags.integer({
      description:
        'Also answer the Greengrass ML SDK (invoke_inference_service) on this loopback TCP port (the SDK default is 8000; 0: any free port).',
      max: 65_535,
      min: 0,
    }),
    'intra-op-threads': Flags.integer({description: 'ONNX Runtime intra-op threads per runner.', min: 1}),
    'log-dir': Flags.string({description: 'Also write <dir>/<ServiceName>.log (JSON lines).'}),
    'log-format': Flags.string({
      description: 'Log lines as JSON, or short and human-readable (default: pretty on a terminal, else json).',
      options: ['json', 'pretty'],
    }),
    'log-level': Flags.string({
      default: 'info',
      description: 'Log level.',
      options: ['debug', 'error', 'info', 'trace', 'warn'],
    }),
    'max-body-bytes': Flags.integer({
      default: DEFAULT_MAX_BODY_BYTES,
      description: 'Largest image accepted (413 beyond).',
      min: 1,
    }),
    'max-batch': Flags.integer({
      description:
        'Most images per ONNX Runtime run (default 2): requests already in the runner when it is free run as one batch (dynamic batching; a decoded request waits up to 10 ms for those behind it still being decoded, a lone request never waits; 1 turns it off).',
      max: 8,
      min: 1,
    }),
    'max-buffered-bytes': Flags.integer({
      description:
        'Request-body bytes held at once (being read, queued, running; default 268435456 = 256 MiB); beyond, 503 OVERLOADED with Retry-After.',
      min: 1,
    }),
    'max-connections': Flags.integer({
      description:
        'Open connections per listener (unix socket, TCP, Greengrass IPC; default 1024); beyond, new ones are closed at once.',
      min: 1,
    }),
    'memory-budget-kb': Flags.integer({
      description:
        "Most memory all runners together may use; a model reload (which runs the new runner beside the old one) is refused beyond it (default: the machine's MemAvailable).",
      min: 1,
    }),
    'memory-limit-kb': Flags.integer({description: 'LocalInferenceServiceMemoryLimitKB (default 500000).'}),
    model: Flags.string({
      description: 'MLModelDestinationPath: model directory, model.tar.gz or .onnx (default: bundled model).',
    }),
    parameters: Flags.string({description: 'Connector Parameters JSON file (as for create-connector).'}),
    'pipeline-depth': Flags.integer({
      description:
        'Requests sent to a runner ahead of time (default 2 x --max-batch, at least 2: it decodes the next images during an inference).',
      max: 16,
      min: 1,
    }),
    port: Flags.integer({description: 'Also listen on TCP (0: any free port).', max: 65_535, min: 0}),
    'print-env': Flags.boolean({
      description:
        'Once ready, print the environment a Lambda needs to reach the IPC endpoint (AWS_REGION, GG_DAEMON_PORT, AWS_CONTAINER_AUTHORIZATION_TOKEN, GGC_MAX_INTERFACE_VERSION).',
      dependsOn: ['ipc-port'],
    }),
    'queue-limit': Flags.integer({
      default: 64,
      description: 'Requests waiting per service before 503 OVERLOADED.',
      min: 1,
    }),
    resize: resizeFlag,
    'runner-entry': Flags.file({
      description:
        'The runner program each service starts (default: the shipped runner). For tests: a runner that wraps it.',
      exists: true,
      hidden: true,
    }),
    runtime: runtimeFlag,
    region: Flags.string({
      description: 'AWS_REGION of the Lambda functions calling the IPC endpoint (default: $AWS_REGION; unset: any).',
      dependsOn: ['ipc-port'],
    }),
    'service-name': Flags.string({description: 'LocalInferenceServiceName (default imageClassification).'}),
    socket: Flags.string({description: 'Unix socket path.'}),
    strict: Flags.boolean({
      description:
        'With --definition: fail start-up when any service cannot start (default: a service whose model is missing or fails to load is reported not ready, with the reason, and the others serve).',
    }),
    'timeout-seconds': Flags.integer({description: 'LocalInferenceServiceTimeoutSeconds (default 10).'}),
    watch: Flags.boolean({
      description:
        "Reload a service's model when its file or folder changes (once it has stopped changing for a second). SIGHUP reloads every service.",
    }),
  }

  /** `--json` output is NDJSON: the ready event, then the final result (or the error), one line each. */
  protected override logJson(json: unknown): void {
    process.stdout.write(JSON.stringify(json) + '\n')
  }

  async run(): Promise<ServeResult> {
    const {flags} = await this.parse(Serve)
    const json = this.jsonEnabled()
    return serve({
      accessLog: flags['access-log'] === 'on',
      adminToken: flags['admin-token'],
      allowCpuFallback: flags['allow-cpu-fallback'],
      authToken: flags['auth-token'],
      authTokenFile: flags['auth-token-file'],
      cacheDir: flags['cache-dir'],
      clientTimeoutMs: flags['client-timeout-seconds'] * 1000,
      crashLoop: {cooldownMs: flags['crash-cooldown-seconds'] * 1000},
      definition: flags.definition,
      gpuAcceleration: flags['gpu-acceleration'],
      host: flags.host,
      inputShape: flags['input-shape'],
      labelsFile: flags.labels,
      intraOpThreads: flags['intra-op-threads'],
      logDir: flags['log-dir'],
      logFormat: (flags['log-format'] ?? (process.stderr.isTTY ? 'pretty' : 'json')) as 'json' | 'pretty',
      logLevel: flags['log-level'],
      maxBodyBytes: flags['max-body-bytes'],
      maxBatch: flags['max-batch'],
      maxBufferedBytes: flags['max-buffered-bytes'],
      maxConnections: flags['max-connections'],
      memoryBudgetKb: flags['memory-budget-kb'],
      memoryLimitKb: flags['memory-limit-kb'],
      model: flags.model,
      resize: flags.resize as ResizeMode,
      runtime: flags.runtime as Runtime | undefined,
      ipc: ipcOptions(flags),
      onReady: this.readyAnnouncer(flags, json),
      parameters: flags.parameters,
      pipelineDepth: flags['pipeline-depth'],
      progress: Boolean(process.stderr.isTTY) && !json,
      port: flags.port,
      queueLimit: flags['queue-limit'],
      runnerEntry: flags['runner-entry'],
      serviceName: flags['service-name'],
      socket: flags.socket,
      strict: flags.strict,
      timeoutSeconds: flags['timeout-seconds'],
      watch: flags.watch,
    })
  }

  /** The ready callback: warnings, the generated token (once, on stderr), and the ready line or event. */
  private readyAnnouncer(flags: ServeFlags, json: boolean): NonNullable<ServeOptions['onReady']> {
    return (info, {lambdaEnv}) => {
      const where = [info.addresses.socket && `unix:${info.addresses.socket}`, info.addresses.tcp?.url].filter(Boolean)
      for (const w of info.warnings) this.warn(w)
      for (const flag of ['ipc-auth-token', 'auth-token'] as const) {
        if (flags[flag]) {
          this.warn(`--${flag} puts the token where other local users can read it (ps); use --${flag}-file instead.`)
        }
      }

      const printEnv = flags['print-env'] ? lambdaEnv : undefined
      // the token is a secret: on stdout only when asked for (--print-env), else once on stderr if generated
      if (info.ipc?.tokenGenerated && !printEnv) {
        process.stderr.write(
          `icc serve: generated IPC auth token (shown once): ${lambdaEnv?.AWS_CONTAINER_AUTHORIZATION_TOKEN}\n`,
        )
      }

      // one line, so scripts can wait for it (oclif's log is silent with --json)
      if (json) {
        const ready = printEnv && info.ipc ? {...info, ipc: {...info.ipc, env: printEnv}} : info
        process.stdout.write(JSON.stringify({event: 'ready', ...ready}) + '\n')
      } else {
        this.log(
          `icc serve: ready on ${where.join(' and ')} (services: ${info.services.map((s) => `${s.name} on ${s.runtime}`).join(', ')})` +
            (info.ipc ? `; Greengrass IPC on ${info.ipc.url}` : ''),
        )
        for (const [k, v] of Object.entries(printEnv ?? {})) this.log(`export ${k}='${v}'`)
      }
    }
  }
}

/** The Greengrass IPC endpoint's options, when --ipc-port asks for one. */
function ipcOptions(flags: ServeFlags): ServeOptions['ipc'] {
  return flags['ipc-port'] === undefined
    ? undefined
    : {
        authToken: flags['ipc-auth-token'],
        authTokenFile: flags['ipc-auth-token-file'],
        port: flags['ipc-port'],
        region: flags.region,
      }
}
