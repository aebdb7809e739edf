export * from './client/index.js'
/**
 * icc as a library: the connector catalog, parameter validation, the model core, the inference host and the
 * client. The CLI (`commands/`) is a thin layer over these exports.
 */
export * from './connector/catalog.js'
export * from './connector/create.js'
export * from './connector/definition.js'
export * from './connector/files.js'
export * from './connector/parameters.js'
export * from './connector/validate.js'
export * from './errors.js'
