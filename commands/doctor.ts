import {Flags} from '@oclif/core'

import type {Runtime} from '../src/model/session.js'

import {type DoctorResult, type DoctorVerdictChoice, renderDoctor, runDoctor} from '../src/device/doctor.js'
import {ExitCode} from '../src/errors.js'
import {BaseCommand} from './_base.js'
import {inputShapeFlag, runtimeFlag} from './_model.js'
import {devicePlatformFlag} from './_platform.js'

export default class Doctor extends BaseCommand {
  static override description = [
    'Check that this device has what icc serve needs, and what the original Image Classification connector needed.',
    'Two verdicts. "icc serve is ready" [icc]: Node.js, the ONNX Runtime binding and sharp, the memory-limit mode icc serve will use (cgroup v2, cgroup v1 hard cap or RSS watchdog, with its reason), the CUDA provider (linux x64), and with --model a real runner\'s load with its measured peak. "The original connector\'s runtime" [connector]: the platform\'s system libraries and minimum symbol versions (connector catalog; CUDA 9.0 and cuDNN 7 on the Jetson TX2), Python 2.7 (/usr/bin/python2.7, connector version 1) or 3.7+ (/usr/bin/python3, version 2: the interpreter icc install-deps installs for) with numpy, scipy and OpenCV, AWS IoT Greengrass core 1.7+ and the memory cgroup.',
    'Prints ✔ / ✗ / ! per check with the fix for each problem; --json lists every check with its evidence and "for" ("icc" or "connector"), and "verdicts".',
    'Exit codes: 0 the verdicts chosen by --for (default icc) pass, 5 one of them failed (or warned with --strict), 2 usage.',
  ].join('\n\n')
  static override examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'Check this device for its detected platform.'},
    {
      command: '<%= config.bin %> <%= command.id %> --platform jtx2 --model ./model.tar.gz --json',
      description: 'Check the Jetson TX2 table and a model; print the evidence as JSON.',
    },
    {
      command: '<%= config.bin %> <%= command.id %> --for all --connector-version 2 --strict',
      description: 'Exit 5 unless both verdicts pass, for connector version 2 (Python 3.7+); warnings fail too.',
    },
  ]
  static override flags = {
    'connector-version': Flags.integer({
      default: 1,
      description: 'Connector version: 1 needs Python 2.7, 2 needs Python 3.7+.',
      options: ['1', '2'],
    }),
    'greengrass-root': Flags.string({
      default: '/greengrass',
      description: 'Where AWS IoT Greengrass core is installed.',
    }),
    'lib-dir': Flags.string({
      description: 'Extra directory to search for libraries first (repeatable).',
      multiple: true,
    }),
    'memory-limit-kb': Flags.integer({
      description:
        'With --model: fail (with the advice icc serve gives) if the measured peak of a complete load is above it.',
      min: 1,
    }),
    model: Flags.string({description: 'A model to load and run once (model.tar.gz, its folder, or .onnx).'}),
    platform: devicePlatformFlag('Platform whose library table to check (auto: detect).'),
    for: Flags.string({
      default: 'icc',
      description:
        "Which verdicts decide the exit status: icc (icc serve is ready), connector (the original connector's runtime), or all.",
      options: ['icc', 'connector', 'all'],
    }),
    'input-shape': inputShapeFlag,
    'max-batch': Flags.integer({
      description: 'With --model: the batch the runner warms up with, as icc serve --max-batch (default 2).',
      max: 8,
      min: 1,
    }),
    runtime: runtimeFlag,
    strict: Flags.boolean({description: 'Warnings (e.g. no Greengrass core, no memory cgroup) fail too.'}),
  }

  async run(): Promise<DoctorResult> {
    const {flags} = await this.parse(Doctor)
    const result = await runDoctor({
      connectorVersion: flags['connector-version'] as 1 | 2,
      greengrassRoot: flags['greengrass-root'],
      libDirs: flags['lib-dir'],
      inputShape: flags['input-shape'],
      maxBatch: flags['max-batch'],
      memoryLimitKb: flags['memory-limit-kb'],
      model: flags.model,
      platform: flags.platform,
      runtime: flags.runtime as Runtime | undefined,
      strict: flags.strict,
      verdict: flags.for as DoctorVerdictChoice,
    })
    if (!this.jsonEnabled()) this.log(renderDoctor(result))
    if (!result.ok) process.exitCode = ExitCode.Dependency
    return result
  }
}
