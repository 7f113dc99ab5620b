// SPEC.md "The local tier (L1)": each numbered guarantee, against a private
// redis-server. maxTtl is an hour everywhere it is not under test, so only
// invalidation can explain a pass.
import { describe, it, expect, beforeEach } from 'vitest'
import Redis from 'ioredis'
import { CacheService } from '../index.js'
import { eventually, sleep } from './helpers/redis'
import { ownRedis, closedAfterEach } from './helpers/own-redis'

const HOUR = 3600
const COHERENT_WITHIN_MS = 100

const redis = ownRedis(['--enable-debug-command', 'local'])
const instance = closedAfterEach(
  (opts: ConstructorParameters<typeof CacheService>[0] = {}) =>
    new CacheService({ url: redis.server.url, local: { maxTtl: HOUR }, logger: false, ...opts }),
)

/**
 * Reads `key` until B answers from L1 (a local hit), so the test starts from a
 * cached value: L1 fills on a key's second read, so the third is the hit.
 */
async function cachedIn(c: CacheService, key: string, expected: unknown) {
  expect(await c.get(key)).toEqual(expected)
  expect(await c.get(key)).toEqual(expected)
  const before = c.stats().local.hits
  expect(await c.get(key)).toEqual(expected)
  expect(c.stats().local.hits, `${key} should be an L1 hit`).toBe(before + 1)
}

/** B stops serving the old value within the coherence bound. */
async function coherent(c: CacheService, key: string, expected: unknown) {
  const started = performance.now()
  const ok = await eventually(async () => JSON.stringify(await c.get(key)) === JSON.stringify(expected), 2000, 2)
  const took = performance.now() - started
  expect(ok, `${key} never became ${JSON.stringify(expected)}`).toBe(true)
  expect(took, `${key} took ${took.toFixed(1)} ms`).toBeLessThan(COHERENT_WITHIN_MS)
}

describe('3. coherent: any writer, and B stops serving the old value within 100 ms', () => {
  let a: CacheService
  let b: CacheService
  beforeEach(async () => {
    await redis.raw.flushall()
    a = instance()
    b = instance()
    await a.set('k', 'old', HOUR)
    await cachedIn(b, 'k', 'old')
  })

  const writers: Array<[string, () => Promise<unknown>, unknown]> = [
    ['A.set', () => a.set('k', 'new'), 'new'],
    ['A.del', () => a.del('k'), null],
    ['A.invalidatePattern', () => a.invalidatePattern('k*'), null],
    ['A.clear', () => a.clear(), null],
    ['A.mset', () => a.mset({ k: 'new', other: 1 }), 'new'],
    ['raw SET', () => redis.raw.set('k', JSON.stringify('new')), 'new'],
    ['raw DEL', () => redis.raw.del('k'), null],
    ['raw EXPIRE', () => redis.raw.pexpire('k', 1), null],
    ['raw FLUSHALL', () => redis.raw.flushall(), null],
  ]
  it.each(writers)('%s', async (_name, write, expected) => {
    await write()
    await coherent(b, 'k', expected)
  })

  it('TTL expiry: an entry never outlives the key in Redis', async () => {
    // At hz 1 the server's expiry push can come a second late: only L1's own
    // deadline (taken from PTTL) keeps it coherent.
    await redis.raw.config('SET', 'hz', '1')
    try {
      await redis.raw.set('short', JSON.stringify('brief'), 'PX', 150)
      await cachedIn(b, 'short', 'brief')
      await sleep(150)
      await coherent(b, 'short', null)
    } finally {
      await redis.raw.config('SET', 'hz', '10')
    }
  })

  it('a Redis restart that loses the data', async () => {
    redis.server.signal('SIGKILL')
    await redis.server.start()
    await coherent(b, 'k', null)
    redis.renewRaw()
  })
})

describe('2. never outlives Redis, nor local.maxTtl', () => {
  it('an entry is served from L1 at most maxTtl, then read from Redis again', async () => {
    const c = instance({ local: { maxTtl: 0.1 } })
    await c.set('m', 1, HOUR)
    await cachedIn(c, 'm', 1)
    await sleep(120)
    const misses = c.stats().local.misses
    expect(await c.get('m')).toBe(1)
    expect(c.stats().local.misses).toBe(misses + 1)
  })
})

describe('1. bounded by maxBytes', () => {
  it('filling far past maxBytes keeps keys plus JSON within the bound', async () => {
    const c = instance({ local: { maxBytes: 64 * 1024, maxTtl: HOUR } })
    const value = { pad: 'x'.repeat(1000) }
    for (let i = 0; i < 1000; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => c.set(`big:${i + j}`, value, HOUR)))
    }
    // Twice: L1 fills on a key's second read.
    for (let r = 0; r < 2; r++) await c.mget(Array.from({ length: 1000 }, (_, i) => `big:${i}`))
    const s = c.stats()
    expect(s.local.bytes).toBeGreaterThan(0)
    expect(s.local.bytes).toBeLessThanOrEqual(64 * 1024)
    expect(s.local.evictions).toBeGreaterThan(0)
  })

  it('an entry larger than maxBytes is served from Redis, never cached', async () => {
    const c = instance({ local: { maxBytes: 1024, maxTtl: HOUR } })
    await c.set('huge', 'y'.repeat(5000))
    expect(((await c.get('huge')) as string).length).toBe(5000)
    expect(c.stats().local.entries).toBe(0)
  })
})

