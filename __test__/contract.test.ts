// `@medianest/native-cache/testing`: the contract holds for this package in
// both modes, fails for services that break it, and never flushes a database
// it did not fill; the test instances share nothing and touch no network.
import { describe, it, expect, beforeAll, afterAll, inject } from 'vitest'
import { createServer, type Server } from 'node:net'
import Redis from 'ioredis'
import { CacheService } from '../index.js'
import { describeCacheContract, createTestCache, testCacheService, testCacheModule } from '../testing/index.mjs'
import { Harness } from '../testing/contract.mjs'

const port = inject('redisPort')
const url = (db: number) => `redis://127.0.0.1:${port}/${db}`
const CONTRACT_DB = 14
const FOREIGN_DB = 15

describeCacheContract(CacheService)
describeCacheContract(CacheService, { redisUrl: url(CONTRACT_DB) })

type HarnessOptions = ConstructorParameters<typeof Harness>[1]

/** The checks (those whose name starts with `only`, or all) `Service` fails, each run as describeCacheContract runs it. */
async function failedChecks(Service: unknown, options: HarnessOptions = {}, only = '') {
  const harness = new Harness(Service as typeof CacheService, options)
  await harness.open()
  const failed: string[] = []
  try {
    for (const check of harness.checks()) {
      if (check.skipped || !check.name.startsWith(only)) continue
      harness.start()
      try {
        await check.run(harness.context())
      } catch {
        failed.push(check.name)
      } finally {
        await harness.finish()
      }
    }
  } finally {
    harness.close()
  }
  return failed
}

// Each breaks one behaviour of the original through the public methods (some
// are the original's own slips, some an easy rewrite's), with the check that
// must catch it.
type Mutant = [catches: string, Service: new (o?: object) => unknown]
/** The mutants narrow the methods' signatures; typed loosely so they can. */
const Base = CacheService as unknown as new (o?: object) => any
const mutants: Record<string, Mutant> = {
  'get answers undefined for a missing key': [
    'get answers the stored JSON parsed',
    class extends Base {
      async get<T>(key: string | number) {
        return ((await super.get(key)) ?? undefined) as T | null
      }
    },
  ],
  'set ignores its ttl': [
    'set applies ttl seconds',
    class extends Base {
      set(key: string | number, value: unknown) {
        return super.set(key, value)
      }
    },
  ],
  "set stores the original's '{}' for a value JSON.stringify throws on": [
    'a value JSON.stringify throws on',
    class extends Base {
      set(key: string | number, value: unknown, ttl?: number) {
        try {
          JSON.stringify(value)
        } catch {
          return super.set(key, {}, ttl)
        }
        return super.set(key, value, ttl)
      }
    },
  ],
  'del deletes only the first key of an array': [
    'del removes one key or an array',
    class extends Base {
      del(keys: string | number | Array<string | number>) {
        return super.del(Array.isArray(keys) ? keys.slice(0, 1) : keys)
      }
    },
  ],
  'getOrSet takes a cached falsy value for a miss': [
    'getOrSet: a cached 0',
    class extends Base {
      async getOrSet<T>(key: string | number, factory: () => T | Promise<T>, ttl?: number) {
        const cached = await this.get(key)
        if (cached) return cached
        const value = await factory()
        await this.set(key, value, ttl)
        return value
      }
    },
  ],
  'getOrSet swallows a factory rejection': [
    'getOrSet: a factory rejection',
    class extends Base {
      getOrSet<T>(key: string | number, factory: () => T | Promise<T>, ttl?: number) {
        const guarded = async () => {
          try {
            return await factory()
          } catch {
            return null as T
          }
        }
        return super.getOrSet(key, guarded, ttl)
      }
    },
  ],
  'invalidatePattern treats the pattern as a prefix': [
    'invalidatePattern deletes exactly',
    class extends Base {
      invalidatePattern(pattern: string) {
        return super.invalidatePattern(`${pattern.replace(/[*?[\]\\].*$/, '')}*`)
      }
    },
  ],
  'exists answers 1 and 0': [
    'exists answers true and false',
    class extends Base {
      async exists(key: string | number) {
        return Number(await super.exists(key)) as unknown as boolean
      }
    },
  ],
  'ttl answers milliseconds': [
    'ttl answers whole seconds left',
    class extends Base {
      async ttl(key: string | number) {
        const s = await super.ttl(key)
        return s > 0 ? s * 1000 : s
      }
    },
  ],
  "ping answers 'PONG'": [
    'ping answers true',
    class extends Base {
      async ping() {
        return ((await super.ping()) ? 'PONG' : false) as unknown as boolean
      }
    },
  ],
  'mget leaves out missing keys': [
    'mget answers one entry per key',
    class extends Base {
      async mget(keys: Array<string | number>) {
        return (await super.mget(keys)).filter((v: unknown) => v !== null)
      }
    },
  ],
  'mset ignores its ttl': [
    'mset stores every entry with the same expiry',
    class extends Base {
      mset<T>(record: Record<string, T>) {
        return super.mset(record)
      }
    },
  ],
  'getInfo answers the key count as a string': [
    'getInfo answers the number of keys',
    class extends Base {
      async getInfo() {
        const info = await super.getInfo()
        return { ...info, keyCount: String(info.keyCount) as unknown as number }
      }
    },
  ],
  'clear does nothing': [
    'clear empties the database',
    class extends Base {
      async clear() {}
    },
  ],
  'a bad key throws synchronously': [
    'a key that is not a string or a number rejects',
    class extends Base {
      get(key: string | number) {
        if (typeof key !== 'string' && typeof key !== 'number') throw new TypeError('key must be a string')
        return super.get(key)
      }
    },
  ],
  'a Redis failure rejects instead of taking its failure result': [
    'when Redis does not answer',
    class extends Base {
      async exists(key: string | number) {
        if (!(await this.ping())) throw new Error('Redis is down')
        return super.exists(key)
      }
    },
  ],
  'a fractional ttl is rounded up to whole seconds': [
    'a fractional ttl is kept to the millisecond',
    class extends Base {
      set(key: string | number, value: unknown, ttl?: number) {
        return super.set(key, value, ttl ? Math.ceil(ttl) : ttl)
      }
    },
  ],
}

