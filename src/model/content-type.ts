/**
 * The content types an image request may declare, shared by the model core (which decodes the image) and the
 * front ends of `icc serve` (which refuse anything else before the image reaches a runner). No dependencies, so
 * the host process can use it without loading the image codec.
 */

/** Content types a request may declare (`application/x-image` means "sniff the bytes", as in SageMaker). */
export const SUPPORTED_CONTENT_TYPES: readonly string[] = ['image/jpeg', 'image/png', 'application/x-image']

/** Common spellings that mean a supported type. */
const ALIASES: Readonly<Record<string, string>> = {'image/jpg': 'image/jpeg'}

/**
 * The media type of a Content-Type value: lower case, parameters dropped, aliases resolved (`image/jpg` is
 * `image/jpeg`); `undefined` when empty.
 */
export function normaliseContentType(contentType: string | undefined): string | undefined {
  const value = contentType?.split(';')[0].trim().toLowerCase()
  if (!value) return undefined
  return ALIASES[value] ?? value
}

/** Is this (normalised) content type one a request may declare? */
export function isSupportedContentType(contentType: string): boolean {
  return SUPPORTED_CONTENT_TYPES.includes(contentType)
}