describe('4. read your writes, and no stale fill from a read in flight', () => {
  it('a resolved set is what the same instance reads next, even over a cached value', async () => {
    const c = instance()
    await c.set('r', 'v1')
    await cachedIn(c, 'r', 'v1')
    await c.set('r', 'v2')
    expect(await c.get('r')).toBe('v2')
  })

  it('a get issued right after an unawaited set sees the set', async () => {
    const c = instance()
    await c.set('r2', 'v1')
    await cachedIn(c, 'r2', 'v1')
    const setting = c.set('r2', 'v2')
    expect(await c.get('r2')).toBe('v2')
    await setting
  })

  // The server is held by DEBUG SLEEP, so the read is surely in flight when
  // the invalidating call is made; its older value must not land in L1.
  const invalidators: Array<[string, (c: CacheService) => Promise<unknown>]> = [
    ['del', (c) => c.del('race')],
    ['invalidatePattern', (c) => c.invalidatePattern('rac*')],
    ['clear', (c) => c.clear()],
  ]
  it.each(invalidators)('%s racing a read in flight', async (_n, invalidate) => {
    const c = instance()
    const admin = new Redis(redis.server.port, '127.0.0.1')
    await redis.raw.set('race', JSON.stringify('old'))
    const sleeping = admin.call('DEBUG', 'SLEEP', '0.2')
    await sleep(30)
    const reading = c.get('race')
    await sleep(30)
    const invalidating = invalidate(c)
    expect(await reading).toBe('old')
    await invalidating
    await sleeping
    admin.disconnect()
    expect(await c.get('race')).toBeNull()
    expect(await redis.raw.exists('race')).toBe(0)
  })
})

describe('5. disconnect empties L1, which refills after reconnecting', () => {
  it('CLIENT KILL from another connection', async () => {
    const c = instance()
    await c.set('d', 1)
    await cachedIn(c, 'd', 1)
    expect(c.stats().local.entries).toBeGreaterThan(0)
    await redis.raw.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
    expect(await eventually(() => c.stats().local.entries === 0, 1000, 2)).toBe(true)
    expect(await eventually(async () => (await c.get('d')) === 1, 3000, 20)).toBe(true)
    await cachedIn(c, 'd', 1)
  })
})

describe('6. isolation: every call returns a fresh value', () => {
  it('mutating one result changes no other result and nothing cached', async () => {
    const c = instance()
    await c.set('iso', { list: [1, 2], nested: { n: 1 } })
    const first = (await c.get('iso')) as { list: number[]; nested: { n: number } }
    const second = (await c.get('iso')) as typeof first
    expect(first).not.toBe(second)
    first.list.push(3)
    first.nested.n = 99
    expect(second).toEqual({ list: [1, 2], nested: { n: 1 } })
    expect(await c.get('iso')).toEqual({ list: [1, 2], nested: { n: 1 } })
    const [m1] = (await c.mget(['iso'])) as Array<typeof first>
    m1.list.length = 0
    expect(await c.mget(['iso'])).toEqual([{ list: [1, 2], nested: { n: 1 } }])
  })
})

describe('7. stampede: concurrent getOrSet for one missing key', () => {
  it('200 callers: the factory runs once, each caller gets its own copy', async () => {
    const c = instance()
    let runs = 0
    const factory = async () => {
      runs += 1
      await sleep(20)
      return { made: 'once', items: [1, 2, 3] }
    }
    const results = await Promise.all(Array.from({ length: 200 }, () => c.getOrSet('stamp', factory, 60)))
    expect(runs).toBe(1)
    expect(c.stats().coalesced).toBe(199)
    expect(new Set(results).size).toBe(200)
    results[0].items.push(4)
    results[1].made = 'mutated'
    expect(results[2]).toEqual({ made: 'once', items: [1, 2, 3] })
    expect(await c.get('stamp')).toEqual({ made: 'once', items: [1, 2, 3] })
  })

  it('a factory rejection reaches every waiting caller and caches nothing', async () => {
    const c = instance()
    const err = new Error('upstream down')
    let runs = 0
    const settled = await Promise.allSettled(
      Array.from({ length: 50 }, () =>
        c.getOrSet('fails', async () => {
          runs += 1
          await sleep(10)
          throw err
        }),
      ),
    )
    expect(runs).toBe(1)
    expect(settled.every((s) => s.status === 'rejected' && s.reason === err)).toBe(true)
    expect(await redis.raw.exists('fails')).toBe(0)
    expect(await c.getOrSet('fails', () => 'recovered')).toBe('recovered')
  })
})