describe('the contract fails a service that breaks it', () => {
  it('this package passes every check (so each failure below is the mutant’s)', async () => {
    expect(await failedChecks(CacheService)).toEqual([])
  })

  it.each(Object.keys(mutants))('%s', async (name) => {
    const [catches, Mutant] = mutants[name]
    // One check starts with `catches`: a typo would run none and fail here too.
    expect(await failedChecks(Mutant, {}, catches)).toHaveLength(1)
  })

  it('against Redis, the bytes and expiry stored: a service keeping only whole seconds fails the wire check', async () => {
    const [, WholeSeconds] = mutants['a fractional ttl is rounded up to whole seconds']
    expect(await failedChecks(WholeSeconds, { redisUrl: url(CONTRACT_DB) }, 'set stores exactly JSON.stringify(value)')).toHaveLength(1)
  })
})

describe('the contract never flushes a database it did not fill', () => {
  let raw: Redis
  beforeAll(async () => {
    raw = new Redis({ port, host: '127.0.0.1', db: FOREIGN_DB })
    await raw.set('someone:else', 'precious')
  })
  afterAll(async () => {
    await raw.del('someone:else')
    raw.disconnect()
  })

  it('refuses to start on a database that holds keys, saying why', async () => {
    await expect(new Harness(CacheService, { redisUrl: url(FOREIGN_DB) }).open()).rejects.toThrow(
      /holds 1 keys.*runs only on an empty database.*allowNonEmptyDatabase/s,
    )
    expect(await raw.get('someone:else')).toBe('precious')
  })

  it('with allowNonEmptyDatabase, runs every check but clear() and leaves the other keys alone', async () => {
    const harness = new Harness(CacheService, { redisUrl: url(FOREIGN_DB), allowNonEmptyDatabase: true })
    expect(harness.checks().filter((c) => c.skipped).map((c) => c.name)).toEqual(['clear empties the database'])
    expect(await failedChecks(CacheService, { redisUrl: url(FOREIGN_DB), allowNonEmptyDatabase: true })).toEqual([])
    expect(await raw.get('someone:else')).toBe('precious')
    expect(await raw.dbsize()).toBe(1)
  })

  it('refuses clear() when a key it did not write appears during the run', async () => {
    const harness = new Harness(CacheService, { redisUrl: url(CONTRACT_DB) })
    await harness.open()
    harness.start()
    const clears = harness.checks().find((c) => c.name === 'clear empties the database')!
    const intruder = new Redis({ port, host: '127.0.0.1', db: CONTRACT_DB })
    try {
      await intruder.set('arrived:meanwhile', '1')
      await expect(clears.run(harness.context())).rejects.toThrow(/refusing to call clear\(\): 1 keys/)
      expect(await intruder.get('arrived:meanwhile')).toBe('1')
    } finally {
      await intruder.del('arrived:meanwhile')
      intruder.disconnect()
      await harness.finish()
      harness.close()
    }
  })
})

