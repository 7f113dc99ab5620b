// SPEC.md's input rules: each bad argument gets a clear rejected promise (never
// a synchronous throw), the instance stays usable, and no other key changes.
import { describe, it, expect, beforeAll, afterAll, beforeEach, inject } from 'vitest'
import Redis from 'ioredis'
import { CacheService } from '../index.js'
import { nestedArrays } from './helpers/values'

const port = inject('redisPort')
const DB = 5

const badKeys: Array<[string, unknown]> = [
  ['undefined', undefined],
  ['null', null],
  ['an object', { a: 1 }],
  ['an array', ['a']],
  ['a symbol', Symbol('k')],
  ['an object without a prototype', Object.create(null)],
  ['a boolean', true],
  ['a bigint', 10n],
  ['a function', () => 'k'],
]

describe.each(['redis', 'memory'] as const)('%s mode: bad input', (mode) => {
  let cache: CacheService
  let raw: Redis
  const warnings: unknown[] = []
  const logger = { error: () => {}, warn: (...a: unknown[]) => warnings.push(a), info: () => {}, debug: () => {} }

  beforeAll(() => {
    cache = new CacheService({ mode, port, host: '127.0.0.1', db: DB, logger })
    raw = new Redis({ port, host: '127.0.0.1', db: DB })
  })
  afterAll(async () => {
    await cache.close()
    raw.disconnect()
  })
  beforeEach(async () => {
    await cache.clear()
    await cache.set('sentinel', { untouched: true }, 1000)
    warnings.length = 0
  })

  async function sentinelIntact() {
    expect(await cache.get('sentinel')).toEqual({ untouched: true })
    const t = await cache.ttl('sentinel')
    expect(t).toBeGreaterThan(990)
  }

  const keyed: Array<[string, (c: CacheService, k: any) => Promise<unknown>]> = [
    ['get', (c, k) => c.get(k)],
    ['set', (c, k) => c.set(k, 1)],
    ['del', (c, k) => c.del(k)],
    ['getOrSet', (c, k) => c.getOrSet(k, () => 1)],
    ['exists', (c, k) => c.exists(k)],
    ['ttl', (c, k) => c.ttl(k)],
    ['del([k])', (c, k) => c.del([k])],
    ['mget([k])', (c, k) => c.mget([k])],
  ]

  for (const [method, call] of keyed) {
    // del takes an array of keys itself; del([bad]) covers arrays as keys.
    const cases = method === 'del' ? badKeys.filter(([n]) => n !== 'an array') : badKeys
    it.each(cases)(`${method} rejects a key that is %s with a TypeError naming it`, async (_name, key) => {
      let p: Promise<unknown> | undefined
      expect(() => {
        p = call(cache, key)
      }).not.toThrow()
      await expect(p).rejects.toThrow(TypeError)
      await expect(call(cache, key)).rejects.toThrow(/key/)
      await sentinelIntact()
    })
  }

  it('mget and del reject a non-array, non-key argument', async () => {
    await expect(cache.mget('a' as any)).rejects.toThrow(/keys must be an array/)
    await expect(cache.del({} as any)).rejects.toThrow(TypeError)
    await sentinelIntact()
  })

  it('empty and 1 MB keys work', async () => {
    const long = 'k'.repeat(1024 * 1024)
    await cache.set('', 'empty key')
    await cache.set(long, 'long key')
    expect(await cache.get('')).toBe('empty key')
    expect(await cache.get(long)).toBe('long key')
    await sentinelIntact()
  })

  it.each([
    ['undefined', undefined],
    ['null', null],
    ['0', 0],
    ['NaN', Number.NaN],
    ['empty string', ''],
  ])('a falsy ttl (%s) means defaultTtl', async (_n, ttl) => {
    await cache.set('t', 1, ttl as any)
    expect(await cache.ttl('t')).toBe(300)
  })

  it("a numeric string ttl such as '60' counts as that number; 1.5 is kept to the ms", async () => {
    await cache.set('t60', 1, '60' as any)
    expect(await cache.ttl('t60')).toBe(60)
    await cache.set('t15', 1, 1.5)
    if (mode === 'redis') {
      const pttl = await raw.pttl('t15')
      expect(pttl).toBeGreaterThan(1400)
      expect(pttl).toBeLessThanOrEqual(1500)
    } else {
      // Redis rounds what is left to the nearest second: 2 at exactly 1.5 s, 1 a millisecond later.
      expect([1, 2]).toContain(await cache.ttl('t15'))
    }
  })

  it.each([
    ['-5', -5, RangeError],
    ['Infinity', Infinity, RangeError],
    ['-Infinity', -Infinity, RangeError],
    ["'-5'", '-5', RangeError],
    ["'abc'", 'abc', TypeError],
    ['an object', { s: 60 }, TypeError],
    ['true', true, TypeError],
    ['a symbol', Symbol('t'), TypeError],
  ])('a ttl of %s rejects, writes nothing, and the key keeps its value and TTL', async (_n, ttl, Err) => {
    await cache.set('keep', 'old', 500)
    await expect(cache.set('keep', 'new', ttl as any)).rejects.toThrow(Err)
    await expect(cache.mset({ keep: 'new' }, ttl as any)).rejects.toThrow(Err)
    await expect(cache.getOrSet('fresh', () => 'x', ttl as any)).rejects.toThrow(Err)
    expect(await cache.get('keep')).toBe('old')
    expect(await cache.ttl('keep')).toBeGreaterThan(490)
    expect(await cache.exists('fresh')).toBe(false)
    await sentinelIntact()
  })

  it.each([
    ['undefined', undefined],
    ['a function', () => 1],
    ['a symbol', Symbol('v')],
    ['a toJSON returning undefined', { toJSON: () => undefined }],
  ])('a value with no JSON (%s) deletes the key, so get answers null', async (_n, value) => {
    await cache.set('v', 'old')
    await cache.set('v', value)
    expect(await cache.get('v')).toBeNull()
    await cache.set('mv', 'old')
    await cache.mset({ mv: value, other: 1 })
    expect(await cache.get('mv')).toBeNull()
    expect(await cache.get('other')).toBe(1)
    await sentinelIntact()
  })

  const cycle: Record<string, unknown> = { a: 1 }
  cycle.self = cycle
  const deep = nestedArrays(1e6)

  it.each([
    ['a BigInt', { n: 10n }],
    ['a cycle', cycle],
    ['nesting too deep for the stack', deep],
    ['a throwing toJSON', { toJSON: () => { throw new Error('nope') } }],
    ['a throwing getter', Object.defineProperty({}, 'x', { enumerable: true, get: () => { throw new Error('getter') } })],
  ])('a value JSON.stringify throws on (%s) stores nothing, warns, resolves', async (_n, value) => {
    await cache.set('v', 'old', 500)
    await expect(cache.set('v', value)).resolves.toBeUndefined()
    expect(await cache.get('v')).toBe('old')
    expect(await cache.ttl('v')).toBeGreaterThan(490)
    expect(warnings.length).toBeGreaterThan(0)
    await cache.mset({ v: value, ok: 1 })
    expect(await cache.get('v')).toBe('old')
    expect(await cache.get('ok')).toBe(1)
    await sentinelIntact()
  })

  it('values of 20 MB work', async () => {
    const big = 'y'.repeat(20 * 1024 * 1024)
    await cache.set('big', big)
    expect(((await cache.get('big')) as string).length).toBe(big.length)
    await sentinelIntact()
  })

  it('mset rejects a record that is not an object', async () => {
    for (const bad of [null, undefined, 'str', 5]) {
      await expect(cache.mset(bad as any)).rejects.toThrow(TypeError)
    }
    await sentinelIntact()
  })

  it('invalidatePattern rejects a non-string pattern', async () => {
    await expect(cache.invalidatePattern(undefined as any)).rejects.toThrow(/pattern/)
    await expect(cache.invalidatePattern({} as any)).rejects.toThrow(TypeError)
    await sentinelIntact()
  })
})

