// Checks of what goes in and comes out: get, set, key forms, del, getOrSet.
import { setTimeout as sleep } from 'node:timers/promises'
import { expect } from 'vitest'
import { DEFAULT_TTL, VALUES, roundTrip, expectTtl, expectRejection } from './support.mjs'

export default [
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
]