describe('test instances', () => {
  let server: Server
  let connections = 0
  beforeAll(async () => {
    server = createServer((s) => {
      connections += 1
      s.destroy()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  })
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

  it('createTestCache: memory mode whatever the environment names, no connection made, nothing shared, clear() only its own', async () => {
    const { port: trap } = server.address() as { port: number }
    const saved = { ...process.env }
    Object.assign(process.env, { REDIS_URL: `redis://127.0.0.1:${trap}/0`, CACHE_MODE: 'redis', REDIS_DATABASE: 'not a number' })
    let a: CacheService | undefined
    let b: CacheService | undefined
    try {
      a = createTestCache()
      b = createTestCache({ defaultTtl: 60 })
    } finally {
      process.env = saved
    }
    await a.set('k', 'a')
    await b.set('k', 'b')
    expect(await a.get('k')).toBe('a')
    expect(await b.ttl('k')).toBe(60)
    await a.clear()
    expect(await a.get('k')).toBeNull()
    expect(await b.get('k')).toBe('b')
    expect(await b.ping()).toBe(true)
    expect(a.stats().mode).toBe('memory')
    await Promise.all([a.close(), b.close()])
    expect(connections).toBe(0)
    expect(() => createTestCache({ mode: 'redis' } as never)).toThrow(/'memory' mode only/)
  })

  it("testCacheModule: its CacheService builds 'memory'-mode instances whatever their options say", async () => {
    const { port: trap } = server.address() as { port: number }
    const { CacheService: TestCacheService } = testCacheModule()
    const c = new TestCacheService({ mode: 'redis', host: '127.0.0.1', port: trap })
    await c.set('k', 1)
    expect(await c.get('k')).toBe(1)
    expect(c.stats().mode).toBe('memory')
    await c.close()
    expect(connections).toBe(0)
  })

  const shared = testCacheService()
  it('testCacheService: a test writes through the stand-in…', async () => {
    expect(await shared.get('left:behind')).toBeNull()
    await shared.set('left:behind', 1)
    expect(await shared.get('left:behind')).toBe(1)
  })
  it('testCacheService: …and the next test starts from an empty instance', async () => {
    expect(await shared.get('left:behind')).toBeNull()
    expect((await shared.getInfo()).keyCount).toBe(0)
  })
  it('testCacheService: the stand-in has every async method of CacheService, the additions included', async () => {
    const names = Object.getOwnPropertyNames(CacheService.prototype).filter((n) => n !== 'constructor')
    const missing = names.filter((n) => typeof (shared as unknown as Record<string, unknown>)[n] !== 'function')
    // A synchronous report and a registration an application makes once, at startup, on the real instance.
    expect(missing.sort()).toEqual(['health', 'registerOpenTelemetry'])
    await shared.set('tagged', 1, 60, { tags: ['t'] })
    expect(await shared.invalidateTags(['t'])).toBe(1)
    expect(await shared.getOrSetMany(['a', 'b'], (missing) => Promise.resolve(Object.fromEntries(missing.map((k) => [k, k.toUpperCase()]))))).toEqual(['A', 'B'])
  })
  describe('outside a test', () => {
    let outside: Promise<unknown>
    beforeAll(() => {
      outside = shared.get('k')
      outside.catch(() => {})
    })
    it('testCacheService: a call from beforeAll rejects, saying why', async () => {
      await expect(outside).rejects.toThrow(/called outside a test/)
    })
  })
})
