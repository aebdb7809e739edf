/**
 * The `--platform` flag of the commands that pick a connector platform, with its choices taken from the connector
 * catalog (src/connector/catalog.ts), so that a platform is added in one place.
 */
import {Flags} from '@oclif/core'

import {PLATFORM_IDS} from '../src/connector/catalog.js'

/** `--platform x86_64|armv7|jtx2`, optional. */
export const platformFlag = (description: string) => Flags.option({description, options: PLATFORM_IDS})()

/** `--platform auto|x86_64|armv7|jtx2`, default auto (detect this device). */
export const devicePlatformFlag = (description: string) =>
  Flags.option({default: 'auto' as const, description, options: ['auto', ...PLATFORM_IDS] as const})()
