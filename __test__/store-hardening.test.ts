// Issue 8, defect 6: a pathological glob must not crash the process (the recursive matcher overflowed the stack),
// in 'memory' mode (the store's own match) and in 'redis' mode (L1's purge before the SCAN).
import { describe, it, expect } from 'vitest'
import { CacheService } from '../index.js'
import { ownRedis } from './helpers/own-redis'
import { sleep } from './helpers/redis'

// Deep enough to overflow any thread's stack recursing once per star: a recursive matcher
// survived 100,000 stars against a 100,000-byte key on Node's 8 MiB main stack and crashed at 300,000.
const STARS = 1_000_000
const PATHOLOGICAL = 'a*'.repeat(STARS) + 'b'
const LONG_KEY = 'a'.repeat(STARS)
const redis = ownRedis()

describe("'memory' mode invalidatePattern", () => {
  it('survives a pattern of 1,000,000 stars against a long key, and still matches by Redis rules', async () => {
    const c = new CacheService({ mode: 'memory' })
    const key = LONG_KEY
    await c.set(key, 1, 60)
    const started = Date.now()
    await c.invalidatePattern(PATHOLOGICAL)
    expect(Date.now() - started).toBeLessThan(1000)
    expect(await c.get(key)).toBe(1)
    await c.invalidatePattern('a*'.repeat(10) + 'a')
    expect(await c.get(key)).toBeNull()
    await c.close()
  })
})

describe("'redis' mode invalidatePattern", () => {
  it('survives a pattern of 1,000,000 stars with a long key in L1, and the key is served right after', async () => {
    const c = new CacheService({ url: redis.server.url, local: { maxTtl: 3600 }, logger: false })
    const key = LONG_KEY
    await c.set(key, 1, 60)
    // Twice: L1 fills on a key's second read; the third is a hit.
    expect(await c.get(key)).toBe(1)
    expect(await c.get(key)).toBe(1)
    const hits = c.stats().local.hits
    expect(await c.get(key)).toBe(1)
    expect(c.stats().local.hits, 'the long key is in L1').toBe(hits + 1)

    const started = Date.now()
    await c.invalidatePattern(PATHOLOGICAL)
    expect(Date.now() - started).toBeLessThan(1000)
    // SCAN MATCH on the server matches nothing past 1000 nested stars: the key stays.
    expect(await redis.raw.exists(key)).toBe(1)
    expect(await c.get(key)).toBe(1)
    expect(await c.ping()).toBe(true)
    await c.invalidatePattern('a*'.repeat(10) + 'a')
    expect(await redis.raw.exists(key)).toBe(0)
    expect(await c.get(key)).toBeNull()
    await c.close()
  })
})

// Issue 8, defect 8: close() frees the store (248,160 of 300,000 entries were still there 3 s after close()).
describe('close()', () => {
  it("frees every entry of a 300,000-entry store by itself, without the store's own maintenance", async () => {
    const c = new CacheService({ mode: 'memory', local: { maxBytes: 1024 * 1024 * 1024 } })
    const N = 300_000
    for (let i = 0; i < N; i += 10_000) {
      const batch: Record<string, string> = {}
      for (let j = i; j < i + 10_000; j++) batch[`close:${j}`] = 'x'.repeat(50)
      await c.mset(batch, 600)
    }
    expect(c.stats().local.entries).toBe(N)
    const t0 = performance.now()
    await c.close()
    const blocked = performance.now() - t0
    expect(blocked, `close() held the event loop ${blocked.toFixed(1)} ms`).toBeLessThan(50)
    // One reading only: each stats() runs moka's maintenance, which frees a batch of what it
    // has marked, so polling would free the store by itself and hide a close() that does not.
    await sleep(5000)
    const { entries, bytes } = c.stats().local
    expect({ entries, bytes }, 'left 5 s after close()').toEqual({ entries: 0, bytes: 0 })
  }, 30_000)
})
