/**
 * Class names: parsing a labels file (one name a line as `synset.txt`, or a JSON array of strings) and checking
 * that it has one name per class of the model (`--labels FILE` of predict, serve and invoke).
 */
import {readFile} from 'node:fs/promises'

import {UsageError} from '../errors.js'

/** Lines of a synset.txt / labels.txt; ImageNet-style "n01440764 tench, Tinca tinca" -> "tench, Tinca tinca". */
export function parseLabelLines(text: string): string[] {
  const lines = text.split(/\r?\n/).map((l) => l.trim())
  while (lines.length > 0 && lines.at(-1) === '') lines.pop()
  return lines.map((l) => l.replace(/^n\d{8}\s+/, ''))
}

/**
 * The labels in `path` (a JSON array of strings, or one per line), checked against `numClasses` when given: a
 * different count is a usage error (exit 2) naming both numbers.
 */
export async function readLabelsFile(path: string, numClasses?: number): Promise<string[]> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new UsageError('LABELS_NOT_READABLE', `Cannot read the labels file ${path}: ${(error as Error).message}`, {
      suggestions: ['--labels takes a file with one class name a line (as synset.txt) or a JSON array of names.'],
    })
  }

  let labels: string[]
  if (text.trimStart().startsWith('[')) {
    let doc: unknown
    try {
      doc = JSON.parse(text)
    } catch (error) {
      throw new UsageError('BAD_LABELS', `${path} is not a valid JSON array: ${(error as Error).message}`)
    }

    if (!Array.isArray(doc) || !doc.every((x) => typeof x === 'string')) {
      throw new UsageError('BAD_LABELS', `${path} must be a JSON array of strings`)
    }

    labels = doc
  } else {
    labels = parseLabelLines(text)
  }

  if (numClasses !== undefined && labels.length !== numClasses) {
    throw new UsageError(
      'LABELS_MISMATCH',
      `${path} has ${labels.length} labels, but the model has ${numClasses} classes`,
      {suggestions: ['Give one label per class, in the order of the model outputs.']},
    )
  }

  return labels
}
