// The JavaScript memo (index.js `Memo`): copies of recent L1 hits served
// without a native call. Each test first shows the memo is serving
// (stats().local.memoHits moves), then changes the key by one route, and
// checks the copy is not served after it: the key's version (another
// writer's push, this instance's own write), the store's epoch (FLUSHDB),
// the entry's deadline, the lease (partition.test.ts), and a pattern delete.
import { describe, it, expect } from 'vitest'
import { CacheService } from '../index.js'
import { eventually, sleep } from './helpers/redis'
import { ownRedis, closedAfterEach } from './helpers/own-redis'

const HOUR = 3600

const redis = ownRedis()
const instance = closedAfterEach(
  (opts: ConstructorParameters<typeof CacheService>[0] = {}) =>
    new CacheService({ url: redis.server.url, local: { maxTtl: HOUR }, logger: false, ...opts }),
)

/** Reads `key` until the memo answers it: L1 fills on the second read, the third is a native hit that the memo keeps. */
async function memoized(c: CacheService, key: string, expected: unknown) {
  for (let i = 0; i < 3; i++) expect(await c.get(key)).toEqual(expected)
  const before = c.stats().local.memoHits
  expect(await c.get(key)).toEqual(expected)
  expect(c.stats().local.memoHits, `${key} should be a memo hit`).toBe(before + 1)
}

/** `c` answers `expected` for `key` within `ms`. */
async function answers(c: CacheService, key: string, expected: unknown, ms = 1000) {
  const ok = await eventually(async () => JSON.stringify(await c.get(key)) === JSON.stringify(expected), ms, 1)
  expect(ok, `${key} never became ${JSON.stringify(expected)}`).toBe(true)
}

describe('the memo never serves a copy after its key changed', () => {
  it('another writer: the tracking push moves the key version', async () => {
    const c = instance()
    await redis.raw.set('m:foreign', JSON.stringify({ v: 1 }))
    await memoized(c, 'm:foreign', { v: 1 })
    await redis.raw.set('m:foreign', JSON.stringify({ v: 2 }))
    await answers(c, 'm:foreign', { v: 2 })
    // And mget sees it too, also for a key mget itself memoized.
    await redis.raw.set('m:foreign2', JSON.stringify({ v: 1 }))
    for (let i = 0; i < 4; i++) expect(await c.mget(['m:foreign', 'm:foreign2'])).toEqual([{ v: 2 }, { v: 1 }])
    const before = c.stats().local.memoHits
    expect(await c.mget(['m:foreign', 'm:foreign2'])).toEqual([{ v: 2 }, { v: 1 }])
    expect(c.stats().local.memoHits).toBe(before + 2)
    await redis.raw.set('m:foreign2', JSON.stringify({ v: 3 }))
    const ok = await eventually(async () => JSON.stringify(await c.mget(['m:foreign', 'm:foreign2'])) === '[{"v":2},{"v":3}]', 1000, 1)
    expect(ok, 'mget kept serving the old copy').toBe(true)
  })

  it("this instance's own write and delete: seen by the very next read", async () => {
    const c = instance()
    await c.set('m:own', { v: 1 }, HOUR)
    await memoized(c, 'm:own', { v: 1 })
    const write = c.set('m:own', { v: 2 }, HOUR)
    expect(await c.get('m:own')).toEqual({ v: 2 })
    await write
    await memoized(c, 'm:own', { v: 2 })
    const del = c.del('m:own')
    expect(await c.get('m:own')).toBeNull()
    await del
  })

  it('FLUSHDB from another client: the epoch moves for every copy', async () => {
    const c = instance()
    await redis.raw.set('m:flush:a', '"a"')
    await redis.raw.set('m:flush:b', '"b"')
    await memoized(c, 'm:flush:a', 'a')
    await memoized(c, 'm:flush:b', 'b')
    await redis.raw.flushdb()
    await answers(c, 'm:flush:a', null)
    await answers(c, 'm:flush:b', null)
  })

  it('clear() and invalidatePattern() on this instance', async () => {
    const c = instance()
    await redis.raw.set('m:pat:1', '1')
    await redis.raw.set('m:other', '2')
    await memoized(c, 'm:pat:1', 1)
    await memoized(c, 'm:other', 2)
    await c.invalidatePattern('m:pat:*')
    expect(await c.get('m:pat:1')).toBeNull()
    expect(await c.get('m:other')).toBe(2)
    await redis.raw.set('m:other', '3')
    await answers(c, 'm:other', 3)
    await memoized(c, 'm:other', 3)
    await c.clear()
    expect(await c.get('m:other')).toBeNull()
  })

  it("the entry's deadline, in 'memory' mode (no Redis, no pushes)", async () => {
    const c = instance({ mode: 'memory' })
    await c.set('m:ttl', 'x', 0.3)
    // In 'memory' mode the store is the data: the second read is already a native hit.
    expect(await c.get('m:ttl')).toBe('x')
    const before = c.stats().local.memoHits
    expect(await c.get('m:ttl')).toBe('x')
    expect(c.stats().local.memoHits).toBe(before + 1)
    await sleep(350)
    expect(await c.get('m:ttl')).toBeNull()
  })

  it("'memory' mode writes, deletes and pattern deletes", async () => {
    const c = instance({ mode: 'memory' })
    await c.set('p:1', 1)
    for (let i = 0; i < 3; i++) expect(await c.get('p:1')).toBe(1)
    await c.set('p:1', 2)
    expect(await c.get('p:1')).toBe(2)
    expect(await c.get('p:1')).toBe(2)
    await c.invalidatePattern('p:*')
    expect(await c.get('p:1')).toBeNull()
  })

  it('keeps no copy past its share of maxBytes (a sixteenth): a value too large is read through Rust every time', async () => {
    // 64 KiB of L1: the memo may hold 4 KiB, 2 KiB a generation, counted at two bytes a character plus a copy's bookkeeping.
    const c = instance({ local: { maxBytes: 64 * 1024, maxTtl: HOUR } })
    await redis.raw.set('m:big', JSON.stringify('x'.repeat(3000)))
    await redis.raw.set('m:small', JSON.stringify('x'.repeat(800)))
    for (let i = 0; i < 6; i++) {
      expect(await c.get('m:big')).toHaveLength(3000)
      expect(await c.get('m:small')).toHaveLength(800)
    }
    const s = c.stats().local
    // Reads 3-6 of each key are L1 hits; only the small key's 4-6 come from the memo.
    expect(s.hits).toBe(8)
    expect(s.memoHits).toBe(3)
  })

  it('a closed instance serves nothing', async () => {
    const c = instance()
    await redis.raw.set('m:closed', '1')
    await memoized(c, 'm:closed', 1)
    await c.close()
    await expect(c.get('m:closed')).rejects.toThrow()
  })
})
