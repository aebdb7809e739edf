/**
 * The one place that loads sharp (libvips), lazily, so that a sharp whose native prebuilt does not load (a glibc
 * older than it needs: the catalog's platform table) is a clear DependencyError (exit 5) naming the glibc needed
 * and found and the fix, not a raw module error at start-up. `icc predict`, serve's runner and `icc doctor` load it
 * here.
 */
import type SharpModule from 'sharp'

import {stripVTControlCharacters} from 'node:util'

import type {IccSupport} from '../connector/catalog.js'

import {glibcAtLeast, glibcVersion, iccSupportFor} from '../device/platform.js'
import {DependencyError} from '../errors.js'

export type Sharp = typeof SharpModule

/** The glibc found and what icc needs on this platform; tests inject an old glibc. */
export interface SharpFacts {
  /** The running glibc (undefined: not glibc, or unknown). */
  glibc?: string
  /** What icc needs on this Node's architecture (undefined: no connector platform has it). */
  support?: IccSupport
}

let loading: Promise<Sharp> | undefined

/** sharp, loaded once (its cache off: every request is a new image); a load failure is sharpUnavailable's error. */
export function loadSharp(): Promise<Sharp> {
  loading ??= import('sharp').then(
    (m) => {
      m.default.cache(false)
      return m.default
    },
    (error: unknown) => {
      throw sharpUnavailable(error, {glibc: glibcVersion(), support: iccSupportFor()})
    },
  )
  return loading
}

/**
 * How to get a working sharp: with a glibc below its prebuilt's, the versions and the WebAssembly build (sharp
 * loads @img/sharp-wasm32 by itself when its native build does not load); otherwise a reinstall.
 */
export function sharpFix(facts: SharpFacts): string {
  const needs = facts.support?.minimumGlibc.sharp
  if (facts.glibc && needs && !glibcAtLeast(facts.glibc, needs)) {
    return `sharp's prebuilt for ${process.platform}-${process.arch} needs glibc ${needs}, this system has ${facts.glibc}: upgrade the OS, or install sharp's WebAssembly build (npm install --cpu=wasm32 @img/sharp-wasm32 in icc's folder), which sharp then loads instead.`
  }

  return "Reinstall icc so that sharp installs its prebuilt libvips for this platform (npm install --include=optional), or install its WebAssembly build (npm install --cpu=wasm32 @img/sharp-wasm32 in icc's folder)."
}

/** The error for a sharp that does not load: why, the glibc needed and found, and the fix. */
export function sharpUnavailable(error: unknown, facts: SharpFacts): DependencyError {
  const why = stripVTControlCharacters(error instanceof Error ? error.message : String(error)).split('\n')[0]
  const needs = facts.support?.minimumGlibc.sharp
  const glibc = `glibc: needs ${needs ?? 'unknown'} for sharp on ${process.platform}-${process.arch}, found ${facts.glibc ?? 'none (not glibc?)'}`
  return new DependencyError('SHARP_UNAVAILABLE', `The image decoder sharp does not load (${glibc}): ${why}`, {
    cause: error,
    details: {glibcFound: facts.glibc, glibcNeeded: needs},
    suggestions: [sharpFix(facts)],
  })
}
