// invalidatePattern with a large L1: the walk over L1 happens off the
// JavaScript thread (issue 8, defect 6), and it still leaves no match behind.
import { describe, it, expect } from 'vitest'
import { CacheService } from '../index.js'
import { ownRedis } from './helpers/own-redis'

const ENTRIES = 100_000
const redis = ownRedis()

describe('invalidatePattern over a large L1', () => {
  it('does not walk L1 on the event loop, and every match is gone once it resolves', async () => {
    const c = new CacheService({ url: redis.server.url, local: { maxBytes: 512 * 1024 * 1024, maxTtl: 3600 }, logger: false })
    const keys = Array.from({ length: ENTRIES }, (_, i) => `walk:${i}`)
    for (let i = 0; i < ENTRIES; i += 1000) {
      const batch = redis.raw.pipeline()
      for (const k of keys.slice(i, i + 1000)) batch.set(k, '1', 'EX', 3600)
      await batch.exec()
    }
    // mget of at most 1,000 keys fills L1, on the keys' second read.
    for (let r = 0; r < 2; r++) for (let i = 0; i < ENTRIES; i += 1000) await c.mget(keys.slice(i, i + 1000))
    expect(c.stats().local.entries).toBeGreaterThanOrEqual(ENTRIES * 0.99)

    // Time only the synchronous part of the call: what the event loop waits for.
    const blocked: number[] = []
    for (let round = 0; round < 5; round++) {
      const t0 = performance.now()
      const done = c.invalidatePattern(`nomatch-${round}:*`)
      blocked.push(performance.now() - t0)
      await done
    }
    blocked.sort((a, b) => a - b)
    // A walk of 100,000 entries on this thread took tens of ms; queueing the call takes microseconds.
    expect(blocked[2], `event loop blocked ${blocked.map((b) => b.toFixed(2)).join(', ')} ms`).toBeLessThan(2)

    await c.invalidatePattern('walk:1*')
    const hitsBefore = c.stats().local.hits
    const left = (await c.mget(keys.filter((k) => k.startsWith('walk:1')).slice(0, 1000))).filter((v) => v !== null)
    expect(left).toEqual([])
    expect(c.stats().local.hits, 'no deleted key served from L1').toBe(hitsBefore)
    expect(await c.get('walk:2')).toBe(1)
    await c.close()
  }, 60_000)
})
