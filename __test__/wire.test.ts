// What lands in Redis is exactly JSON.stringify(value) as UTF-8 with a TTL, and
// what an old TypeScript instance (or anyone) wrote reads back as JSON.parse would.
import { describe, it, expect, beforeAll, afterAll, inject } from 'vitest'
import Redis from 'ioredis'
import { CacheService } from '../index.js'
import { nestedArrays } from './helpers/values'

const port = inject('redisPort')
const DB = 4

const deep = nestedArrays(200)

const values: Record<string, unknown> = {
  record: { id: 'svc-1', status: 'up', uptime: 99.95, checkedAt: new Date(0), checks: [{ ok: true }] },
  keyOrder: { z: 1, a: 2, 10: 'numeric keys first', b: 3 },
  numbers: [0, -0, 1e21, 1e-7, 0.1 + 0.2, -1.5, Number.MAX_SAFE_INTEGER, Number.NaN, Infinity],
  escapes: 'quote " backslash \\ newline \n tab \t nul \u0000 line-sep \u2028 para-sep \u2029',
  unicode: 'héllo wörld — 日本語 — 🎬🍿',
  loneSurrogates: 'a\ud800b\udfffc',
  protoKey: JSON.parse('{"__proto__": {"polluted": true}, "x": 1}'),
  emptyThings: ['', {}, [], null, false, 0],
  toJSON: { toJSON: () => ({ custom: true }) },
  deep,
}

describe('wire format', () => {
  let cache: CacheService
  let raw: Redis
  beforeAll(async () => {
    cache = new CacheService({ port, host: '127.0.0.1', db: DB })
    raw = new Redis({ port, host: '127.0.0.1', db: DB })
    await raw.flushdb()
  })
  afterAll(async () => {
    await cache.close()
    raw.disconnect()
  })

  it.each(Object.keys(values))('set stores JSON.stringify(%s) byte for byte with the TTL in ms', async (name) => {
    await cache.set(`w:${name}`, values[name], 42.5)
    const stored = await raw.getBuffer(`w:${name}`)
    expect(stored).toEqual(Buffer.from(JSON.stringify(values[name]), 'utf8'))
    const pttl = await raw.pttl(`w:${name}`)
    expect(pttl).toBeGreaterThan(41_000)
    expect(pttl).toBeLessThanOrEqual(42_500)
  })

  it('mset stores the same bytes as set', async () => {
    await cache.mset({ 'm:a': values.unicode, 'm:b': values.numbers })
    expect(await raw.get('m:a')).toBe(JSON.stringify(values.unicode))
    expect(await raw.get('m:b')).toBe(JSON.stringify(values.numbers))
  })

  it.each(Object.keys(values))('JSON written by another client reads back as JSON.parse yields (%s)', async (name) => {
    const text = JSON.stringify(values[name])
    await raw.set(`r:${name}`, text)
    const fresh = new CacheService({ port, host: '127.0.0.1', db: DB })
    expect(await fresh.get(`r:${name}`)).toStrictEqual(JSON.parse(text))
    expect(await fresh.mget([`r:${name}`])).toStrictEqual([JSON.parse(text)])
    await fresh.close()
  })

  it('__proto__ stays an own key, and the last duplicate key wins', async () => {
    await raw.set('dup', '{"a":1,"a":2,"__proto__":{"p":1}}')
    const v = (await cache.get('dup')) as Record<string, unknown>
    expect(v.a).toBe(2)
    expect(Object.prototype.hasOwnProperty.call(v, '__proto__')).toBe(true)
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype)
  })

  it('invalid UTF-8 reads as U+FFFD, as ioredis does', async () => {
    const bytes = Buffer.from([0x22, 0x61, 0xff, 0x62, 0xc3, 0x22]) // "a\xffb\xc3"
    await raw.set('badutf8', bytes)
    const viaIoredis = JSON.parse((await raw.getBuffer('badutf8'))!.toString('utf8'))
    expect(await cache.get('badutf8')).toBe(viaIoredis)
    expect(viaIoredis).toBe('a\ufffdb\ufffd')
  })

  it('values of tens of MB round-trip', async () => {
    const big = { blob: 'x'.repeat(20 * 1024 * 1024), n: 1 }
    await cache.set('big', big)
    expect((await raw.strlen('big'))).toBe(JSON.stringify(big).length)
    const fresh = new CacheService({ port, host: '127.0.0.1', db: DB })
    const back = (await fresh.get('big')) as typeof big
    expect(back.blob.length).toBe(big.blob.length)
    expect(back.n).toBe(1)
    await fresh.close()
  })

  it('an original-style writer and this cache share entries in both directions', async () => {
    // What the TypeScript original does: SETEX key ttl JSON.stringify(value).
    await raw.setex('shared:old', 300, JSON.stringify({ from: 'ts' }))
    expect(await cache.get('shared:old')).toEqual({ from: 'ts' })
    await cache.set('shared:new', { from: 'native' }, 300)
    expect(JSON.parse((await raw.get('shared:new'))!)).toEqual({ from: 'native' })
    expect(await raw.ttl('shared:new')).toBe(300)
  })
})
