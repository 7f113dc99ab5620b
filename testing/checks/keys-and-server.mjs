// Checks of the other methods: invalidatePattern, exists, ttl, ping, mget,
// mset, getInfo, clear, and every method's failure result.
import { expect } from 'vitest'
import { DEFAULT_TTL, HUMAN_BYTES, VALUES, expectTtl, blackHole } from './support.mjs'

export default [
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
