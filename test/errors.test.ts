// @tier unit: needs neither ../shared nor child processes (npm run test:unit)
/**
 * The error model of src/errors.ts: typed errors pass through untouched; anything else becomes a BugError that
 * keeps the original error (and its stack) as its cause and asks for a report.
 */
import assert from 'node:assert/strict'

import {asIccError, BugError, ExitCode, ModelError} from '../src/errors.js'

describe('errors: BugError beside the typed errors', () => {
  it('leaves a typed error as it is', () => {
    const typed = new ModelError('BAD_SYMBOL', 'bad')
    assert.equal(asIccError(typed, 'context'), typed)
  })

  it('wraps an unexpected error, keeping it (and its stack) as the cause', () => {
    const original = new TypeError("Cannot read properties of undefined (reading 'shape')")
    const bug = asIccError(original, 'A service failed to start')
    assert.ok(bug instanceof BugError)
    assert.equal(bug.code, 'BUG')
    assert.equal(bug.exitCode, ExitCode.Failure)
    assert.equal(bug.message, "A service failed to start: Cannot read properties of undefined (reading 'shape')")
    assert.equal(bug.cause, original)
    assert.match(String((bug.cause as Error).stack), /TypeError/)
    assert.match(bug.suggestions.join(' '), /bug in icc.*report/i)
  })

  it('wraps a thrown non-Error value with its text', () => {
    const bug = asIccError('socket vanished', 'Reading the frame')
    assert.equal(bug.message, 'Reading the frame: socket vanished')
    assert.equal(bug.cause, 'socket vanished')
  })
})
