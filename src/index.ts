/**
 * icc as a library: the connector catalog, parameter validation, the model core (load, inspect, convert, predict,
 * the ONNX Runtime session factory), the inference host (`serve`, `startHost`) and the client. The CLI
 * (`commands/`) is a thin layer over these exports.
 */
export * from './client/index.js'
export * from './connector/catalog.js'
export * from './connector/create.js'
export * from './connector/definition.js'
export * from './connector/files.js'
export * from './connector/parameters.js'
export * from './connector/validate.js'
export * from './errors.js'
export * from './model/index.js'
export * from './serve/index.js'
