import {Flags} from '@oclif/core'

import {installDeps, type InstallDepsResult} from '../src/device/installers.js'
import {BaseCommand} from './_base.js'
import {devicePlatformFlag} from './_platform.js'
import {terminalConfirm} from './_prompt.js'

export default class InstallDeps extends BaseCommand {
  static override description = [
    'Install the MXNet dependencies of the Image Classification connector on this device.',
    'Runs the installer of the platform (install-scripts/x86_64.sh, armv7l.sh or nvidiajtx2.sh): shows the plan (a dry run of the script), asks for confirmation, then installs what is missing, with live output and a log file. Needs root (sudo) unless --dry-run. On failure, names the step that failed.',
    'Exit codes: 0 done, 1 not root or cancelled, 2 usage (e.g. no terminal and no --yes), 5 a step failed or the system is not supported.',
  ].join('\n\n')
  static override examples = [
    {command: '<%= config.bin %> <%= command.id %> --dry-run', description: 'Show what would be installed here.'},
    {command: 'sudo <%= config.bin %> <%= command.id %> --yes', description: 'Install without asking.'},
    {
      command: 'sudo <%= config.bin %> <%= command.id %> --platform armv7 --increase-swap --yes',
      description: 'Raspberry Pi: raise the swap size while scipy builds.',
    },
  ]
  static override flags = {
    'dry-run': Flags.boolean({description: 'Print the steps and commands without changing anything (no root needed).'}),
    'fix-libdc1394': Flags.boolean({
      description: 'Link /dev/raw1394 to /dev/null to silence "Failed to initialize libdc1394" (until reboot).',
    }),
    'increase-swap': Flags.boolean({description: 'Raspberry Pi: raise the swap to 1024 MB while scipy installs.'}),
    'log-file': Flags.string({description: 'Write the installer output here (default: a file in the temp directory).'}),
    platform: devicePlatformFlag(
      'Platform whose installer to run (auto: detect from uname -m and the device-tree model).',
    ),
    upgrade: Flags.boolean({
      description: 'Also upgrade every installed package (dist-upgrade); off by default, it can break a device.',
    }),
    yes: Flags.boolean({char: 'y', description: 'Do not ask for confirmation.'}),
  }

  async run(): Promise<InstallDepsResult> {
    const {flags} = await this.parse(InstallDeps)
    const json = this.jsonEnabled()
    const result = await installDeps({
      confirm: terminalConfirm(json),
      dryRun: flags['dry-run'],
      fixLibdc1394: flags['fix-libdc1394'],
      increaseSwap: flags['increase-swap'],
      logFile: flags['log-file'],
      onLine: json ? undefined : (line) => this.log(line),
      onPlan: json
        ? undefined
        : (plan) => {
            this.log(
              `Plan for ${plan.platform} (${plan.script}${plan.args.length > 0 ? ` ${plan.args.join(' ')}` : ''}):`,
            )
            for (const step of plan.steps) {
              this.log(`  ${step.name}`)
              for (const c of step.commands) this.log(`      $ ${c}`)
            }
          },
      platform: flags.platform,
      upgrade: flags.upgrade,
      yes: flags.yes,
    })
    if (!json && result.logFile) this.log(`Log: ${result.logFile}`)
    return result
  }
}
