/**
 * icc as a library: the connector catalog, parameter validation, the model core, the inference host and the
 * client. The CLI (`commands/`) is a thin layer over these exports.
 */
export * from './connector/catalog.js'
export * from './errors.js'
