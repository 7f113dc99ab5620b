// getOrSet's fail-safe (`grace`): the last value read or written through
// getOrSet answers when the factory fails or Redis cannot be read; it survives
// invalidation by any writer, and it never answers over a value Redis holds.
// A private redis-server: these tests kill and pause it.
import { describe, it, expect, afterEach } from 'vitest'
import { tracingChannel } from 'node:diagnostics_channel'
import { CacheService } from '../index.js'
import { sleep } from './helpers/redis'
import { ownRedis, closedAfterEach } from './helpers/own-redis'

const TIMEOUT = 300
const MARGIN = 400

const redis = ownRedis()

type Warn = { message: string; meta: { code?: string; reason?: string; key?: string } }
// The server back up and empty after each test; registered first, so it runs after
// the instances are closed (vitest runs after-hooks last-registered first).
afterEach(async () => {
  redis.server.signal('SIGCONT')
  await redis.server.start()
  await redis.raw.flushall().catch(() => {})
})
const instance = closedAfterEach((mode: 'redis' | 'memory', opts: ConstructorParameters<typeof CacheService>[0] = {}) => {
  const warns: Warn[] = []
  const logger = { error: () => {}, warn: (message: string, meta: Warn['meta']) => warns.push({ message, meta }) }
  const c = new CacheService({ mode, url: redis.server.url, commandTimeoutMs: TIMEOUT, logger, ...opts })
  return { c, warns }
})

const failing = (err: unknown) => () => Promise.reject(err)

describe.each(['redis', 'memory'] as const)('%s mode', (mode) => {
  it('a factory rejection after the value expired answers the last value, warns with ERR_CACHE_FAILSAFE and counts it', async () => {
    const { c, warns } = instance(mode)
    expect(await c.getOrSet('status', () => ({ up: true }), { ttl: 0.2, grace: 60 })).toEqual({ up: true })
    await sleep(300)
    const err = new Error('upstream down')
    expect(await c.getOrSet('status', failing(err), { ttl: 0.2, grace: 60 })).toEqual({ up: true })
    expect(warns.map((w) => w.meta.code)).toEqual(['ERR_CACHE_FAILSAFE'])
    expect(warns[0].meta.reason).toBe('factory-error')
    expect(c.stats().failsafe).toBe(1)
    // Nothing was stored: the key is still missing, so the next success writes.
    expect(await c.get('status')).toBe(null)
  })

  it('without grace (or with a number ttl) the same rejection reaches the caller', async () => {
    const { c } = instance(mode)
    await c.getOrSet('status', () => ({ up: true }), { ttl: 0.2 })
    await c.getOrSet('other', () => ({ up: true }), 0.2)
    await sleep(300)
    const err = new Error('upstream down')
    await expect(c.getOrSet('status', failing(err), { ttl: 0.2 })).rejects.toBe(err)
    await expect(c.getOrSet('other', failing(err), 0.2)).rejects.toBe(err)
    expect(c.stats().failsafe).toBe(0)
  })

  it('the copy is gone after ttl + grace', async () => {
    const { c } = instance(mode)
    await c.getOrSet('status', () => 'old', { ttl: 0.1, grace: 0.2 })
    await sleep(400)
    const err = new Error('down')
    await expect(c.getOrSet('status', failing(err), { ttl: 0.1, grace: 0.2 })).rejects.toBe(err)
  })

  it('a value read (not written) through getOrSet becomes the copy too', async () => {
    const { c } = instance(mode)
    await c.set('k', 'written by set', 0.2)
    expect(await c.getOrSet('k', () => 'never', { ttl: 0.2, grace: 60 })).toBe('written by set')
    await sleep(300)
    expect(await c.getOrSet('k', failing(new Error('x')), { ttl: 0.2, grace: 60 })).toBe('written by set')
  })

  it("this instance's del and clear leave the copy (stale, still a fail-safe answer)", async () => {
    const { c } = instance(mode)
    await c.getOrSet('k', () => 'old', { ttl: 60, grace: 60 })
    await c.del('k')
    expect(await c.getOrSet('k', failing(new Error('x')), { ttl: 60, grace: 60 })).toBe('old')
    await c.clear()
    expect(await c.getOrSet('k', failing(new Error('x')), { ttl: 60, grace: 60 })).toBe('old')
  })

  it('copies stay within the byte bound (local.maxBytes)', async () => {
    const { c } = instance(mode, { local: { maxBytes: 64 * 1024, maxTtl: 60 } })
    const value = { pad: 'x'.repeat(1000) }
    for (let i = 0; i < 300; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => c.getOrSet(`big:${i + j}`, () => value, { ttl: 60, grace: 60 })))
    }
    const s = c.stats()
    expect(s.grace.entries).toBeGreaterThan(0)
    expect(s.grace.bytes).toBeLessThanOrEqual(64 * 1024)
    expect(s.grace.maxBytes).toBe(64 * 1024)
  })
})

