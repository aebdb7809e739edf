import {Flags} from '@oclif/core'

import {type DoctorResult, renderDoctor, runDoctor} from '../src/device/doctor.js'
import {ExitCode} from '../src/errors.js'
import {BaseCommand} from './_base.js'
import {devicePlatformFlag} from './_platform.js'

export default class Doctor extends BaseCommand {
  static override description = [
    'Check that this device has what the Image Classification connector and icc serve need.',
    "Checks the platform's required system libraries and their minimum symbol versions (from the connector catalog), CUDA 9.0 and cuDNN 7 on the Jetson TX2, Python (2.7 for connector version 1, 3.7+ for version 2) with numpy, scipy and OpenCV, AWS IoT Greengrass core 1.7+, the memory cgroup, the ONNX Runtime binding and sharp, and optionally a model with a warm-up inference.",
    'Prints ✔ / ✗ / ! per check with the fix for each problem; --json lists every check with its evidence (paths found, versions seen).',
    'Exit codes: 0 all required checks pass, 5 a required check failed (or a warning with --strict), 2 usage.',
  ].join('\n\n')
  static override examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'Check this device for its detected platform.'},
    {
      command: '<%= config.bin %> <%= command.id %> --platform jtx2 --model ./model.tar.gz --json',
      description: 'Check the Jetson TX2 table and a model; print the evidence as JSON.',
    },
    {
      command: '<%= config.bin %> <%= command.id %> --connector-version 2 --strict',
      description: 'Check for connector version 2 (Python 3.7+); warnings fail too.',
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
      description: 'With --model: fail if loading and a warm-up inference need more.',
      min: 1,
    }),
    model: Flags.string({description: 'A model to load and run once (model.tar.gz, its folder, or .onnx).'}),
    platform: devicePlatformFlag('Platform whose library table to check (auto: detect).'),
    strict: Flags.boolean({description: 'Warnings (e.g. no Greengrass core, no memory cgroup) fail too.'}),
  }

  async run(): Promise<DoctorResult> {
    const {flags} = await this.parse(Doctor)
    const result = await runDoctor({
      connectorVersion: flags['connector-version'] as 1 | 2,
      greengrassRoot: flags['greengrass-root'],
      libDirs: flags['lib-dir'],
      memoryLimitKb: flags['memory-limit-kb'],
      model: flags.model,
      platform: flags.platform,
      strict: flags.strict,
    })
    if (!this.jsonEnabled()) this.log(renderDoctor(result))
    if (!result.ok) process.exitCode = ExitCode.Dependency
    return result
  }
}