describe('bad options throw a TypeError at construction', () => {
  it.each([
    ['a number as options', 5],
    ['a url that does not parse', { url: 'not a url' }],
    ['a url of another scheme', { url: 'http://localhost:7000' }],
    ['a negative local.maxBytes', { local: { maxBytes: -1 } }],
    ['a fractional local.maxBytes', { local: { maxBytes: 1.5 } }],
    ['a zero local.maxTtl', { local: { maxTtl: 0 } }],
    ['local of the wrong type', { local: 'yes' }],
    ['an unknown mode', { mode: 'disk' }],
    ['a negative defaultTtl', { defaultTtl: -1 }],
    ['a zero commandTimeoutMs', { commandTimeoutMs: 0 }],
    ['a port out of range', { port: 70000 }],
    ['a port that is not a number', { port: 'abc' }],
    ['a db that is negative', { db: -1 }],
    ['a host that is not a string', { host: 42 }],
    ['a logger that is a string', { logger: 'console' }],
    // Past these, the native clock arithmetic would overflow (the process aborted).
    ['a local.maxTtl past ten years', { local: { maxTtl: 1e19 } }],
    ['a commandTimeoutMs past 2^31 - 1', { commandTimeoutMs: 3e18 }],
    ['a defaultTtl past Number.MAX_SAFE_INTEGER ms', { defaultTtl: 1e19 }],
  ])('%s', (_n, options) => {
    expect(() => new CacheService(options as any)).toThrow(TypeError)
  })

  it('a small local.maxBytes serves many distinct keys (its doorkeeper is whole words)', async () => {
    for (const maxBytes of [20, 100, 1000]) {
      const c = new CacheService({ port, host: '127.0.0.1', db: DB, local: { maxBytes }, logger: false })
      for (let i = 0; i < 3000; i += 100) await Promise.all(Array.from({ length: 100 }, (_, j) => c.get(`small:${i + j}`)))
      expect(await c.ping()).toBe(true)
      await c.close()
    }
  })

  it('names the option in the message', () => {
    expect(() => new CacheService({ local: { maxBytes: -1 } })).toThrow(/local\.maxBytes/)
    expect(() => new CacheService({ url: 'nope' })).toThrow(/url/)
  })

  it('an unreachable Redis is not an error at construction', async () => {
    const c = new CacheService({ url: 'redis://127.0.0.1:1', commandTimeoutMs: 200, logger: false })
    expect(await c.get('x')).toBeNull()
    await c.close()
  })
})
