// getOrSet's third argument: a number stays the ttl; an options object is
// checked, and a bad option rejects with a TypeError/RangeError naming it,
// running no factory and writing nothing.
import { describe, it, expect, inject, afterAll } from 'vitest'
import Redis from 'ioredis'
import { CacheService } from '../index.js'

const port = inject('redisPort')
const DB = 12

const cache = new CacheService({ port, host: '127.0.0.1', db: DB, logger: false })
const raw = new Redis({ port, host: '127.0.0.1', db: DB })
afterAll(async () => {
  await cache.clear()
  await cache.close()
  raw.disconnect()
})

describe('bad options reject, naming the option', () => {
  it.each([
    ['an unknown option', { tll: 60 }, TypeError, /"tll"/],
    ['ttl negative', { ttl: -1 }, RangeError, /ttl/],
    ['ttl not a number', { ttl: 'soon' }, TypeError, /ttl/],
    ['grace negative', { grace: -1 }, RangeError, /grace/],
    ['grace infinite', { grace: Infinity }, RangeError, /grace/],
    ['grace a string', { grace: '10' }, TypeError, /grace/],
    ['timeout not an object', { timeout: 100 }, TypeError, /timeout/],
    ['timeout with an unknown key', { timeout: { sft: 1 } }, TypeError, /timeout\.sft/],
    ['timeout.soft negative', { timeout: { soft: -1 } }, RangeError, /timeout\.soft/],
    ['timeout.hard NaN', { timeout: { hard: NaN } }, TypeError, /timeout\.hard/],
    ['timeout.soft above timeout.hard', { timeout: { soft: 200, hard: 100 } }, RangeError, /timeout\.soft/],
    ['eagerRefresh 0', { eagerRefresh: 0 }, RangeError, /eagerRefresh/],
    ['eagerRefresh 1', { eagerRefresh: 1 }, RangeError, /eagerRefresh/],
    ['eagerRefresh a string', { eagerRefresh: '0.5' }, TypeError, /eagerRefresh/],
    ['lock not distributed', { lock: 'local' }, TypeError, /lock/],
  ])('%s', async (_name, options, Err, message) => {
    let ran = 0
    const call = cache.getOrSet('opt', () => ((ran += 1), 'x'), options as any)
    await expect(call).rejects.toThrow(Err)
    await expect(call).rejects.toThrow(message)
    expect(ran).toBe(0)
    expect(await raw.exists('opt')).toBe(0)
  })
})

describe('good options', () => {
  it('{ ttl } is the same as the number form: same bytes, same TTL', async () => {
    await cache.getOrSet('a', () => ({ v: 1 }), 30)
    await cache.getOrSet('b', () => ({ v: 1 }), { ttl: 30 })
    expect(await raw.get('b')).toBe(await raw.get('a'))
    expect(Math.abs((await raw.pttl('a')) - (await raw.pttl('b')))).toBeLessThan(200)
  })

  it('{} uses defaultTtl, as no ttl does', async () => {
    await cache.getOrSet('d', () => 1, {})
    expect(await raw.ttl('d')).toBe(300)
  })

  it('every option at once', async () => {
    const v = await cache.getOrSet('all', () => 'v', { ttl: 5, grace: 60, timeout: { soft: 100, hard: 1000 }, eagerRefresh: 0.8 })
    expect(v).toBe('v')
    expect(await raw.get('all')).toBe('"v"')
  })
})
