// Issue 8, defect 2: Redis drops tracking state while running this instance's
// own commands, and with NOLOOP it tells this instance nothing: keys pushed out
// of the tracking table (`tracking-table-max-keys`) by the instance's reads,
// and keys evicted under `maxmemory` by the instance's writes. L1 must stay
// coherent anyway: 150 ms after another client changes those keys, the
// instance serves what Redis holds.
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest'
import Redis from 'ioredis'
import { CacheService } from '../index.js'
import { startRedis, stopRedis, eventually, sleep, type RedisProcess } from './helpers/redis'

const HOUR = 3600
const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} }

async function inBatches<T>(items: T[], size: number, fn: (item: T) => Promise<unknown>) {
  const out: unknown[] = []
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(fn))))
  return out
}

let cache: CacheService | undefined
afterEach(async () => {
  await cache?.close()
  cache = undefined
})

async function connectedInstance(url: string) {
  // maxTtl an hour: only invalidation can explain a pass.
  cache = new CacheService({ url, local: { maxTtl: HOUR }, logger: quiet })
  expect(await eventually(() => cache!.ping(), 5000, 50)).toBe(true)
  return cache
}

describe('tracking-table-max-keys smaller than what the instance reads', () => {
  let server: RedisProcess
  let raw: Redis
  beforeAll(async () => {
    server = await startRedis(['--tracking-table-max-keys', '100'])
    raw = new Redis(server.port, '127.0.0.1')
  })
  afterAll(async () => {
    raw?.disconnect()
    await stopRedis(server)
  })

  it('1000 keys read through get, all overwritten by another client: 0 stale reads 150 ms later', async () => {
    const keys = Array.from({ length: 1000 }, (_, i) => `tt:${i}`)
    await raw.mset(Object.fromEntries(keys.map((k, i) => [k, JSON.stringify({ i, v: 'old' })])))
    const c = await connectedInstance(server.url)
    const first = await inBatches(keys, 50, (k) => c.get(k))
    expect(first).toEqual(keys.map((_, i) => ({ i, v: 'old' })))
    // Read again: L1 fills on a key's second read, and what it serves after the overwrite is what the test is about.
    await inBatches(keys, 50, (k) => c.get(k))
    const cached = c.stats().local.entries

    await raw.mset(Object.fromEntries(keys.map((k, i) => [k, JSON.stringify({ i, v: 'new' })])))
    await sleep(150)
    const after = (await inBatches(keys, 50, (k) => c.get(k))) as Array<{ i: number; v: string } | null>
    const stale = after.filter((v) => v?.v === 'old').length
    const wrong = after.filter((v, i) => v?.v !== 'new' || v.i !== i).length
    expect(stale, `${stale} of 1000 reads stale (${cached} keys in L1 before the overwrite)`).toBe(0)
    expect(wrong).toBe(0)
  })
})

describe('maxmemory with allkeys-lru, evictions caused by the instance’s own writes', () => {
  let server: RedisProcess
  let raw: Redis
  beforeAll(async () => {
    server = await startRedis(['--maxmemory', '2mb', '--maxmemory-policy', 'allkeys-lru', '--maxmemory-samples', '10'])
    raw = new Redis(server.port, '127.0.0.1')
  })
  afterAll(async () => {
    raw?.disconnect()
    await stopRedis(server)
  })

  it('evicted keys recreated by another client are served new, evicted keys not recreated are served null', async () => {
    const N = 400
    const watched = Array.from({ length: N }, (_, i) => `lru:${i}`)
    const old = (i: number) => ({ i, v: 'old', pad: 'o'.repeat(200) })
    const fresh = (i: number) => ({ i, v: 'new' })
    const pipe = raw.pipeline()
    for (const [i, k] of watched.entries()) pipe.set(k, JSON.stringify(old(i)))
    await pipe.exec()
    const c = await connectedInstance(server.url)
    // Twice: L1 fills on a key's second read.
    expect(await inBatches(watched, 50, (k) => c.get(k))).toEqual(watched.map((_, i) => old(i)))
    expect(await inBatches(watched, 50, (k) => c.get(k))).toEqual(watched.map((_, i) => old(i)))
    const hits = c.stats().local.hits
    await inBatches(watched, 50, (k) => c.get(k))
    expect(c.stats().local.hits - hits, 'the watched keys should be in L1').toBeGreaterThan(N / 2)

    // LRU's clock ticks once a second: make the watched keys older than what follows.
    await sleep(1100)
    // The instance's own writes push Redis past maxmemory (bounded: at most 8 MB written).
    const evictedBefore = Number((await raw.info('stats')).match(/evicted_keys:(\d+)/)![1])
    let gone: string[] = []
    for (let round = 0; round < 20; round++) {
      await inBatches(
        Array.from({ length: 50 }, (_, j) => `lru:big:${round}:${j}`),
        25,
        (k) => c.set(k, 'x'.repeat(8000), HOUR),
      )
      const exists = (await raw.pipeline(watched.map((k) => ['exists', k])).exec())!.map(([, v]) => v)
      gone = watched.filter((_, i) => exists[i] === 0)
      if (gone.length >= N / 2) break
    }
    const evicted = Number((await raw.info('stats')).match(/evicted_keys:(\d+)/)![1]) - evictedBefore
    expect(gone.length, `only ${gone.length} watched keys evicted (${evicted} evictions)`).toBeGreaterThan(20)

    // Stop evicting so what Redis holds is settled, then recreate half of the evicted keys.
    await raw.config('SET', 'maxmemory', '0')
    const recreated = gone.filter((_, j) => j % 2 === 0)
    const absent = gone.filter((_, j) => j % 2 === 1)
    await raw.mset(Object.fromEntries(recreated.map((k) => [k, JSON.stringify(fresh(Number(k.split(':')[1])))])))
    await sleep(150)

    const served = new Map<string, unknown>()
    await inBatches(watched, 50, async (k) => served.set(k, await c.get(k)))
    const theirs = await raw.mget(...watched)
    const mismatched = watched.filter((k, i) => JSON.stringify(served.get(k)) !== (theirs[i] ?? 'null'))
    const staleRecreated = recreated.filter((k) => (served.get(k) as { v?: string } | null)?.v === 'old').length
    const servedAbsent = absent.filter((k) => served.get(k) !== null).length
    const report = `${gone.length} watched keys evicted (${evicted} evictions in all); of ${recreated.length} recreated, ${staleRecreated} served stale; of ${absent.length} left absent, ${servedAbsent} still served`
    expect(staleRecreated, report).toBe(0)
    expect(servedAbsent, report).toBe(0)
    expect(mismatched, report).toEqual([])
  })
})
