/**
 * Symbol-version names (`GLIBC_2.17`, `GLIBCXX_3.4.21`, `CXXABI_ARM_1.3.3`...) and how they compare.
 *
 * A shared library advertises the interface versions it implements as ELF version definitions. A requirement such
 * as "libc.so.6: GLIBC_2.17" is met when the library defines `GLIBC_2.17` or any higher version of the same
 * family (`GLIBC_2.23`), because each version definition includes the ones before it. Families are compared
 * separately: `CXXABI_ARM_1.3.3` is its own family (the ARM EHABI additions), never a `CXXABI` version, and
 * non-numbered names such as `GLIBC_PRIVATE` never satisfy anything but themselves.
 */

export interface ParsedVersionName {
  /** The family: `GLIBC`, `GCC`, `GLIBCXX`, `CXXABI`, `CXXABI_ARM`, `GFORTRAN`, `GOMP`, `OMP`, ... */
  family: string
  /** The numeric parts: `GLIBC_2.2.5` -> [2, 2, 5]. */
  numbers: number[]
}

const VERSION_NAME = /^([A-Za-z][A-Za-z0-9_]*?)_(\d+(?:\.\d+)*)$/

/** Split a version name into its family and numbers; undefined for names without a trailing number. */
export function parseVersionName(name: string): ParsedVersionName | undefined {
  const m = VERSION_NAME.exec(name.trim())
  if (!m) return undefined
  return {family: m[1], numbers: m[2].split('.').map(Number)}
}

/** Compare two number lists numerically, missing parts count as 0 (`2.17` < `2.23`, `1.3` == `1.3.0`). */
export function compareNumbers(a: readonly number[], b: readonly number[]): number {
  const n = Math.max(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0)
    if (d !== 0) return d < 0 ? -1 : 1
  }

  return 0
}

/**
 * Compare two version names of the same family (negative, 0, positive); undefined when they are of different
 * families or either has no number.
 */
export function compareVersionNames(a: string, b: string): number | undefined {
  const pa = parseVersionName(a)
  const pb = parseVersionName(b)
  if (!pa || !pb || pa.family !== pb.family) return undefined
  return compareNumbers(pa.numbers, pb.numbers)
}

export interface VersionRequirementResult {
  /** The highest version of the required family that the library defines (undefined: none of that family). */
  highest?: string
  /** True when `highest` (or an exact match) reaches the requirement. */
  ok: boolean
  /** Set when another library than the one checked provides the version (see `icc doctor`). */
  providedBy?: string
  required: string
}

/** Does a list of defined version names satisfy one required version name? */
export function satisfiesVersion(defined: readonly string[], required: string): VersionRequirementResult {
  const want = parseVersionName(required)
  if (!want) {
    const exact = defined.includes(required)
    return {highest: exact ? required : undefined, ok: exact, required}
  }

  let highest: ParsedVersionName | undefined
  let highestName: string | undefined
  for (const name of defined) {
    const p = parseVersionName(name)
    if (!p || p.family !== want.family) continue
    if (!highest || compareNumbers(p.numbers, highest.numbers) > 0) {
      highest = p
      highestName = name
    }
  }

  return {
    highest: highestName,
    ok: highest !== undefined && compareNumbers(highest.numbers, want.numbers) >= 0,
    required,
  }
}

/** Sort version names: by family, then numerically; names without numbers last. */
export function sortVersionNames(names: readonly string[]): string[] {
  return [...names].sort((a, b) => {
    const pa = parseVersionName(a)
    const pb = parseVersionName(b)
    if (!pa || !pb) return pa ? -1 : pb ? 1 : a.localeCompare(b)
    if (pa.family !== pb.family) return pa.family.localeCompare(pb.family)
    return compareNumbers(pa.numbers, pb.numbers)
  })
}