describe('redis mode: never over a value Redis holds; invalidation keeps the copy', () => {
  it('another writer changed the key: the new value answers, not the copy, and the factory does not run', async () => {
    const { c } = instance('redis')
    await c.getOrSet('k', () => 'old', { ttl: 60, grace: 60 })
    expect(await c.get('k')).toBe('old') // cached in L1
    await redis.raw.set('k', JSON.stringify('new'))
    let ran = 0
    const factory = () => ((ran += 1), Promise.reject(new Error('down')))
    // Until the invalidation lands L1 may answer 'old' (as any read may); then 'new' only.
    await sleep(50)
    expect(await c.getOrSet('k', factory, { ttl: 60, grace: 60 })).toBe('new')
    expect(ran).toBe(0)
  })

  it('another writer deleted the key: the invalidation does not drop the copy', async () => {
    const { c } = instance('redis')
    await c.getOrSet('k', () => 'old', { ttl: 60, grace: 60 })
    expect(await c.get('k')).toBe('old')
    await redis.raw.del('k')
    await sleep(50)
    expect(await c.getOrSet('k', failing(new Error('down')), { ttl: 60, grace: 60 })).toBe('old')
  })

  it('Redis killed: the copy answers within the bound and the factory does not run', async () => {
    const { c, warns } = instance('redis')
    await c.getOrSet('k', () => 'last known', { ttl: 60, grace: 60 })
    redis.server.signal('SIGKILL')
    await sleep(50)
    let ran = 0
    const started = performance.now()
    expect(await c.getOrSet('k', () => ((ran += 1), 'fresh'), { ttl: 60, grace: 60 })).toBe('last known')
    expect(performance.now() - started).toBeLessThan(TIMEOUT + MARGIN)
    expect(ran).toBe(0)
    expect(warns.find((w) => w.meta.code === 'ERR_CACHE_FAILSAFE')?.meta.reason).toBe('redis-unavailable')
    expect(c.stats().failsafe).toBe(1)
    // A caller without grace runs its factory, as before.
    expect(await c.getOrSet('k', () => 'fresh', 60)).toBe('fresh')
  })

  it('Redis killed: a caller without grace that joined the fail-safe run is traced by the run it made itself', async () => {
    const { c } = instance('redis')
    await c.getOrSet('k', () => 'last known', { ttl: 60, grace: 60 })
    redis.server.signal('SIGKILL')
    await sleep(50)
    const seen: Array<[unknown, unknown]> = []
    const handlers = {
      start() {},
      end() {},
      asyncStart() {},
      error() {},
      asyncEnd: (message: object) => {
        const ctx = message as { outcome?: string; code?: string }
        seen.push([ctx.outcome, ctx.code])
      },
    }
    const channel = tracingChannel('native-cache:operation')
    channel.subscribe(handlers)
    try {
      const withGrace = c.getOrSet('k', () => 'fresh', { ttl: 60, grace: 60 })
      const without = c.getOrSet('k', () => 'mine', 60)
      expect(await withGrace).toBe('last known')
      expect(await without).toBe('mine')
    } finally {
      channel.unsubscribe(handlers)
    }
    expect(seen).toEqual([
      ['error', 'ERR_CACHE_FAILSAFE'],
      ['miss', undefined],
    ])
  })

  it('Redis killed mid-call (in the same tick as the call): the copy answers within the bound', async () => {
    const { c } = instance('redis')
    await c.getOrSet('k', () => 'last known', { ttl: 60, grace: 60 })
    let ran = 0
    const started = performance.now()
    const call = c.getOrSet('k', () => ((ran += 1), 'fresh'), { ttl: 60, grace: 60 })
    redis.server.signal('SIGKILL')
    expect(await call).toBe('last known')
    expect(performance.now() - started).toBeLessThan(TIMEOUT + MARGIN)
    expect(ran).toBe(0)
  })

  it('Redis killed: a caller without grace joining a run answered from the copy runs its own factory', async () => {
    const { c } = instance('redis')
    await c.getOrSet('k', () => 'last known', { ttl: 60, grace: 60 })
    redis.server.signal('SIGKILL')
    await sleep(50)
    const [withGrace, plain, noGrace] = await Promise.all([
      c.getOrSet('k', () => 'fresh', { ttl: 60, grace: 60 }),
      c.getOrSet('k', () => 'fresh', 60),
      c.getOrSet('k', () => 'fresh', { ttl: 60 }),
    ])
    expect([withGrace, plain, noGrace]).toEqual(['last known', 'fresh', 'fresh'])
  })

  it('Redis hung mid-call (SIGSTOP): the read times out at commandTimeoutMs and the copy answers', async () => {
    const { c, warns } = instance('redis')
    await c.getOrSet('k', () => 'last known', { ttl: 60, grace: 60 })
    redis.server.signal('SIGSTOP')
    const started = performance.now()
    expect(await c.getOrSet('k', () => 'fresh', { ttl: 60, grace: 60 })).toBe('last known')
    expect(performance.now() - started).toBeLessThan(TIMEOUT + MARGIN)
    expect(warns.find((w) => w.meta.code === 'ERR_CACHE_FAILSAFE')?.meta.reason).toBe('redis-unavailable')
  })

  it('Redis killed by the factory, which then fails: the copy answers', async () => {
    const { c } = instance('redis')
    await c.getOrSet('k', () => 'last known', { ttl: 0.2, grace: 60 })
    await sleep(300)
    const factory = async () => {
      redis.server.signal('SIGKILL')
      throw new Error('upstream down too')
    }
    expect(await c.getOrSet('k', factory, { ttl: 0.2, grace: 60 })).toBe('last known')
  })

  it('the main key holds exactly JSON.stringify(value) with the ttl; nothing else is written', async () => {
    const { c } = instance('redis')
    const value = { id: 1, name: 'plex', when: '2026-11-25' }
    await c.getOrSet('k', () => value, { ttl: 30, grace: 600 })
    expect(await redis.raw.get('k')).toBe(JSON.stringify(value))
    const pttl = await redis.raw.pttl('k')
    expect(pttl).toBeGreaterThan(29_000)
    expect(pttl).toBeLessThanOrEqual(30_000)
    expect(await redis.raw.dbsize()).toBe(1)
  })
})
