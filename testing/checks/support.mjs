// What the behaviour checks share: the original's constants, the values they
// store, and small assertions.
import { createServer } from 'node:net'
import { expect } from 'vitest'

/** The original's default expiry, in seconds, when a call's ttl is falsy. */
export const DEFAULT_TTL = 300
/** `used_memory_human`'s format (Redis' bytesToHuman): "1023B", "1.05M". */
export const HUMAN_BYTES = /^\d+(\.\d+)?[BKMGTP]$/

const deep = []
for (let cur = deep, i = 0; i < 200; i++) cur.push((cur = []))

/** Values whose stored text is JSON.stringify's, read back as JSON.parse's. */
export const VALUES = {
  record: { id: 'svc-1', status: 'up', uptime: 99.95, checkedAt: new Date(0), checks: [{ ok: true, skipped: undefined }] },
  keyOrder: { z: 1, a: 2, 10: 'numeric keys first', b: 3 },
  numbers: [0, -0, 1e21, 1e-7, 0.1 + 0.2, -1.5, Number.MAX_SAFE_INTEGER, Number.NaN, Infinity],
  escapes: 'quote " backslash \\ newline \n tab \t nul \u0000 line-sep \u2028 para-sep \u2029',
  unicode: 'héllo wörld — 日本語 — 🎬🍿',
  protoKey: JSON.parse('{"__proto__": {"polluted": true}, "x": 1}'),
  toJSON: { toJSON: () => ({ custom: true }) },
  falsyInside: ['', {}, [], null, false, 0],
  deep,
}

/** What a reader gets back for `value`: JSON.parse(JSON.stringify(value)), compared as text so key order counts. */
export const roundTrip = (value) => JSON.stringify(JSON.parse(JSON.stringify(value)))

export async function expectTtl(ctx, key, seconds) {
  const left = await ctx.cache.ttl(key)
  expect(left, `ttl(${key})`).toBeGreaterThanOrEqual(seconds - 2)
  expect(left, `ttl(${key})`).toBeLessThanOrEqual(seconds)
  if (ctx.raw) {
    const ms = await ctx.raw.pttl(key)
    expect(ms, `PTTL ${key}`).toBeGreaterThan((seconds - 2) * 1000)
    expect(ms, `PTTL ${key}`).toBeLessThanOrEqual(seconds * 1000)
  }
}

/** The call neither throws synchronously nor resolves: it rejects with `type` and a message matching `message`. */
export async function expectRejection(call, type, message) {
  let promise
  expect(() => {
    promise = call()
  }, 'argument errors are rejected promises, never synchronous throws').not.toThrow()
  await expect(promise).rejects.toThrow(type)
  if (message) await expect(promise).rejects.toThrow(message)
}

/** A loopback server that accepts connections and never answers: every command times out. */
export async function blackHole() {
  const sockets = new Set()
  const server = createServer((s) => {
    sockets.add(s)
    s.on('error', () => {})
    s.on('close', () => sockets.delete(s))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: server.address().port,
    close: () => {
      for (const s of sockets) s.destroy()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}

/**
 * Each check: `name`, `run(ctx)`, and `only: 'redis' | 'memory'` when it is
 * observable in one mode alone. `ctx`: `{ cache, key(name), raw, mode, create(options) }`;
 * `raw` is an ioredis client on the same database in 'redis' mode, else null.
 */
