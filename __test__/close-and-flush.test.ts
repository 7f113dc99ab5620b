// Found by attacking the hardening work: emptying a large L1 must not stall
// the event loop or other instances; calls made just before close() still
// run; a call made in the same tick as invalidatePattern keeps its own deadline.
import { describe, it, expect } from 'vitest'
import Redis from 'ioredis'
import { CacheService } from '../index.js'
import { ownRedis } from './helpers/own-redis'
import { eventually } from './helpers/redis'

const ENTRIES = 100_000
// DEBUG POPULATE fills a database server-side in a fraction of the time a client takes.
const redis = ownRedis(['--enable-debug-command', 'local'])

/** An instance with `ENTRIES` keys of its database in L1. */
async function filled(db: number) {
  const c = new CacheService({ url: `${redis.server.url}/${db}`, local: { maxBytes: 512 * 1024 * 1024, maxTtl: 3600 }, logger: false })
  const r = new Redis(redis.server.port, '127.0.0.1', { db })
  const keys = Array.from({ length: ENTRIES }, (_, i) => `f:${i}`)
  for (let i = 0; i < ENTRIES; i += 1000) {
    const batch = r.pipeline()
    for (const k of keys.slice(i, i + 1000)) batch.set(k, '1', 'EX', 3600)
    await batch.exec()
  }
  r.disconnect()
  // Twice: L1 fills on a key's second read.
  for (let r = 0; r < 2; r++) for (let i = 0; i < ENTRIES; i += 1000) await c.mget(keys.slice(i, i + 1000))
  expect(c.stats().local.entries).toBeGreaterThanOrEqual(ENTRIES * 0.99)
  return c
}

describe('emptying a large L1', () => {
  it('clear() does not hold the event loop, and nothing cached is served after it', async () => {
    const c = await filled(1)
    const t0 = performance.now()
    const done = c.clear()
    const blocked = performance.now() - t0
    await done
    // Walking 100,000 entries here took about half a second.
    expect(blocked, `clear() blocked the event loop ${blocked.toFixed(1)} ms`).toBeLessThan(20)
    const hits = c.stats().local.hits
    expect(await c.get('f:1')).toBeNull()
    expect(c.stats().local.hits).toBe(hits)
    await c.close()
  }, 90_000)

  it("losing one instance's connection does not delay another instance's invalidations", async () => {
    const big = await filled(2)
    const small = new CacheService({ url: `${redis.server.url}/3`, local: { maxTtl: 3600 }, logger: false })
    const r3 = new Redis(redis.server.port, '127.0.0.1', { db: 3 })
    await r3.set('x', JSON.stringify('old'))
    expect(await small.get('x')).toBe('old')
    expect(await small.get('x')).toBe('old') // L1 fills on a key's second read
    const hits = small.stats().local.hits
    expect(await small.get('x')).toBe('old')
    expect(small.stats().local.hits, 'x is served from L1').toBe(hits + 1)
    // Kill big's connection (the one on db 2): it empties its L1 on the one
    // tokio worker, the worker that must also apply small's invalidation of x.
    const clients = String(await redis.raw.client('LIST'))
      .split('\n')
      .filter((l) => / db=2 /.test(l) && / resp=3\b/.test(l))
      .map((l) => l.match(/id=(\d+)/)![1])
    expect(clients.length).toBeGreaterThan(0)
    for (const id of clients) await redis.raw.client('KILL', 'ID', id)
    await r3.set('x', JSON.stringify('new'))
    const t0 = performance.now()
    expect(await eventually(async () => (await small.get('x')) === 'new', 3000, 2)).toBe(true)
    const took = performance.now() - t0
    expect(took, `the other instance served the old value for ${took.toFixed(0)} ms`).toBeLessThan(100)
    r3.disconnect()
    await Promise.all([big.close(), small.close()])
  }, 90_000)
})

describe('close()', () => {
  it('runs the calls made before it, then refuses new ones', async () => {
    // Calls made before the first connection is up, then close() at once.
    const c = new CacheService({ url: `${redis.server.url}/4`, logger: false })
    const set = c.set('closing', 'written')
    const got = c.get('closing')
    await c.close()
    await expect(set).resolves.toBeUndefined()
    expect(await got).toBe('written')
    expect(await new Redis(redis.server.port, '127.0.0.1', { db: 4 }).get('closing').finally(() => {})).toBe(JSON.stringify('written'))
    await expect(c.get('closing')).rejects.toMatchObject({ code: 'ERR_CACHE_CLOSED' })
    expect(c.stats().redis.errorsByCode.closed).toBe(0)
  })
})

describe('invalidatePattern and the calls around it', () => {
  it('a call made in the same tick keeps its own commandTimeoutMs', async () => {
    const r5 = new Redis(redis.server.port, '127.0.0.1', { db: 5 })
    // Enough keys that the scan takes several times the bound even on a fast machine
    // (800,000 made it take 305 to 665 ms here, against the 400 ms it must exceed).
    await r5.call('DEBUG', 'POPULATE', '1500000', 'p')
    expect(await r5.dbsize()).toBe(1_500_000)
    const timeoutMs = 100
    const c = new CacheService({ url: `${redis.server.url}/5`, commandTimeoutMs: timeoutMs, logger: false })
    await c.ping()
    const t0 = performance.now()
    const pattern = c.invalidatePattern('nomatch:*')
    const settledAt = await c.get('p:1').then(() => performance.now() - t0)
    await pattern
    const patternTook = performance.now() - t0
    r5.disconnect()
    await c.close()
    const report = `get settled after ${settledAt.toFixed(0)} ms; the pattern took ${patternTook.toFixed(0)} ms`
    // The scan takes several times the bound; the get must not wait for it.
    expect(patternTook, `the scan was too quick to tell: ${report}`).toBeGreaterThan(timeoutMs * 4)
    expect(settledAt, report).toBeLessThan(timeoutMs + 250)
  }, 90_000)
})
