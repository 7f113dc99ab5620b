// getOrSet's `eagerRefresh`: a hit past that fraction of its ttl starts one
// background refresh (shared by concurrent callers), so a hot key is rewritten
// before it expires and no caller waits for the factory.
import { describe, it, expect, inject, afterEach } from 'vitest'
import Redis from 'ioredis'
import { CacheService } from '../index.js'
import { sleep, eventually } from './helpers/redis'

const port = inject('redisPort')
const DB = 10

const open: CacheService[] = []
function instance(mode: 'redis' | 'memory', local?: false) {
  const c = new CacheService({ mode, port, host: '127.0.0.1', db: DB, logger: false, ...(local === false ? { local } : {}) })
  open.push(c)
  return c
}
afterEach(async () => {
  for (const c of open.splice(0)) {
    await c.clear()
    await c.close()
  }
})

/** A factory that counts its runs (`runs()`), takes `ms`, then resolves to `value(runs so far)`. */
function slowCounted<T>(ms: number, value: (runs: number) => T) {
  let runs = 0
  const factory = async () => {
    runs += 1
    await sleep(ms)
    return value(runs)
  }
  return Object.assign(factory, { runs: () => runs })
}

const setups = [
  ['memory', 'memory', undefined],
  ['redis with L1', 'redis', undefined],
  ['redis without L1', 'redis', false],
] as const

describe.each(setups)('%s', (_name, mode, local) => {
  it('a hit past the fraction starts exactly one refresh for many concurrent callers, which all get the cached value at once', async () => {
    const c = instance(mode, local)
    const factory = slowCounted(50, (gen) => ({ gen }))
    const opts = { ttl: 1, eagerRefresh: 0.5 }
    expect(await c.getOrSet('hot', factory, opts)).toEqual({ gen: 1 })
    // Warm the read path (Redis read, then L1) before the refresh point.
    expect(await c.getOrSet('hot', factory, opts)).toEqual({ gen: 1 })
    expect(await c.getOrSet('hot', factory, opts)).toEqual({ gen: 1 })
    expect(factory.runs()).toBe(1)
    expect(c.stats().eagerRefreshes).toBe(0)
    await sleep(600)
    const started = performance.now()
    const results = await Promise.all(Array.from({ length: 50 }, () => c.getOrSet('hot', factory, opts)))
    // Nobody waited for the 50 ms factory.
    expect(performance.now() - started).toBeLessThan(45)
    expect(results.every((r) => r.gen === 1)).toBe(true)
    expect(await eventually(async () => (await c.get<{ gen: number }>('hot'))?.gen === 2, 1000)).toBe(true)
    expect(factory.runs()).toBe(2)
    expect(c.stats().eagerRefreshes).toBe(1)
    expect(await c.ttl('hot')).toBe(1)
  })

  it('a hot key never expires under traffic: every call for 3 ttls is answered without waiting for the factory', async () => {
    const c = instance(mode, local)
    const factory = slowCounted(150, (runs) => runs)
    const opts = { ttl: 0.5, eagerRefresh: 0.5 }
    await c.getOrSet('hot', factory, opts)
    let slowest = 0
    const end = Date.now() + 1500
    while (Date.now() < end) {
      const started = performance.now()
      expect(await c.getOrSet('hot', factory, opts)).not.toBe(null)
      slowest = Math.max(slowest, performance.now() - started)
      await sleep(20)
    }
    // A miss, or a caller waiting on the refresh, would have waited 150 ms for the factory.
    expect(slowest).toBeLessThan(100)
    expect(factory.runs()).toBeGreaterThanOrEqual(3)
  })

  it('a refresh that fails is logged with ERR_CACHE_FACTORY and the current value stays', async () => {
    const warns: string[] = []
    const c = new CacheService({ mode, port, host: '127.0.0.1', db: DB, ...(local === false ? { local } : {}), logger: { error: () => {}, warn: (_m: string, meta: { code: string }) => warns.push(meta.code) } })
    open.push(c)
    const opts = { ttl: 1, eagerRefresh: 0.2 }
    await c.getOrSet('k', () => 'v1', opts)
    await c.getOrSet('k', () => 'v1', opts)
    await c.getOrSet('k', () => 'v1', opts)
    await sleep(300)
    expect(await c.getOrSet('k', () => Promise.reject(new Error('down')), opts)).toBe('v1')
    expect(await eventually(() => warns.includes('ERR_CACHE_FACTORY'), 1000)).toBe(true)
    expect(await c.get('k')).toBe('v1')
  })

  it('a hit before the fraction refreshes nothing', async () => {
    const c = instance(mode, local)
    let runs = 0
    await c.getOrSet('k', () => ++runs, { ttl: 10, eagerRefresh: 0.5 })
    for (let i = 0; i < 5; i++) await c.getOrSet('k', () => ++runs, { ttl: 10, eagerRefresh: 0.5 })
    await sleep(50)
    expect(runs).toBe(1)
    expect(c.stats().eagerRefreshes).toBe(0)
  })
})

it('redis: the refresh rewrites the main key with the original bytes and a fresh TTL', async () => {
  const c = instance('redis')
  const raw = new Redis({ port, host: '127.0.0.1', db: DB })
  try {
    let gen = 0
    const opts = { ttl: 2, eagerRefresh: 0.25 }
    await c.getOrSet('k', () => ({ gen: ++gen }), opts)
    await c.getOrSet('k', () => ({ gen: ++gen }), opts)
    await sleep(600)
    await c.getOrSet('k', () => ({ gen: ++gen }), opts)
    expect(await eventually(async () => (await raw.get('k')) === JSON.stringify({ gen: 2 }), 1000)).toBe(true)
    expect(await raw.pttl('k')).toBeGreaterThan(1500)
  } finally {
    raw.disconnect()
  }
})
