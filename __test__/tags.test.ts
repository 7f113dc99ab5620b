// Tags (docs/tags.md): after invalidateTags([t]) resolves, no key tagged t by
// a write that resolved before the call is in Redis or served by any
// instance's L1 (within the foreign-delete bound), on every topology
// (helpers/topologies.ts) and in 'memory' mode; untagged and other-tag keys
// stay; Redis down resolves 0; bad tags are a TypeError and touch nothing.
import { describe, it, expect } from 'vitest'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import Redis, { Cluster } from 'ioredis'
import { CacheService } from '../index.js'
import { MAX_TAGS_PER_KEY, TAG_INDEX_PREFIX } from '../native.js'
import { eventually, sleep } from './helpers/redis'
import { ownTopologies, type Topology } from './helpers/topologies'

const topologies = ownTopologies()
/** Foreign deletes reach L1 within 100 ms (coherence.test.ts); slack for a shared 2-core machine. */
const FOREIGN_DELETE_MS = 1000

/** A raw client that reaches every key (cluster-aware on a cluster), and how to let it go. */
function rawOf(t: Topology): { raw: Redis | Cluster; done(): void } {
  const a = t.address()
  if ('cluster' in a) {
    const nodes = a.cluster.nodes.map((n) => ({ host: n.split(':')[0], port: Number(n.split(':')[1]) }))
    const raw = new Cluster(nodes)
    return { raw, done: () => raw.disconnect() }
  }
  return { raw: t.server(), done: () => {} }
}

/** `invalidateTags(tags)` by an instance in another process (a foreign delete); its answer. */
function invalidateElsewhere(address: object, tags: string[]): Promise<number> {
  const script = `const { CacheService } = require(${JSON.stringify(join(__dirname, '..', 'index.js'))})
    const c = new CacheService({ ...${JSON.stringify(address)}, logger: false })
    c.invalidateTags(${JSON.stringify(tags)}).then((n) => { process.stdout.write(String(n)); return c.close() })`
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', script], { timeout: 30_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(Number(stdout))))
  })
}

async function heldInL1(cache: CacheService, key: string, value: unknown): Promise<boolean> {
  return eventually(async () => {
    const before = cache.stats().local.hits
    return JSON.stringify(await cache.get(key)) === JSON.stringify(value) && cache.stats().local.hits === before + 1
  }, 3000, 10)
}

