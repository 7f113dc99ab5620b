// The behaviour of the original CacheService's twelve methods (SPEC.md's
// method table and "Inputs") as checks, each a name and a `run(ctx)` against
// any instance (ctx: see Harness#context in contract.mjs). Plain data, so the
// package's own tests can run them against deliberately broken services.
import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { expect } from 'vitest'

/** The original's default expiry, in seconds, when a call's ttl is falsy. */
const DEFAULT_TTL = 300
/** `used_memory_human`'s format (Redis' bytesToHuman): "1023B", "1.05M". */
const HUMAN_BYTES = /^\d+(\.\d+)?[BKMGTP]$/

const deep = []
for (let cur = deep, i = 0; i < 200; i++) cur.push((cur = []))

/** Values whose stored text is JSON.stringify's, read back as JSON.parse's. */
const VALUES = {
  record: { id: 'svc-1', status: 'up', uptime: 99.95, checkedAt: new Date(0), checks: [{ ok: true, skipped: undefined }] },
  keyOrder: { z: 1, a: 2, 10: 'numeric keys first', b: 3 },
  numbers: [0, -0, 1e21, 1e-7, 0.1 + 0.2, -1.5, Number.MAX_SAFE_INTEGER, Number.NaN, Infinity],
  escapes: 'quote " backslash \\ newline \n tab \t nul \u0000 line-sep \u2028 para-sep \u2029',
  unicode: 'héllo wörld — 日本語 — 🎬🍿',
  protoKey: JSON.parse('{"__proto__": {"polluted": true}, "x": 1}'),
  toJSON: { toJSON: () => ({ custom: true }) },
  falsyInside: ['', {}, [], null, false, 0],
  deep,
}

/** What a reader gets back for `value`: JSON.parse(JSON.stringify(value)), compared as text so key order counts. */
const roundTrip = (value) => JSON.stringify(JSON.parse(JSON.stringify(value)))

async function expectTtl(ctx, key, seconds) {
  const left = await ctx.cache.ttl(key)
  expect(left, `ttl(${key})`).toBeGreaterThanOrEqual(seconds - 2)
  expect(left, `ttl(${key})`).toBeLessThanOrEqual(seconds)
  if (ctx.raw) {
    const ms = await ctx.raw.pttl(key)
    expect(ms, `PTTL ${key}`).toBeGreaterThan((seconds - 2) * 1000)
    expect(ms, `PTTL ${key}`).toBeLessThanOrEqual(seconds * 1000)
  }
}

/** The call neither throws synchronously nor resolves: it rejects with `type` and a message matching `message`. */
async function expectRejection(call, type, message) {
  let promise
  expect(() => {
    promise = call()
  }, 'argument errors are rejected promises, never synchronous throws').not.toThrow()
  await expect(promise).rejects.toThrow(type)
  if (message) await expect(promise).rejects.toThrow(message)
}

