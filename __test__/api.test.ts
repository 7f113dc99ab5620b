// Every row of SPEC.md's method table, in both modes, against a real Redis.
import { describe, it, expect, beforeAll, afterAll, beforeEach, inject } from 'vitest'
import Redis from 'ioredis'
import { CacheService } from '../index.js'

const port = inject('redisPort')
const DB = 1

describe.each(['redis', 'memory'] as const)('%s mode: the original API', (mode) => {
  let cache: CacheService
  let raw: Redis

  beforeAll(() => {
    cache = new CacheService({ mode, port, host: '127.0.0.1', db: DB })
    raw = new Redis({ port, host: '127.0.0.1', db: DB, lazyConnect: true })
  })
  afterAll(async () => {
    await cache.close()
    raw.disconnect()
  })
  beforeEach(async () => {
    await cache.clear()
  })

  it('get answers the stored JSON parsed, and null when missing', async () => {
    await cache.set('user:1', { id: 1, name: 'Ann', tags: ['a'], nested: { ok: true } })
    expect(await cache.get('user:1')).toEqual({ id: 1, name: 'Ann', tags: ['a'], nested: { ok: true } })
    expect(await cache.get('nope')).toBeNull()
  })

  it('set keeps JSON scalars and falsy values', async () => {
    for (const [k, v] of [['zero', 0], ['false', false], ['empty', ''], ['arr', []], ['str', 'x'], ['num', 1.5]] as const) {
      await cache.set(k, v)
      expect(await cache.get(k)).toEqual(v)
    }
  })

  it('set applies ttl seconds, and defaultTtl when ttl is falsy', async () => {
    await cache.set('short', 1, 10)
    const t = await cache.ttl('short')
    expect(t).toBeGreaterThanOrEqual(9)
    expect(t).toBeLessThanOrEqual(10)
    for (const falsy of [undefined, null, 0, Number.NaN]) {
      await cache.set('dflt', 1, falsy as unknown as number)
      expect(await cache.ttl('dflt')).toBeGreaterThanOrEqual(299)
    }
  })

  it('a fractional ttl is kept to the millisecond', async () => {
    await cache.set('frac', 1, 0.15)
    expect(await cache.get('frac')).toBe(1)
    await new Promise((r) => setTimeout(r, 250))
    expect(await cache.get('frac')).toBeNull()
  })

  it('del removes one key or an array; an empty array does nothing', async () => {
    await cache.mset({ a: 1, b: 2, c: 3 })
    await cache.del('a')
    expect(await cache.get('a')).toBeNull()
    await cache.del(['b', 'c'])
    expect(await cache.mget(['a', 'b', 'c'])).toEqual([null, null, null])
    await cache.set('d', 4)
    await cache.del([])
    expect(await cache.get('d')).toBe(4)
  })

  it('getOrSet: a cached 0, false, empty string or empty array is a hit', async () => {
    for (const [k, v] of [['z', 0], ['f', false], ['e', ''], ['a', []]] as const) {
      await cache.set(k, v)
      let ran = 0
      expect(await cache.getOrSet(k, () => ((ran += 1), 'fresh'))).toEqual(v)
      expect(ran).toBe(0)
    }
  })

  it('getOrSet: a miss (or a cached null) runs the factory and stores its value with ttl', async () => {
    await cache.set('n', null)
    const value = await cache.getOrSet('n', async () => ({ made: 1 }), 50)
    expect(value).toEqual({ made: 1 })
    expect(await cache.get('n')).toEqual({ made: 1 })
    expect(await cache.ttl('n')).toBeGreaterThan(45)
    expect(await cache.getOrSet('m', () => 7)).toBe(7)
    expect(await cache.get('m')).toBe(7)
  })

  it('getOrSet: a factory rejection rejects with the very same value and stores nothing', async () => {
    const err = new Error('boom')
    await expect(cache.getOrSet('r1', () => Promise.reject(err))).rejects.toBe(err)
    const notAnError = { reason: 'plain object' }
    await expect(cache.getOrSet('r2', () => Promise.reject(notAnError))).rejects.toBe(notAnError)
    await expect(
      cache.getOrSet('r3', () => {
        throw 'sync string'
      }),
    ).rejects.toBe('sync string')
    expect(await cache.mget(['r1', 'r2', 'r3'])).toEqual([null, null, null])
  })

  it('getOrSet: a factory that is not a function rejects with a TypeError', async () => {
    await expect(cache.getOrSet('x', 42 as unknown as () => number)).rejects.toThrow(TypeError)
    await expect(cache.getOrSet('x', undefined as unknown as () => number)).rejects.toThrow(/factory/)
  })

  it('invalidatePattern deletes exactly the keys matching the Redis glob', async () => {
    const keys = ['user:1', 'user:2', 'user:10', 'post:1', 'a*b', 'axb', 'hallo', 'hello', 'hillo', 'hbllo']
    await cache.mset(Object.fromEntries(keys.map((k) => [k, k])))
    const survivors = async () => (await cache.mget(keys)).map((v, i) => (v === null ? null : keys[i])).filter(Boolean)
    await cache.invalidatePattern('user:?')
    expect(await survivors()).toEqual(['user:10', 'post:1', 'a*b', 'axb', 'hallo', 'hello', 'hillo', 'hbllo'])
    await cache.invalidatePattern('a\\*b')
    expect(await survivors()).toContain('axb')
    expect(await survivors()).not.toContain('a*b')
    await cache.invalidatePattern('h[a-b]llo')
    expect(await survivors()).toEqual(['user:10', 'post:1', 'axb', 'hello', 'hillo'])
    await cache.invalidatePattern('h[^e]llo')
    expect(await survivors()).toEqual(['user:10', 'post:1', 'axb', 'hello'])
    await cache.invalidatePattern('*')
    expect(await survivors()).toEqual([])
  })

  it('exists answers true and false', async () => {
    await cache.set('here', 1)
    expect(await cache.exists('here')).toBe(true)
    expect(await cache.exists('gone')).toBe(false)
  })

  it('ttl answers seconds left, and -2 for a missing key', async () => {
    await cache.set('t', 1, 100)
    expect(await cache.ttl('t')).toBe(100)
    expect(await cache.ttl('missing')).toBe(-2)
  })

  it('ping answers true', async () => {
    expect(await cache.ping()).toBe(true)
  })

  it('mget answers one entry per key, null for missing, and [] for []', async () => {
    await cache.mset({ a: { x: 1 }, c: [1, 2] })
    expect(await cache.mget(['a', 'b', 'c'])).toEqual([{ x: 1 }, null, [1, 2]])
    expect(await cache.mget([])).toEqual([])
  })

  it('mset stores every entry with the same expiry', async () => {
    await cache.mset({ k1: 1, k2: 'two', k3: { three: 3 } }, 120)
    expect(await cache.mget(['k1', 'k2', 'k3'])).toEqual([1, 'two', { three: 3 }])
    for (const k of ['k1', 'k2', 'k3']) expect(await cache.ttl(k)).toBeGreaterThanOrEqual(119)
  })

  it('getInfo answers the key count and a human memory size', async () => {
    await cache.mset({ i1: 1, i2: 2, i3: 3 })
    const info = await cache.getInfo()
    expect(info.keyCount).toBe(3)
    expect(info.memoryUsage).toMatch(/^\d+(\.\d\d)?[BKMGTP]$/)
  })

  it('clear empties the cache', async () => {
    await cache.mset({ c1: 1, c2: 2 })
    await cache.clear()
    expect(await cache.mget(['c1', 'c2'])).toEqual([null, null])
    expect((await cache.getInfo()).keyCount).toBe(0)
  })

  it('numbers are keys too, as ioredis turns them into strings', async () => {
    await cache.set(123, 'n')
    expect(await cache.get('123')).toBe('n')
    await cache.del(123)
    expect(await cache.get(123)).toBeNull()
  })

  it('close rejects later calls with a clear error, and close twice is fine', async () => {
    const c = new CacheService({ mode, port, host: '127.0.0.1', db: DB })
    await c.set('before-close', 1)
    await c.close()
    await c.close()
    await expect(c.get('before-close')).rejects.toMatchObject({ code: 'ERR_CACHE_CLOSED' })
    await expect(c.set('x', 1)).rejects.toThrow(/closed/)
  })

  it('stats counts both tiers', async () => {
    await cache.set('s', 1)
    await cache.get('s')
    await cache.get('s-missing')
    const s = cache.stats()
    expect(s.mode).toBe(mode)
    expect(s.local.hits + s.redis.hits).toBeGreaterThan(0)
    expect(s.local.bytes).toBeLessThanOrEqual(s.local.maxBytes)
  })
})

