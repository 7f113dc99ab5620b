'use strict'

// The `native-cache:operation` tracing channel (node:diagnostics_channel).
// Every cache operation publishes start/end/asyncStart/asyncEnd (and error
// on a rejection) with a context `{ method, key | keys | pattern }` that
// carries, by end (known at once) or asyncEnd, its `outcome`:
// reads 'memo' | 'l1' | 'redis' | 'miss' (the tier that answered), other
// calls 'ok', and 'error' with `code` where the call took its failure result
// or rejected. Nothing is built or published while nobody subscribes: the
// methods check `channel.hasSubscribers` (one property read) first.
// A subscriber that throws does not reach the call: Node catches it and
// reports it as an uncaught exception on the next tick.
const dc = require('node:diagnostics_channel')
const { CODES } = require('./errors.js')

const CHANNEL = 'native-cache:operation'

/** The tracing channel, or a stand-in that never has subscribers (a Node without tracingChannel). */
const channel = typeof dc.tracingChannel === 'function' ? dc.tracingChannel(CHANNEL) : { hasSubscribers: false }
if (!('hasSubscribers' in channel)) {
  // Node before 20.13 / 22.0 lacks TracingChannel#hasSubscribers.
  Object.defineProperty(channel, 'hasSubscribers', {
    get() {
      const { start, end, asyncStart, asyncEnd, error } = this
      return start.hasSubscribers || end.hasSubscribers || asyncStart.hasSubscribers || asyncEnd.hasSubscribers || error.hasSubscribers
    },
  })
}

/** Runs `body(ctx)` (which returns the call's promise) traced with context `ctx`. */
function trace(ctx, body) {
  return channel.tracePromise(run, ctx, undefined, ctx, body)
}

/** `body(ctx)` traced when anyone subscribes, else `body(undefined)`; `fields()` builds the context only then. */
function maybeTrace(fields, body) {
  return channel.hasSubscribers ? trace(fields(), body) : body(undefined)
}

/** Runs a traced read's `body`: a hit it reports as `'l1'` was the memo's when the memo counted it. */
function memoOrL1(ctx, memo, body) {
  const seen = memo === null ? 0 : memo.hits
  const answer = body()
  if (ctx.outcome === 'l1' && memo !== null && memo.hits > seen) ctx.outcome = 'memo'
  return answer
}

function run(ctx, body) {
  return body(ctx).then(undefined, (error) => {
    ctx.outcome = 'error'
    if (error !== null && typeof error === 'object' && typeof error.code === 'string') ctx.code ??= error.code
    throw error
  })
}

/**
 * `settle` (lib/batch.js) that also records the call's outcome on `ctx`:
 * `read`: 'redis' when a value came back, else 'miss'; otherwise 'ok'.
 * A failure result ('error', with its code) is not overwritten by a later
 * call of the same operation (mset's two calls).
 */
function observe(ctx, settle, read) {
  return (ok, num, texts, t, code) => {
    const value = settle(ok, num, texts, t)
    if (ctx.outcome === 'error') return value
    if (!ok) {
      ctx.outcome = 'error'
      ctx.code = code ?? CODES.unavailable
    } else if (read) ctx.outcome = value === null || (Array.isArray(value) && value.every((v) => v === null)) ? 'miss' : 'redis'
    else ctx.outcome = 'ok'
    return value
  }
}

/** `settle` recording a non-read's outcome on `ctx` when the call is traced. */
const settled = (settle, ctx) => (ctx === undefined ? settle : observe(ctx, settle, false))

/** A write that stored nothing (the value had no JSON text): its failure result. */
function notStored(ctx) {
  ctx.outcome = 'error'
  ctx.code = CODES.serialize
}

/**
 * A getOrSet run's result `r` (lib/getorset.js) as the outcome of a caller
 * it answered: the fail-safe copy, Redis' value, or the factory's (`cached:
 * false` when it was not stored); `coalesced` when the caller joined the run.
 * Set once: a caller answered earlier (a timeout) keeps that outcome.
 */
function runOutcome(ctx, r, joined) {
  if (ctx.outcome !== undefined) return
  if (joined) ctx.coalesced = true
  if (r.stale) failsafe(ctx)
  else if (r.from === 'redis') ctx.outcome = 'redis'
  else {
    ctx.outcome = 'miss'
    if (r.stored === false) ctx.cached = false
  }
}

/** getOrSetMany's order of outcomes: the key answered from furthest away says how the call was answered. */
const RANK = { memo: 0, l1: 1, redis: 2, miss: 3, error: 4 }

/**
 * getOrSetMany's outcome from its keys' (`parts`, each as runOutcome sets
 * it; none: the key's fail-safe copy answered at a timeout or a factory
 * failure): the furthest tier any key came from, `coalesced` when any key
 * joined a run, `cached: false` when any factory value was not stored.
 */
function manyOutcome(ctx, parts) {
  for (const p of parts) {
    if (p.outcome === undefined) failsafe(p)
    if (ctx.outcome === undefined || RANK[p.outcome] > RANK[ctx.outcome]) {
      ctx.outcome = p.outcome
      if (p.code !== undefined) ctx.code = p.code
    }
    if (p.coalesced) ctx.coalesced = true
    if (p.cached === false) ctx.cached = false
  }
}

/** A getOrSet answered with its fail-safe copy: the failure result it takes. */
function failsafe(ctx) {
  ctx.outcome = 'error'
  ctx.code = CODES.failsafe
}

/** A call answered without Redis: `value`, resolved, its outcome recorded when traced. */
function answered(ctx, outcome, value) {
  if (ctx !== undefined) ctx.outcome = outcome
  return Promise.resolve(value)
}

module.exports = { channel, trace, maybeTrace, memoOrL1, observe, settled, notStored, runOutcome, manyOutcome, failsafe, answered, CHANNEL }