/** A loopback server that accepts connections and never answers: every command times out. */
async function blackHole() {
  const sockets = new Set()
  const server = createServer((s) => {
    sockets.add(s)
    s.on('error', () => {})
    s.on('close', () => sockets.delete(s))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: server.address().port,
    close: () => {
      for (const s of sockets) s.destroy()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}

/**
 * Each check: `name`, `run(ctx)`, and `only: 'redis' | 'memory'` when it is
 * observable in one mode alone. `ctx`: `{ cache, key(name), raw, mode, create(options) }`;
 * `raw` is an ioredis client on the same database in 'redis' mode, else null.
 */
export const checks = [
  // get
  {
    name: 'get answers the stored JSON parsed, and null for a missing key',
    async run({ cache, key }) {
      const value = { id: 1, name: 'Ann', tags: ['a'], nested: { ok: true } }
      await cache.set(key('user'), value)
      expect(await cache.get(key('user'))).toEqual(value)
      expect(await cache.get(key('missing'))).toBeNull()
    },
  },
  {
    name: 'what get answers is JSON.parse(JSON.stringify(value)): dates as strings, undefined dropped, key order kept',
    async run({ cache, key }) {
      for (const [name, value] of Object.entries(VALUES)) {
        await cache.set(key(name), value)
        expect(JSON.stringify(await cache.get(key(name))), name).toBe(roundTrip(value))
      }
      const proto = await cache.get(key('protoKey'))
      expect(Object.prototype.hasOwnProperty.call(proto, '__proto__'), '__proto__ is an own key, as JSON.parse makes it').toBe(true)
      expect({}.polluted).toBeUndefined()
    },
  },
  {
    name: 'every get answers a fresh value: mutating one result changes no other result and nothing cached',
    async run({ cache, key }) {
      await cache.set(key('obj'), { list: [1], n: 1 })
      const first = await cache.get(key('obj'))
      first.list.push(2)
      first.n = 2
      expect(await cache.get(key('obj'))).toEqual({ list: [1], n: 1 })
      const [a, b] = await cache.mget([key('obj'), key('obj')])
      a.n = 3
      expect(b.n).toBe(1)
    },
  },
  {
    name: 'get answers null for an empty string and for text that is not JSON, and JSON.parse of what another client wrote',
    only: 'redis',
    async run({ cache, key, raw }) {
      await raw.set(key('empty'), '')
      await raw.set(key('notjson'), '{oops')
      await raw.set(key('theirs'), '{"b":1,"a":[true,null,"x"]}', 'EX', 60)
      expect(await cache.get(key('empty'))).toBeNull()
      expect(await cache.get(key('notjson'))).toBeNull()
      expect(JSON.stringify(await cache.get(key('theirs')))).toBe('{"b":1,"a":[true,null,"x"]}')
      expect(await cache.mget([key('empty'), key('notjson'), key('theirs')])).toEqual([null, null, { b: 1, a: [true, null, 'x'] }])
    },
  },
  // set
  {
    name: 'set keeps JSON scalars and falsy values; a stored null reads as null',
    async run({ cache, key }) {
      for (const [name, value] of [['zero', 0], ['false', false], ['empty', ''], ['array', []], ['string', 'x'], ['number', 1.5], ['null', null]]) {
        await cache.set(key(name), value)
        expect(await cache.get(key(name)), name).toEqual(value)
      }
    },
  },
  {
    name: 'set stores exactly JSON.stringify(value) as UTF-8, with the expiry in milliseconds',
    only: 'redis',
    async run({ cache, key, raw }) {
      for (const [name, value] of Object.entries(VALUES)) {
        await cache.set(key(name), value, 42.5)
        expect(await raw.getBuffer(key(name)), name).toEqual(Buffer.from(JSON.stringify(value), 'utf8'))
        const ms = await raw.pttl(key(name))
        expect(ms, `${name}: PTTL`).toBeGreaterThan(40_000)
        expect(ms, `${name}: PTTL`).toBeLessThanOrEqual(42_500)
      }
    },
  },
  {
    name: 'set applies ttl seconds; a falsy ttl (undefined, null, 0, NaN) means the default of 300 s; a numeric string counts as its number',
    async run(ctx) {
      const { cache, key } = ctx
      await cache.set(key('short'), 1, 10)
      await expectTtl(ctx, key('short'), 10)
      for (const [i, falsy] of [undefined, null, 0, Number.NaN].entries()) {
        await cache.set(key(`default${i}`), 1, falsy)
        await expectTtl(ctx, key(`default${i}`), DEFAULT_TTL)
      }
      await cache.set(key('string'), 1, '60')
      await expectTtl(ctx, key('string'), 60)
    },
  },
  {
    name: 'a fractional ttl is kept to the millisecond',
    async run({ cache, key }) {
      await cache.set(key('frac'), 1, 0.2)
      expect(await cache.get(key('frac'))).toBe(1)
      await sleep(350)
      expect(await cache.get(key('frac'))).toBeNull()
      expect(await cache.exists(key('frac'))).toBe(false)
    },
  },
  {
    name: 'a value JSON.stringify turns into undefined (undefined, a function, a symbol) deletes the key',
    async run({ cache, key }) {
      for (const [i, value] of [undefined, () => 1, Symbol('s'), { toJSON: () => undefined }].entries()) {
        await cache.set(key(`u${i}`), 'before')
        await expect(cache.set(key(`u${i}`), value)).resolves.toBeUndefined()
        expect(await cache.get(key(`u${i}`))).toBeNull()
      }
    },
  },
  {
    name: 'a value JSON.stringify throws on (BigInt, a cycle, a throwing toJSON) stores nothing and resolves; the key keeps its value and ttl',
    async run(ctx) {
      const { cache, key } = ctx
      const cycle = { name: 'c' }
      cycle.self = cycle
      const throwing = {
        toJSON() {
          throw new Error('no')
        },
      }
      for (const [i, value] of [10n, cycle, throwing].entries()) {
        await cache.set(key(`t${i}`), 'kept', 100)
        const logged = ctx.logs?.length
        await expect(cache.set(key(`t${i}`), value, 5)).resolves.toBeUndefined()
        expect(await cache.get(key(`t${i}`))).toBe('kept')
        await expectTtl(ctx, key(`t${i}`), 100)
        if (ctx.logs) expect(ctx.logs.length, 'a warning through the logger').toBeGreaterThan(logged)
      }
      await expect(cache.mset({ [key('m1')]: 1, [key('m2')]: 5n })).resolves.toBeUndefined()
    },
  },
  {
    name: 'a negative, infinite or non-numeric ttl rejects (RangeError/TypeError) and writes nothing',
    async run(ctx) {
      const { cache, key } = ctx
      await cache.set(key('k'), 'kept', 100)
      await expectRejection(() => cache.set(key('k'), 'new', -1), RangeError, /ttl/)
      await expectRejection(() => cache.set(key('k'), 'new', Infinity), RangeError, /ttl/)
      await expectRejection(() => cache.set(key('k'), 'new', 'soon'), TypeError, /ttl/)
      await expectRejection(() => cache.mset({ [key('k')]: 'new' }, -5), RangeError, /ttl/)
      await expectRejection(() => cache.getOrSet(key('g'), () => 'new', -5), RangeError, /ttl/)
      expect(await cache.get(key('k'))).toBe('kept')
      await expectTtl(ctx, key('k'), 100)
      expect(await cache.exists(key('g'))).toBe(false)
    },
  },
  // keys
  {
    name: 'a number is a key too, turned into a string as ioredis does (also in del)',
    async run({ cache }) {
      // Numbers cannot carry the run's prefix; a number no other check uses.
      const n = 790_331_529_001
      await cache.set(n, 'n')
      expect(await cache.get(String(n))).toBe('n')
      expect(await cache.exists(n)).toBe(true)
      await cache.del(n)
      expect(await cache.get(n)).toBeNull()
    },
  },
  {
    name: 'a key that is not a string or a number rejects with a TypeError naming the argument; no other key is touched',
    async run({ cache, key }) {
      await cache.set(key('other'), 'untouched')
      for (const bad of [undefined, null, {}, [], Symbol('k'), Object.create(null), true]) {
        await expectRejection(() => cache.get(bad), TypeError, /key/)
        await expectRejection(() => cache.set(bad, 1), TypeError, /key/)
        await expectRejection(() => cache.exists(bad), TypeError, /key/)
        await expectRejection(() => cache.ttl(bad), TypeError, /key/)
        await expectRejection(() => cache.getOrSet(bad, () => 1), TypeError, /key/)
      }
      await expectRejection(() => cache.mget([key('other'), {}]), TypeError)
      await expectRejection(() => cache.mget(key('other')), TypeError)
      await expectRejection(() => cache.del([key('other'), null]), TypeError)
      expect(await cache.get(key('other'))).toBe('untouched')
      expect(await cache.ping()).toBe(true)
    },
  },
  // del
  {
    name: 'del removes one key or an array of keys; an empty array or a missing key does nothing',
    async run({ cache, key }) {
      await cache.mset({ [key('a')]: 1, [key('b')]: 2, [key('c')]: 3, [key('d')]: 4 })
      await cache.del(key('a'))
      expect(await cache.get(key('a'))).toBeNull()
      await cache.del([key('b'), key('c'), key('missing')])
      await cache.del([])
      await cache.del(key('missing'))
      expect(await cache.mget([key('a'), key('b'), key('c'), key('d')])).toEqual([null, null, null, 4])
    },
  },
  // getOrSet
  {
    name: 'getOrSet: a cached 0, false, empty string or empty array is a hit; the factory does not run',
    async run({ cache, key }) {
      for (const [name, value] of [['zero', 0], ['false', false], ['empty', ''], ['array', []]]) {
        await cache.set(key(name), value)
        let ran = 0
        expect(await cache.getOrSet(key(name), () => ((ran += 1), 'fresh')), name).toEqual(value)
        expect(ran, name).toBe(0)
      }
    },
  },
  {
    name: 'getOrSet: a miss (or a cached null) awaits the factory, stores its value with the ttl and answers it',
    async run(ctx) {
      const { cache, key } = ctx
      await cache.set(key('null'), null)
      expect(await cache.getOrSet(key('null'), async () => ({ made: 1 }), 50)).toEqual({ made: 1 })
      expect(await cache.get(key('null'))).toEqual({ made: 1 })
      await expectTtl(ctx, key('null'), 50)
      expect(await cache.getOrSet(key('sync'), () => 7)).toBe(7)
      expect(await cache.get(key('sync'))).toBe(7)
      await expectTtl(ctx, key('sync'), DEFAULT_TTL)
      let ran = 0
      expect(await cache.getOrSet(key('sync'), () => ((ran += 1), 8))).toBe(7)
      expect(ran).toBe(0)
    },
  },
  {
    name: 'getOrSet: a factory rejection (or synchronous throw) rejects with the very same value and stores nothing',
    async run({ cache, key }) {
      const err = new Error('boom')
      await expect(cache.getOrSet(key('r1'), () => Promise.reject(err))).rejects.toBe(err)
      const notAnError = { reason: 'plain object' }
      await expect(cache.getOrSet(key('r2'), () => Promise.reject(notAnError))).rejects.toBe(notAnError)
      await expect(
        cache.getOrSet(key('r3'), () => {
          throw 'sync string'
        }),
      ).rejects.toBe('sync string')
      expect(await cache.mget([key('r1'), key('r2'), key('r3')])).toEqual([null, null, null])
    },
  },
  {
    name: 'getOrSet: a factory that is not a function rejects with a TypeError',
    async run({ cache, key }) {
      await expectRejection(() => cache.getOrSet(key('x'), 42), TypeError, /factory/)
      await expectRejection(() => cache.getOrSet(key('x'), undefined), TypeError, /factory/)
      expect(await cache.exists(key('x'))).toBe(false)
    },
  },
  // invalidatePattern
  {
    name: 'invalidatePattern deletes exactly the keys matching the Redis glob (*, ?, [a-b], [^e], \\ escapes)',
    async run({ cache, key }) {
      const names = ['user:1', 'user:2', 'user:10', 'post:1', 'a*b', 'axb', 'hallo', 'hello', 'hillo', 'hbllo']
      const keys = names.map(key)
      await cache.mset(Object.fromEntries(keys.map((k) => [k, k])))
      const survivors = async () => (await cache.mget(keys)).flatMap((v, i) => (v === null ? [] : [names[i]]))
      await cache.invalidatePattern(key('user:?'))
      expect(await survivors()).toEqual(['user:10', 'post:1', 'a*b', 'axb', 'hallo', 'hello', 'hillo', 'hbllo'])
      await cache.invalidatePattern(key('a\\*b'))
      expect(await survivors()).toEqual(['user:10', 'post:1', 'axb', 'hallo', 'hello', 'hillo', 'hbllo'])
      await cache.invalidatePattern(key('h[a-b]llo'))
      expect(await survivors()).toEqual(['user:10', 'post:1', 'axb', 'hello', 'hillo'])
      await cache.invalidatePattern(key('h[^e]llo'))
      expect(await survivors()).toEqual(['user:10', 'post:1', 'axb', 'hello'])
      await cache.invalidatePattern(key('nothing:*'))
      expect(await survivors()).toEqual(['user:10', 'post:1', 'axb', 'hello'])
      await cache.invalidatePattern(key('*'))
      expect(await survivors()).toEqual([])
    },
  },
  // exists, ttl, ping
  {
    name: 'exists answers true and false',
    async run({ cache, key }) {
      await cache.set(key('here'), 0)
      expect(await cache.exists(key('here'))).toBe(true)
      expect(await cache.exists(key('gone'))).toBe(false)
    },
  },
  {
    name: 'ttl answers whole seconds left, and -2 for a missing key',
    async run({ cache, key }) {
      await cache.set(key('t'), 1, 100)
      expect(await cache.ttl(key('t'))).toBe(100)
      expect(await cache.ttl(key('missing'))).toBe(-2)
    },
  },
  {
    name: 'ttl answers -1 for a key without expiry',
    only: 'redis',
    async run({ cache, key, raw }) {
      await raw.set(key('forever'), '1')
      expect(await cache.ttl(key('forever'))).toBe(-1)
    },
  },
  {
    name: 'ping answers true',
    async run({ cache }) {
      expect(await cache.ping()).toBe(true)
    },
  },
  // mget, mset
  {
    name: 'mget answers one entry per key in order, null for a missing one, and [] for []',
    async run({ cache, key }) {
      await cache.mset({ [key('a')]: { x: 1 }, [key('c')]: [1, 2] })
      expect(await cache.mget([key('a'), key('b'), key('c'), key('a')])).toEqual([{ x: 1 }, null, [1, 2], { x: 1 }])
      expect(await cache.mget([])).toEqual([])
    },
  },
  {
    name: 'mset stores every entry with the same expiry (falsy ttl: the default), as set does',
    async run(ctx) {
      const { cache, key, raw } = ctx
      await cache.mset({ [key('k1')]: 1, [key('k2')]: 'two', [key('k3')]: VALUES.unicode }, 120)
      expect(await cache.mget([key('k1'), key('k2'), key('k3')])).toEqual([1, 'two', VALUES.unicode])
      for (const k of ['k1', 'k2', 'k3']) await expectTtl(ctx, key(k), 120)
      if (raw) expect(await raw.get(key('k3'))).toBe(JSON.stringify(VALUES.unicode))
      await cache.mset({ [key('k4')]: 4 })
      await expectTtl(ctx, key('k4'), DEFAULT_TTL)
      await expect(cache.mset({})).resolves.toBeUndefined()
    },
  },
  // getInfo, clear
  {
    name: "getInfo answers the number of keys and the memory used in used_memory_human's format",
    async run({ cache, key, baseKeys }) {
      await cache.mset({ [key('i1')]: 1, [key('i2')]: 2, [key('i3')]: 3 })
      const info = await cache.getInfo()
      expect(Object.keys(info).sort()).toEqual(['keyCount', 'memoryUsage'])
      expect(info.keyCount).toBe((await baseKeys()) + 3)
      expect(info.memoryUsage).toMatch(HUMAN_BYTES)
    },
  },
  {
    name: 'clear empties the database',
    clears: true,
    async run({ cache, key, beforeClear }) {
      await cache.mset({ [key('c1')]: 1, [key('c2')]: 2 })
      await beforeClear()
      await expect(cache.clear()).resolves.toBeUndefined()
      expect(await cache.mget([key('c1'), key('c2')])).toEqual([null, null])
      expect((await cache.getInfo()).keyCount).toBe(0)
    },
  },
  {
    name: "'memory' mode: clear empties this instance only",
    only: 'memory',
    async run({ cache, key, create }) {
      const other = create()
      try {
        await other.set(key('theirs'), 1)
        await cache.set(key('mine'), 1)
        expect(await cache.get(key('theirs')), 'instances share nothing').toBeNull()
        await cache.clear()
        expect(await other.get(key('theirs'))).toBe(1)
      } finally {
        await other.close?.()
      }
    },
  },
  // failure results
  {
    name: 'when Redis does not answer, every method resolves to its failure result within commandTimeoutMs and a margin',
    async run({ create, key, logs }) {
      const hole = await blackHole()
      const cache = create({ mode: 'redis', url: undefined, host: '127.0.0.1', port: hole.port, db: 0, commandTimeoutMs: 200 })
      try {
        const started = Date.now()
        let ran = 0
        const results = await Promise.all([
          cache.get(key('a')),
          cache.set(key('a'), 1),
          cache.del(key('a')),
          cache.getOrSet(key('a'), () => ((ran += 1), 'from the factory')),
          cache.invalidatePattern(key('*')),
          cache.exists(key('a')),
          cache.ttl(key('a')),
          cache.ping(),
          cache.mget([key('a'), key('b')]),
          cache.mset({ [key('a')]: 1 }),
          cache.getInfo(),
          cache.clear(),
        ])
        expect(results).toEqual([
          null,
          undefined,
          undefined,
          'from the factory',
          undefined,
          false,
          -1,
          false,
          [],
          undefined,
          { keyCount: 0, memoryUsage: 'unknown' },
          undefined,
        ])
        expect(ran).toBe(1)
        if (logs) expect(logs.length, 'the failures went to the logger').toBeGreaterThan(0)
        // getOrSet waits for its read and its write: twice the bound, and a margin for a loaded machine.
        expect(Date.now() - started).toBeLessThan(5_000)
      } finally {
        await cache.close?.()
        await hole.close()
      }
    },
  },
]