describe('redis mode against what is in Redis', () => {
  let cache: CacheService
  let raw: Redis
  beforeAll(() => {
    cache = new CacheService({ port, host: '127.0.0.1', db: DB + 1 })
    raw = new Redis({ port, host: '127.0.0.1', db: DB + 1 })
  })
  afterAll(async () => {
    await cache.close()
    raw.disconnect()
  })

  it('get answers null for an empty string and for text that is not JSON', async () => {
    await raw.set('empty', '')
    await raw.set('notjson', '{oops')
    expect(await cache.get('empty')).toBeNull()
    expect(await cache.get('notjson')).toBeNull()
    expect(await cache.mget(['empty', 'notjson'])).toEqual([null, null])
  })

  it('ttl answers -1 for a key without expiry', async () => {
    await raw.set('forever', '1')
    expect(await cache.ttl('forever')).toBe(-1)
  })

  it('clear flushes only the selected database', async () => {
    const other = new Redis({ port, host: '127.0.0.1', db: DB + 2 })
    await other.set('elsewhere', '1')
    await cache.set('here', 1)
    await cache.clear()
    expect(await raw.exists('here')).toBe(0)
    expect(await other.get('elsewhere')).toBe('1')
    await other.del('elsewhere')
    other.disconnect()
  })

  it('getInfo reports DBSIZE and used_memory_human from the server', async () => {
    await raw.flushdb()
    await raw.mset('a', '1', 'b', '2')
    const info = await cache.getInfo()
    expect(info.keyCount).toBe(2)
    const human = (await raw.info('memory')).match(/used_memory_human:(\S+)/)![1]
    expect(info.memoryUsage).toMatch(/^\d+(\.\d\d)?[KMG]$/)
    expect(info.memoryUsage.slice(-1)).toBe(human.slice(-1))
  })

  it('a value of another type is a logged miss, not a crash', async () => {
    await raw.lpush('list', 'x')
    await raw.set('json', '1')
    const errors: string[] = []
    const c = new CacheService({ port, host: '127.0.0.1', db: DB + 1, logger: { error: (m: string) => errors.push(m), warn: () => {} } })
    expect(await c.get('list')).toBeNull()
    expect(errors.join('\n')).toMatch(/WRONGTYPE/)
    expect(await c.get('json')).toBe(1)
    await c.close()
  })
})
