/**
 * `icc list-connectors`: the catalog in a shape for people (a table) and for programs (JSON).
 */
import {
  connectorArn,
  CONNECTORS,
  type ConnectorVersion,
  iccMinimumGlibc,
  type IccSupport,
  parametersFor,
} from './catalog.js'

export interface ListConnectorsResult {
  connectors: {
    arns: string[]
    displayName: string
    /** What icc itself runs with on this platform, and the glibc it needs there. */
    icc: IccSupport & {glibc: string}
    libraries: {minimumVersions: string[]; soname: string}[]
    name: string
    parameters: Record<string, {name: string; required: boolean}[]>
    platform: string
    supportsGpu: boolean
  }[]
}

export function listConnectors(): ListConnectorsResult {
  return {
    connectors: CONNECTORS.map((c) => ({
      arns: c.versions.map((v) => connectorArn(c, v)),
      displayName: c.displayName,
      icc: {...c.icc, glibc: iccMinimumGlibc(c.icc)},
      libraries: c.libraries.map((l) => ({minimumVersions: [...l.minimumVersions], soname: l.soname})),
      name: c.name,
      parameters: Object.fromEntries(c.versions.map((v: ConnectorVersion) => [`v${v}`, parametersFor(c, v)])),
      platform: c.platform,
      supportsGpu: c.supportsGpu,
    })),
  }
}

export function renderConnectorTable(result: ListConnectorsResult): string {
  const lines: string[] = []
  for (const c of result.connectors) {
    lines.push(`${c.displayName}  (--platform ${c.platform}${c.supportsGpu ? ', GPU acceleration' : ''})`)
    for (const arn of c.arns) lines.push(`  ARN  ${arn}`)
    const v2 = c.parameters.v2 ?? []
    lines.push(
      `  parameters  ${v2.map((p) => (p.required ? p.name : `[${p.name}] (v2)`)).join(', ')}`,
      '  required system libraries:',
    )
    const width = Math.max(...c.libraries.map((l) => l.soname.length))
    for (const l of c.libraries) {
      lines.push(
        `    ${l.soname.padEnd(width)}  ${l.minimumVersions.length > 0 ? l.minimumVersions.join(', ') : 'not applicable'}`,
      )
    }

    lines.push(...renderIccSupport(c.icc), '')
  }

  return lines.join('\n').trimEnd()
}

/** The platform table's row for one connector platform: icc's backend, the glibc it needs, what cannot run. */
function renderIccSupport(icc: IccSupport & {glibc: string}): string[] {
  const parts = Object.entries(icc.minimumGlibc).map(([part, v]) => `${part} ${v}`)
  const backend =
    icc.backend === 'native' ? 'ONNX Runtime native (onnxruntime-node)' : 'ONNX Runtime WebAssembly (onnxruntime-web)'
  return [
    `  icc serve here  Node.js ${icc.nodeArch}, ${backend}; glibc >= ${icc.glibc} (${parts.join(', ')})`,
    ...icc.notes.map((n) => `    - ${n}`),
  ]
}
