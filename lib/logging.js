'use strict'

// Where swallowed failures go: the user's logger, or rate-limited warnings on
// stderr when none is given; every message redacted of the instance's
// secrets first (the redaction itself is Rust's, src/options.rs).
const { redact } = require('../native.js')
const { describe } = require('./errors.js')

/** A logger that is not there: failures stay visible as rate-limited warnings on stderr. */
const stderrLogger = (() => {
  const EVERY_MS = 10_000
  let windowStart = 0
  let suppressed = 0
  const write = (message, meta) => {
    const now = Date.now()
    if (now - windowStart < EVERY_MS) {
      suppressed++
      return
    }
    const more = suppressed > 0 ? ` (${suppressed} more in the last ${EVERY_MS / 1000} s)` : ''
    windowStart = now
    suppressed = 0
    const code = meta && typeof meta === 'object' && typeof meta.code === 'string' ? ` [${meta.code}]` : ''
    process.stderr.write(`@medianest/native-cache: ${message}${code}${more}; pass a logger (or logger: false) to CacheService or call setLogger()\n`)
  }
  const quiet = () => {}
  return { error: write, warn: write, info: quiet, debug: quiet }
})()

function checkLogger(logger, name) {
  if (logger === undefined || logger === null || logger === false) return logger ?? null
  if (typeof logger !== 'object' && typeof logger !== 'function') {
    throw new TypeError(`${name} must be false or an object with error/warn/info/debug methods, got ${describe(logger)}`)
  }
  return logger
}

/** Text with every URL's userinfo and every one of `secrets` replaced by `***`. */
function redactText(text, secrets) {
  return secrets.length === 0 && !text.includes('://') ? text : redact(text, secrets)
}

/** An error whose message is redacted (a copy, when it had to change). */
function redactError(err, secrets) {
  if (!(err instanceof Error)) return err
  const message = redactText(err.message, secrets)
  if (message === err.message) return err
  const copy = new err.constructor(message)
  if (err.code !== undefined) copy.code = err.code
  return copy
}

/** One instance's logging: the logger it was given (null: stderr, false: none) and its secrets. */
class Log {
  /** null: the stderr default; false: silent. */
  logger = null
  /** Whether setLogger() chose the logger (the lazy singleton keeps it over its options'). */
  chosen = false
  secrets = []

  set(logger) {
    this.logger = checkLogger(logger, 'logger')
    this.chosen = true
  }

  write(level, message, meta) {
    const logger = this.logger === null ? stderrLogger : this.logger
    if (logger === false) return
    const fn = logger[level] ?? logger.error
    if (typeof fn !== 'function') return
    message = redactText(message, this.secrets)
    if (meta !== undefined && meta.error instanceof Error) {
      meta = { ...meta, error: redactError(meta.error, this.secrets) }
    }
    try {
      if (meta === undefined) fn.call(logger, message)
      else fn.call(logger, message, meta)
    } catch {
      // A throwing logger must not turn a cache miss into a failure.
    }
  }
}

module.exports = { Log, checkLogger, redactText, redactError }
