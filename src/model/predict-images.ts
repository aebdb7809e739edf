/**
 * The images of `icc predict`: its arguments expanded (a directory stands for the JPEG and PNG files in it), each
 * read and preprocessed on its own, so that one bad image is reported by name and the others are still classified.
 */
import {readdir, readFile, stat} from 'node:fs/promises'
import {join} from 'node:path'

import type {PreprocessingSpec, ResizeMode} from './types.js'

import {IccError, UsageError} from '../errors.js'
import {preprocessImage} from './preprocess.js'

/** An image that could not be classified, with the error code `icc invoke` gives for the same input. */
export interface ImageFailure {
  code: string
  image: string
  message: string
}

const IMAGE_FILE = /\.(jpe?g|png)$/i

/** File arguments as given; a directory becomes its JPEG and PNG files (not its subfolders), sorted by name. */
export async function expandImageArgs(args: string[]): Promise<{failures: ImageFailure[]; images: string[]}> {
  const images: string[] = []
  const failures: ImageFailure[] = []
  for (const arg of args) {
    const info = await stat(arg).catch(() => undefined)
    if (!info?.isDirectory()) {
      images.push(arg)
      continue
    }

    const names = (await readdir(arg, {withFileTypes: true}))
      .filter((e) => e.isFile() && IMAGE_FILE.test(e.name))
      .map((e) => e.name)
      .sort()
    if (names.length === 0) {
      failures.push({code: 'NO_IMAGES', image: arg, message: `${arg}: the directory holds no .jpg, .jpeg or .png file`})
    }

    images.push(...names.map((n) => join(arg, n)))
  }

  return {failures, images}
}

/** Read and preprocess one image; an unreadable or undecodable file is an {@link ImageFailure}, not a throw. */
export async function loadImage(
  image: string,
  shape: {channels: number; height: number; preprocessing?: PreprocessingSpec; resize?: ResizeMode; width: number},
): Promise<Float32Array | ImageFailure> {
  let bytes: Buffer
  try {
    bytes = await readFile(image)
  } catch (error) {
    return {code: 'FILE_NOT_READABLE', image, message: `Cannot read the image ${image}: ${(error as Error).message}`}
  }

  try {
    return await preprocessImage(bytes, shape)
  } catch (error) {
    if (error instanceof IccError) return {code: error.code, image, message: `${image}: ${error.message}`}
    throw error
  }
}

/** The input error (exit 2) for the images that failed; the others' answers go with it in `details.results`. */
export function imagesError(failures: ImageFailure[], total: number, results: unknown[]): UsageError {
  const code = failures.length === 1 ? failures[0].code : 'IMAGES_FAILED'
  const head =
    total === 1 && failures.length === 1
      ? failures[0].message
      : `${failures.length} of ${total} images could not be classified:\n${failures.map((f) => `  - ${f.message}`).join('\n')}`
  return new UsageError(code, head, {
    details: {failures, results},
    suggestions: [`Pass JPEG or PNG files that can be read${total > 1 ? ' (the other images were classified)' : ''}.`],
  })
}
