/**
 * The icc client library (`import {invokeInferenceService} from 'icc/client'`): call a local inference service
 * from Node.js the way Lambda code calls the connector through the Greengrass Machine Learning SDK.
 */
export * from './ipc.js'
export * from './native.js'