for (const t of topologies) {
  describe(`${t.name}: tags`, () => {
    it('invalidateTags (another process) deletes the tagged keys in Redis and every instance stops serving them; others stay', async () => {
      const a = new CacheService({ ...t.address(), logger: false })
      const b = new CacheService({ ...t.address(), logger: false })
      const { raw, done } = rawOf(t)
      const p = `tags:${t.name.replace(/ /g, '-')}`
      try {
        // No hash tag: on a cluster these spread over slots and primaries.
        const red = Array.from({ length: 8 }, (_, i) => `${p}:red:${i}`)
        const viaGetOrSet = `${p}:red:getorset`
        const both = `${p}:both`
        const blue = `${p}:blue`
        const plain = `${p}:plain`
        await Promise.all(red.map((k, i) => a.set(k, { i }, 60, { tags: [`${p}-red`] })))
        expect(await a.getOrSet(viaGetOrSet, async () => 'made', { ttl: 60, tags: [`${p}-red`] })).toBe('made')
        await a.set(both, 'both', 60, { tags: [`${p}-blue`, `${p}-red`] })
        await a.set(blue, 'blue', 60, { tags: [`${p}-blue`] })
        await a.set(plain, 'plain', 60)
        const gone = [...red, viaGetOrSet, both]
        for (const k of gone) expect(await heldInL1(a, k, await a.get(k)), `${k} is served from A's L1`).toBe(true)

        const n = await invalidateElsewhere(t.address(), [`${p}-red`, `${p}-none`, `${p}-red`])
        expect(n).toBe(gone.length)
        for (const k of gone) expect(await raw.exists(k), `${k} is gone from Redis`).toBe(0)
        for (const k of gone) {
          const dropped = await eventually(async () => (await a.get(k)) === null, FOREIGN_DELETE_MS, 10)
          expect(dropped, `A still serves ${k}`).toBe(true)
          expect(await b.get(k)).toBeNull()
        }
        expect(await a.get(blue)).toBe('blue')
        expect(await a.get(plain)).toBe('plain')
        expect((await raw.exists(blue)) + (await raw.exists(plain))).toBe(2)
        // The tag was consumed; blue still indexes `both`, which is gone already.
        expect(await b.invalidateTags([`${p}-red`])).toBe(0)
        expect(await b.invalidateTags([`${p}-blue`])).toBe(1)
        expect(await raw.exists(blue)).toBe(0)
        expect(await raw.exists(plain)).toBe(1)
      } finally {
        done()
        await a.close()
        await b.close()
      }
    })

    it('in this process, every instance (L1, memo, getOrSet) stops serving the keys before the call resolves, as after del', async () => {
      const c = new CacheService({ ...t.address(), logger: false })
      const d = new CacheService({ ...t.address(), logger: false })
      const p = `tags-own:${t.name.replace(/ /g, '-')}`
      try {
        const keys = Array.from({ length: 6 }, (_, i) => `${p}:${i}`)
        await Promise.all(keys.map((k) => c.set(k, 'v', 60, { tags: [`${p}-x`] })))
        for (const k of keys) expect(await heldInL1(c, k, 'v')).toBe(true)
        for (const k of keys) expect(await heldInL1(d, k, 'v')).toBe(true)
        for (const k of keys) for (let i = 0; i < 3; i++) await c.get(k)
        expect(await c.invalidateTags([`${p}-x`])).toBe(keys.length)
        // No polling: the same process knows at once, as it does after del.
        expect(await d.mget(keys)).toEqual(keys.map(() => null))
        expect(await c.mget(keys)).toEqual(keys.map(() => null))
        for (const k of keys) expect(await c.get(k), k).toBeNull()
        for (const k of keys) expect(await d.get(k), k).toBeNull()
        expect(await c.getOrSet(keys[0], async () => 'new', 60)).toBe('new')
      } finally {
        await c.close()
        await d.close()
      }
    })

    it('the key\'s value and TTL in Redis are what the write wrote; a key past its ttl is not counted', async () => {
      const c = new CacheService({ ...t.address(), logger: false })
      const { raw, done } = rawOf(t)
      const p = `tags-bytes:${t.name.replace(/ /g, '-')}`
      try {
        await c.set(`${p}:k`, { a: 1 }, 60, { tags: [`${p}-x`] })
        expect(await raw.get(`${p}:k`)).toBe('{"a":1}')
        expect(await raw.type(`${p}:k`)).toBe('string')
        expect(await raw.pttl(`${p}:k`)).toBeGreaterThan(59_000)
        await c.set(`${p}:short`, 1, 0.05, { tags: [`${p}-x`] })
        await sleep(100)
        expect(await c.invalidateTags([`${p}-x`])).toBe(1)
      } finally {
        done()
        await c.close()
      }
    })

    it('a tagged write whose index entry Redis refuses fails and writes nothing', async () => {
      const errors: string[] = []
      const logger = { error: (m: unknown) => errors.push(String(m)), warn: () => {}, info: () => {}, debug: () => {} }
      const c = new CacheService({ ...t.address(), logger })
      const { raw, done } = rawOf(t)
      const p = `tags-refused:${t.name.replace(/ /g, '-')}`
      try {
        // Not a sorted set: the index script fails (WRONGTYPE).
        await raw.set(`${TAG_INDEX_PREFIX}{t:${p}-bad}`, 'x')
        await c.set(`${p}:k`, 1, 60, { tags: [`${p}-ok`, `${p}-bad`] })
        expect(await c.getOrSet(`${p}:g`, async () => 2, { ttl: 60, tags: [`${p}-bad`] })).toBe(2)
        expect(errors.filter((e) => /WRONGTYPE/.test(e)).length, errors.join('\n')).toBe(2)
        expect(errors[0]).toMatch(/^Cache set error:/)
        expect(await raw.exists(`${p}:k`)).toBe(0)
        expect(await raw.exists(`${p}:g`)).toBe(0)
      } finally {
        done()
        await c.close()
      }
    })

    it('with the keys\' server stopped invalidateTags resolves 0, then the instance serves again', async () => {
      const c = new CacheService({ ...t.address(), commandTimeoutMs: 300, logger: false })
      const p = `tags-down:${t.name.replace(/ /g, '-')}`
      try {
        expect(await eventually(() => c.ping(), 10_000, 50)).toBe(true)
        await c.set(t.key(`${p}:k`), 1, 60, { tags: [`${p}-x`] })
        t.stop()
        try {
          await sleep(50)
          expect(await c.invalidateTags([`${p}-x`])).toBe(0)
        } finally {
          t.resume()
        }
        const key = t.key(`${p}:after`)
        const serves = await eventually(async () => (await c.set(key, 2, 60, { tags: [`${p}-y`] }), (await c.get(key)) === 2), 10_000, 50)
        expect(serves).toBe(true)
        expect(await c.invalidateTags([`${p}-y`])).toBe(1)
        expect(await c.get(key)).toBeNull()
      } finally {
        await c.close()
      }
    })
  })
}

