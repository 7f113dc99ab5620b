// Mixed calls in one event-loop turn (get, set, del, getOrSet, mget, clear,
// invalidatePattern), with L1 on and off: every read sees the write or delete
// made just before it in call order, whether it is answered from the memo, L1
// or Redis; and the counters add up (each get is one local hit or miss, each
// miss one Redis call).
import { describe, it, expect } from 'vitest'
import { CacheService } from '../index.js'
import { ownRedis } from './helpers/own-redis'

const redis = ownRedis()
const nextTurn = () => new Promise<void>((r) => setImmediate(r))

/** A small deterministic PRNG (mulberry32). */
function rng(seed: number) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const KEYS = ['mix:a1', 'mix:a2', 'mix:b1', 'mix:b2', 7, 'mix:é', 'mix:😀']
const keyOf = (k: string | number) => String(k)
/** A script that keeps the server busy (answering no one) for 50 ms. */
const BUSY_50_MS = `local function us() local t = redis.call('TIME') return t[1] * 1000000 + t[2] end
local start = us()
while us() - start < 50000 do end
return 1`

async function run(local: boolean, seed: number) {
  await redis.raw.flushdb()
  const cache = new CacheService({ url: redis.server.url, local: local ? {} : false, commandTimeoutMs: 10_000, logger: false })
  const model = new Map<string, unknown>()
  const wrong: string[] = []
  const next = rng(seed)
  let gets = 0
  let n = 0
  for (let turn = 0; turn < 150; turn++) {
    const pending: Promise<unknown>[] = []
    // getOrSet runs that missed: their factory's value is written after this
    // turn, unless the key is written or deleted after the miss (the write wins).
    let fills: Array<[string, unknown]> = []
    const running = new Map<string, unknown>()
    const calls = 1 + Math.floor(next() * 40)
    for (let c = 0; c < calls; c++) {
      const key = KEYS[Math.floor(next() * KEYS.length)]
      const k = keyOf(key)
      const r = next()
      const id = n++
      if (r < 0.5) {
        // Reads dominate, so keys reach L1 (2nd read) and the memo (4th).
        gets++
        const expected = model.has(k) ? model.get(k) : null
        pending.push(
          cache.get(key).then((v) => {
            if (JSON.stringify(v) !== JSON.stringify(expected)) wrong.push(`get ${id} ${k}: ${JSON.stringify(v)}, expected ${JSON.stringify(expected)}`)
          }),
        )
      } else if (r < 0.68) {
        const value = { n: id }
        model.set(k, value)
        running.delete(k)
        fills = fills.filter(([x]) => x !== k)
        pending.push(cache.set(key, value, 60))
      } else if (r < 0.76) {
        model.delete(k)
        running.delete(k)
        fills = fills.filter(([x]) => x !== k)
        pending.push(cache.del(next() < 0.5 ? key : [key, 'mix:none']))
      } else if (r < 0.86) {
        const list = [key, KEYS[Math.floor(next() * KEYS.length)]]
        const expected = list.map((x) => (model.has(keyOf(x)) ? model.get(keyOf(x)) : null))
        pending.push(
          cache.mget(list).then((v) => {
            if (JSON.stringify(v) !== JSON.stringify(expected)) wrong.push(`mget ${id} ${list}: ${JSON.stringify(v)}, expected ${JSON.stringify(expected)}`)
          }),
        )
      } else if (r < 0.95) {
        const made = { made: id }
        let expected: unknown
        if (model.has(k)) expected = model.get(k)
        else if (running.has(k)) expected = running.get(k)
        else {
          expected = made
          running.set(k, made)
          fills.push([k, made])
        }
        pending.push(
          cache.getOrSet(key, async () => made, 60).then((v) => {
            if (JSON.stringify(v) !== JSON.stringify(expected)) wrong.push(`getOrSet ${id} ${k}: ${JSON.stringify(v)}, expected ${JSON.stringify(expected)}`)
          }),
        )
      } else if (r < 0.975) {
        for (const x of [...model.keys()]) if (x.startsWith('mix:a')) model.delete(x)
        // New getOrSet calls join no run started before it.
        running.clear()
        fills = fills.filter(([x]) => !x.startsWith('mix:a'))
        pending.push(cache.invalidatePattern('mix:a*'))
        // L1 drops the matching keys only when the pattern runs (an unawaited
        // invalidatePattern is not read through, as in the original): last call of its turn.
        break
      } else {
        model.clear()
        running.clear()
        fills = []
        pending.push(cache.clear())
      }
    }
    await Promise.all(pending)
    // Each miss's factory value is written once its read came back, unless written over since.
    for (const [k, v] of fills) model.set(k, v)
    await nextTurn()
    await nextTurn()
  }
  const stats = cache.stats()
  await cache.close()
  return { wrong, stats, gets }
}

