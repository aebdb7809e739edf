/**
 * Reading the connector documents users keep in files: a Parameters object (bare, or as `{"Parameters": {...}}`)
 * or a whole connector-definition version. JSON errors name the file and the position.
 */
import {readFile} from 'node:fs/promises'

import {UsageError, ValidationError} from '../errors.js'
import {looksLikeDefinition} from './definition.js'

/** Read and parse a JSON file, with errors that name the file. */
export async function readJsonFile(path: string, what: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    const {code} = error as NodeJS.ErrnoException
    throw new UsageError('FILE_NOT_READABLE', `Cannot read the ${what} file ${path}: ${(error as Error).message}`, {
      suggestions: [code === 'ENOENT' ? 'Check the path.' : 'Check the file permissions.'],
    })
  }

  try {
    return JSON.parse(text.replace(/^\uFEFF/, ''))
  } catch (error) {
    throw new UsageError('INVALID_JSON', `The ${what} file ${path} is not valid JSON: ${(error as Error).message}`, {
      suggestions: ['Check the file with `jq . FILE` (every parameter value is a quoted string).'],
    })
  }
}

/** The Parameters object of a parameters file (bare, or wrapped as `{"Parameters": {...}}`). */
export function parametersOf(doc: unknown, path: string): Record<string, unknown> {
  if (looksLikeDefinition(doc)) {
    throw new UsageError(
      'DEFINITION_NOT_PARAMETERS',
      `${path} is a whole connector definition version, not a Parameters object.`,
      {suggestions: ['Pass it with --definition, or put only the "Parameters" object of one connector in the file.']},
    )
  }

  const inner =
    typeof doc === 'object' && doc !== null && !Array.isArray(doc) && 'Parameters' in doc
      ? (doc as {Parameters: unknown}).Parameters
      : doc
  if (typeof inner !== 'object' || inner === null || Array.isArray(inner)) {
    throw new ValidationError(`The parameters file ${path} is not a JSON object.`, [
      {
        message: `expected {"MLModelDestinationPath": "...", ...}, got ${Array.isArray(inner) ? 'an array' : JSON.stringify(inner)}`,
        path: '/',
      },
    ])
  }

  return inner as Record<string, unknown>
}