describe("'memory' mode: tags", () => {
  it('invalidateTags deletes the tagged keys, counts each once, leaves the rest', async () => {
    const c = new CacheService({ mode: 'memory', logger: false })
    try {
      await c.set('r1', 1, 60, { tags: ['red'] })
      await c.set('r2', 2, 60, { tags: ['red', 'blue'] })
      expect(await c.getOrSet('r3', async () => 3, { ttl: 60, tags: ['red'] })).toBe(3)
      await c.set('b1', 4, 60, { tags: ['blue'] })
      await c.set('p', 5, 60)
      await c.set('short', 6, 0.03, { tags: ['red'] })
      expect(await c.get('r1')).toBe(1)
      await sleep(60)
      expect(await c.invalidateTags(['red', 'green'])).toBe(3)
      expect(await c.mget(['r1', 'r2', 'r3', 'b1', 'p'])).toEqual([null, null, null, 4, 5])
      expect(await c.invalidateTags(['blue'])).toBe(1)
      expect(await c.get('p')).toBe(5)
      expect(await c.invalidateTags([])).toBe(0)
    } finally {
      await c.close()
    }
  })
})

describe('tags: bad input', () => {
  const bad: Array<[string, (c: CacheService) => Promise<unknown>, RegExp]> = [
    ['set: tags not an array', (c) => c.set('k', 1, 60, { tags: 'red' as never }), /tags must be an array/],
    ['set: an empty tag', (c) => c.set('k', 1, 60, { tags: ['ok', ''] }), /tags\[1\] must be a non-empty string/],
    ['set: a tag not a string', (c) => c.set('k', 1, 60, { tags: [7 as never] }), /tags\[0\] must be a non-empty string/],
    [`set: ${MAX_TAGS_PER_KEY + 1} tags`, (c) => c.set('k', 1, 60, { tags: Array.from({ length: MAX_TAGS_PER_KEY + 1 }, (_, i) => `t${i}`) }), new RegExp(`at most ${MAX_TAGS_PER_KEY} tags`)],
    ['set: an unknown option', (c) => c.set('k', 1, 60, { tag: ['x'] } as never), /unknown option "tag"/],
    ['set: options not an object', (c) => c.set('k', 1, 60, 'x' as never), /set options must be an object/],
    ['getOrSet: an empty tag', (c) => c.getOrSet('k', () => 1, { ttl: 60, tags: [''] }), /tags\[0\] must be a non-empty string/],
    ['invalidateTags: not an array', (c) => c.invalidateTags('red' as never), /tags must be an array/],
    ['invalidateTags: an empty tag', (c) => c.invalidateTags(['red', '']), /tags\[1\] must be a non-empty string/],
  ]
  for (const [name, call, message] of bad) {
    it(`${name}: a TypeError naming it, nothing touched, the instance usable`, async () => {
      const c = new CacheService({ mode: 'memory', logger: false })
      try {
        await c.set('k', 'before', 60, { tags: ['red'] })
        const err = await call(c).then(() => undefined, (e: unknown) => e)
        expect(err).toBeInstanceOf(TypeError)
        expect((err as Error).message).toMatch(message)
        expect(await c.get('k')).toBe('before')
        expect(await c.invalidateTags(['red'])).toBe(1)
      } finally {
        await c.close()
      }
    })
  }
})