describe('mixed calls in one turn', () => {
  for (const local of [true, false]) {
    for (const seed of [1, 2, 3]) {
      it(`each read sees the write just before it (local: ${local}, seed ${seed})`, async () => {
        const { wrong, stats } = await run(local, seed)
        expect(wrong.slice(0, 10)).toEqual([])
        if (local) {
          expect(stats.local.enabled).toBe(true)
          expect(stats.local.hits, 'some reads answered by L1').toBeGreaterThan(0)
          expect(stats.local.memoHits, 'some reads answered by the memo').toBeGreaterThan(0)
        }
      })
    }
  }

  it('a caller joins a run whose read is still out, though a push or flush of what that read will see arrives meanwhile', async () => {
    await redis.raw.flushdb()
    const cache = new CacheService({ url: redis.server.url, local: {}, commandTimeoutMs: 10_000, logger: false })
    await cache.set('join:k', 1, 60)
    // The second read is tracked: the server sends this connection a push when the key changes.
    await cache.get('join:k')
    await cache.get('join:k')
    for (const change of ['del', 'clear']) {
      let runs = 0
      const factory = async () => ({ made: ++runs })
      // Redis busy for 50 ms, so the run's guard is surely taken before the first batch is answered.
      const busy = redis.raw.eval(BUSY_50_MS, 0)
      await new Promise((r) => setTimeout(r, 10))
      // One batch goes out (16 calls): the delete (a push comes back) or the clear (a flush).
      const pending: Promise<unknown>[] = [busy, change === 'del' ? cache.del('join:k') : cache.clear()]
      for (let i = 0; i < 15; i++) pending.push(cache.get(`join:filler${i}`))
      // The run's guard is taken now; its read goes out with the next batch.
      const first = cache.getOrSet('join:k', factory, 60)
      // Still in this turn: the first batch is answered and its push or flush applied meanwhile.
      const until = Date.now() + 200
      while (Date.now() < until);
      const second = cache.getOrSet('join:k', factory, 60)
      await Promise.all(pending)
      expect([await first, await second, runs], change).toEqual([{ made: 1 }, { made: 1 }, 1])
    }
    await cache.close()
  })

  for (const local of [true, false]) {
    it(`gets only: each is one local hit or miss, each miss one Redis call (local: ${local})`, async () => {
      await redis.raw.flushdb()
      const cache = new CacheService({ url: redis.server.url, local: local ? {} : false, commandTimeoutMs: 10_000, logger: false })
      await cache.set('cnt:1', 1, 60)
      await cache.set('cnt:2', 2, 60)
      const before = cache.stats()
      let gets = 0
      for (let turn = 0; turn < 20; turn++) {
        const pending: Promise<unknown>[] = []
        for (let i = 0; i < 10; i++) {
          gets++
          pending.push(cache.get(i % 3 === 0 ? 'cnt:none' : `cnt:${1 + (i % 2)}`))
        }
        await Promise.all(pending)
      }
      const after = cache.stats()
      await cache.close()
      const hits = after.local.hits - before.local.hits
      const misses = after.local.misses - before.local.misses
      expect(hits + misses).toBe(gets)
      expect(after.redis.calls - before.redis.calls).toBe(misses)
      if (local) expect(after.local.memoHits - before.local.memoHits).toBeGreaterThan(0)
      else expect(hits).toBe(0)
    })
  }
})