describe('the hit path', () => {
  it('an L1 hit does not touch Redis', async () => {
    const c = instance()
    await c.set('hot', { v: 1 })
    await cachedIn(c, 'hot', { v: 1 })
    const gets = async () => {
      const stats = await redis.raw.info('commandstats')
      return Number(/cmdstat_get:calls=(\d+)/.exec(stats)?.[1] ?? 0) + Number(/cmdstat_mget:calls=(\d+)/.exec(stats)?.[1] ?? 0)
    }
    const before = await gets()
    for (let i = 0; i < 1000; i++) await c.get('hot')
    await c.mget(['hot', 'hot'])
    await c.getOrSet('hot', () => ({ v: 'never' }))
    expect(await gets()).toBe(before)
  })

  it('mget serves the hits from L1 and fetches only the misses, in one MGET', async () => {
    const c = instance()
    await c.mset({ h1: 1, h2: 2, m1: 3 })
    await cachedIn(c, 'h1', 1)
    await cachedIn(c, 'h2', 2)
    await redis.raw.config('RESETSTAT')
    expect(c.stats().local.entries).toBe(2)
    expect(await c.mget(['h1', 'm1', 'h2', 'nope'])).toEqual([1, 3, 2, null])
    const stats = await redis.raw.info('commandstats')
    expect(/cmdstat_mget:calls=(\d+)/.exec(stats)?.[1]).toBe('1')
    expect(/cmdstat_get:calls=/.test(stats)).toBe(false)
  })

  it('a key read once is not cached and costs Redis a plain GET: no PTTL, no tracking', async () => {
    const c = instance()
    await c.mset(Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`once:${i}`, i])))
    await redis.raw.config('RESETSTAT')
    const tracked = async () => Number(/tracking_total_keys:(\d+)/.exec(await redis.raw.info('stats'))?.[1])
    const before = await tracked()
    for (let i = 0; i < 100; i++) expect(await c.get(`once:${i}`)).toBe(i)
    expect(c.stats().local.entries).toBe(0)
    const stats = await redis.raw.info('commandstats')
    expect(/cmdstat_get:calls=(\d+)/.exec(stats)?.[1]).toBe('100')
    expect(/cmdstat_pttl:calls=/.test(stats)).toBe(false)
    expect(await tracked()).toBe(before)
    // The second read fills L1, tracked; the third is a hit.
    expect(await c.get('once:7')).toBe(7)
    expect(await tracked()).toBe(before + 1)
    const hits = c.stats().local.hits
    expect(await c.get('once:7')).toBe(7)
    expect(c.stats().local.hits).toBe(hits + 1)
  })

  it('keys around the hit path’s 256-byte key buffer, and non-ASCII ones, hit their own entries', async () => {
    const c = instance()
    const short = 'k'.repeat(253)
    // 253 + 3 bytes: the euro sign does not fit the buffer, so the key must be read whole.
    const keys = [short, `${short}€`, `${'k'.repeat(252)}é`, '€'.repeat(85), '€'.repeat(86), 'k'.repeat(300), '😀'.repeat(70)]
    await c.mset(Object.fromEntries(keys.map((k, i) => [k, i])))
    for (let r = 0; r < 2; r++) for (const k of keys) await c.get(k)
    for (const [i, k] of keys.entries()) {
      const hits = c.stats().local.hits
      expect(await c.get(k), `key of ${Buffer.byteLength(k)} bytes`).toBe(i)
      expect(c.stats().local.hits, `key of ${Buffer.byteLength(k)} bytes should be an L1 hit`).toBe(hits + 1)
    }
  })

  it('a write does not fill L1; the next read does, and that entry is coherent', async () => {
    const a = instance()
    const b = instance()
    await b.set('wt', 'mine')
    expect(b.stats().local.entries).toBe(0)
    await cachedIn(b, 'wt', 'mine')
    await a.set('wt', 'theirs')
    await coherent(b, 'wt', 'theirs')
  })
})

describe('servers that cannot track', () => {
  it('tracking refused: runs without L1, correct results, and says so once', async () => {
    await redis.raw.call('ACL', 'SETUSER', 'notrack', 'on', '>pw', '~*', '&*', '+@all', '-client|tracking')
    const warnings: string[] = []
    const logger = { error: (m: string) => warnings.push(m), warn: (m: string) => warnings.push(m), info: () => {}, debug: () => {} }
    const c = instance({ url: `redis://notrack:pw@127.0.0.1:${redis.server.port}`, logger })
    await c.set('nt', 1)
    expect(await c.get('nt')).toBe(1)
    expect(await c.get('nt')).toBe(1)
    const s = c.stats()
    expect(s.local.enabled).toBe(false)
    expect(s.local.hits).toBe(0)
    await redis.raw.set('nt', '2')
    expect(await c.get('nt')).toBe(2)
    expect(warnings.filter((w) => /tracking/.test(w))).toHaveLength(1)
  })

  it('local: false runs without L1', async () => {
    const c = instance({ local: false })
    await c.set('off', 1)
    expect(await c.get('off')).toBe(1)
    expect(c.stats().local.enabled).toBe(false)
    expect(c.stats().local.entries).toBe(0)
  })
})
