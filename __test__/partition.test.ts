// Issue 8, defect 3: a silent partition. A TCP proxy between the instance and
// redis-server stops forwarding in both directions without closing anything
// (no FIN, no RST), so only the instance's own liveness checks can notice.
// With default options a value changed in Redis meanwhile is not served from
// L1 later than 2 s after the change, no call hangs, and the instance recovers
// by itself when the link heals. Each case runs on every topology
// (helpers/topologies.ts, proxied): between the instance and a single server,
// a Sentinel master, or a Cluster primary (the other primaries stay reachable).
import { describe, it, expect, afterEach } from 'vitest'
import { CacheService } from '../index.js'
import { eventually, sleep } from './helpers/redis'
import { ownTopologies, type Topology } from './helpers/topologies'

/** The default commandTimeoutMs: these tests use default options. */
const TIMEOUT = 1000
const MARGIN = 500
const STALE_BOUND_MS = 2000

const topologies = ownTopologies({ proxied: true })

let cache: CacheService | undefined
let healAfter: Topology | undefined
afterEach(async () => {
  await cache?.close()
  cache = undefined
  healAfter?.link().heal()
  healAfter = undefined
})

const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} }

/** A default-options instance through the topology's proxy, connected. */
async function throughProxy(t: Topology, options: { commandTimeoutMs?: number } = {}) {
  healAfter = t
  cache = new CacheService({ ...t.address(), logger: quiet, ...options })
  expect(await eventually(() => cache!.ping(), 5000, 50), 'never connected through the proxy').toBe(true)
  return { c: cache, p: t.link(), k: t.key, raw: t.server() }
}

/** `key` is in L1: repeated gets are local hits. */
async function servedFromL1(c: CacheService, key: string, expected: unknown) {
  // L1 fills on a key's second read.
  expect(await c.get(key)).toEqual(expected)
  expect(await c.get(key)).toEqual(expected)
  const before = c.stats().local.hits
  for (let i = 0; i < 5; i++) expect(await c.get(key)).toEqual(expected)
  expect(c.stats().local.hits - before, `${key} should be served from L1`).toBe(5)
}

interface Read {
  start: number
  end: number
  value: unknown
}

/** A get of `k` every ~20 ms for `ms` after `T`, not waiting for one another, each timed from `T`; `reads` fills as they settle. */
async function readEvery20ms(c: CacheService, k: string, T: number, ms: number) {
  const reads: Read[] = []
  const inFlight: Promise<void>[] = []
  while (performance.now() - T < ms) {
    const start = performance.now() - T
    inFlight.push(c.get(k).then((value) => void reads.push({ start, end: performance.now() - T, value })))
    await sleep(20)
  }
  return { reads, inFlight }
}

for (const t of topologies) describe(`${t.name}: a silent partition`, () => {
  it('a value changed during the silence is not served from L1 later than 2 s after the change; recovery after heal', async () => {
    const { c, p, k: key, raw } = await throughProxy(t)
    const k = key('part:k')
    await raw.set(k, JSON.stringify('old'))
    await servedFromL1(c, k, 'old')

    p.silence()
    await sleep(20)
    await raw.set(k, JSON.stringify('new'))
    const T = performance.now()

    const { reads, inFlight } = await readEvery20ms(c, k, T, 4000)
    await Promise.all(inFlight)

    const old = reads.filter((r) => r.value === 'old')
    const lastOld = old.length ? Math.max(...old.map((r) => r.end)) : -1
    const slowest = Math.max(...reads.map((r) => r.end - r.start))
    const report = `${reads.length} reads; ${old.length} returned the old value, the last one completing at T+${lastOld.toFixed(0)} ms; slowest read ${slowest.toFixed(0)} ms`
    console.log(`silent partition: ${report}`)
    // Nothing but the old value, the new one, or the failure result.
    for (const r of reads) expect([null, 'old', 'new'], report).toContain(r.value)
    expect(lastOld, `old value served after T+${STALE_BOUND_MS} ms: ${report}`).toBeLessThan(STALE_BOUND_MS)
    expect(slowest, `a read hung: ${report}`).toBeLessThan(TIMEOUT + MARGIN)

    // The link heals: the same instance serves the new value, then from L1 again.
    p.heal()
    const healed = performance.now()
    expect(await eventually(async () => (await c.get(k)) === 'new', 10_000, 50), 'never served the new value after heal').toBe(true)
    const recoveredIn = performance.now() - healed
    await eventually(async () => {
      const h = c.stats().local.hits
      await c.get(k)
      return c.stats().local.hits > h
    }, 5000, 50)
    await servedFromL1(c, k, 'new')
    expect(c.stats().local.enabled).toBe(true)
    expect(recoveredIn).toBeLessThan(10_000)

    // And L1 is coherent again: another writer's change shows within 100 ms.
    await raw.set(k, JSON.stringify('newer'))
    const started = performance.now()
    expect(await eventually(async () => (await c.get(k)) === 'newer', 2000, 2)).toBe(true)
    expect(performance.now() - started).toBeLessThan(100)
  }, 40_000)

  it('with a heartbeat slower than the lease (commandTimeoutMs 5 s), the lease alone stops L1 and the memo serving within 2 s', async () => {
    // The heartbeat breaks the link only after commandTimeoutMs without an
    // answer; until then only the lease (1.5 s after the last proof) stops
    // hits, the JavaScript memo's included.
    const { c, p, k: key, raw } = await throughProxy(t, { commandTimeoutMs: 5000 })
    const k = key('part:lease')
    await raw.set(k, JSON.stringify('old'))
    await servedFromL1(c, k, 'old')
    const memoBefore = c.stats().local.memoHits
    expect(await c.get(k)).toBe('old')
    expect(c.stats().local.memoHits, 'the memo should be serving the key').toBe(memoBefore + 1)

    p.silence()
    await sleep(20)
    await raw.set(k, JSON.stringify('new'))
    const T = performance.now()
    const { reads, inFlight } = await readEvery20ms(c, k, T, 3000)
    const old = () => reads.filter((r) => r.value === 'old')
    const lastOld = () => Math.max(-1, ...old().map((r) => r.end))
    const report = () => `${reads.length} reads settled; ${old().length} returned the old value, the last at T+${lastOld().toFixed(0)} ms`
    expect(lastOld(), `old value served after T+${STALE_BOUND_MS} ms: ${report()}`).toBeLessThan(STALE_BOUND_MS)
    p.heal()
    await Promise.all(inFlight)
    console.log(`lease alone: ${report()}`)
    for (const r of reads) expect([null, 'old', 'new'], report()).toContain(r.value)
    expect(lastOld(), `old value served after T+${STALE_BOUND_MS} ms: ${report()}`).toBeLessThan(STALE_BOUND_MS)
  }, 40_000)

  it('no call hangs while the link is silent: every call settles within commandTimeoutMs + margin', async () => {
    const { c, p, k, raw } = await throughProxy(t)
    const cached = k('part:cached')
    await raw.set(cached, JSON.stringify('c'))
    await servedFromL1(c, cached, 'c')
    p.silence()
    const slow: string[] = []
    let calls = 0
    // A getOrSet makes two commands (its read, then its write of the factory's
    // value). On one server (Sentinel's master included) the read's timeout cuts
    // the connection and the write fails at once; on a Cluster the write may go
    // out on a connection to that primary made again meanwhile (a new slot map
    // reaches it: the silent link still accepts connections) and wait out its
    // own commandTimeoutMs. The bound there is two timeouts.
    const rounds = (name: string) => (t.name === 'Cluster' && name === 'getOrSet' ? 2 : 1)
    const timed = async (name: string, call: () => Promise<unknown>, expected: unknown[]) => {
      const started = performance.now()
      const value = await call()
      const took = performance.now() - started
      calls += 1
      if (took >= rounds(name) * TIMEOUT + MARGIN) slow.push(`${name} ${took.toFixed(0)} ms`)
      expect(expected.map((e) => JSON.stringify(e)), `${name} resolved to ${JSON.stringify(value)}`).toContain(
        JSON.stringify(value),
      )
    }
    // Calls keep coming for 3.5 s of silence: first on the stale connection,
    // later while the instance may be reconnecting through the silent proxy.
    const end = performance.now() + 3500
    const waves: Promise<unknown>[] = []
    let i = 0
    while (performance.now() < end) {
      i += 1
      waves.push(
        Promise.all([
          timed('ping', () => c.ping(), [false]),
          timed('get (not cached)', () => c.get(k(`part:none:${i}`)), [null]),
          timed('get (cached before)', () => c.get(cached), ['c', null]),
          timed('exists', () => c.exists(cached), [false]),
          timed('ttl', () => c.ttl(cached), [-1]),
          timed('mget', () => c.mget([k('part:none'), k(`part:none:${i}`)]), [[]]),
          timed('getOrSet', () => c.getOrSet(k(`part:gos:${i}`), async () => 'f'), ['f']),
          timed('getInfo', () => c.getInfo(), [{ keyCount: 0, memoryUsage: 'unknown' }]),
        ]),
      )
      await sleep(150)
    }
    await Promise.all(waves)
    expect(slow, `${slow.length} of ${calls} calls took too long`).toEqual([])
    p.heal()
    expect(await eventually(() => c.ping(), 10_000, 50), 'never recovered after heal').toBe(true)
    await c.set(k('part:after'), { fine: true })
    expect(await raw.get(k('part:after'))).toBe('{"fine":true}')
    expect(await c.get(k('part:after'))).toEqual({ fine: true })
  }, 40_000)

  it('writes answered as failed during the silence never land after the link heals', async () => {
    const { c, p, k, raw } = await throughProxy(t)
    p.silence()
    const keys = Array.from({ length: 5 }, (_, i) => k(`part:w:${i}`))
    const started = performance.now()
    // Spread over the silence: on the stale connection and during reconnect attempts.
    for (const k of keys) {
      await c.set(k, 'from the partitioned instance')
      await sleep(300)
    }
    const m = k('part:w:m')
    await c.mset({ [m]: 'from the partitioned instance' })
    expect(performance.now() - started).toBeGreaterThan(1500)
    // Another writer has the last word while the instance is cut off.
    for (const key of [...keys, m]) await raw.set(key, JSON.stringify('newer'))
    p.heal()
    expect(await eventually(() => c.ping(), 10_000, 50)).toBe(true)
    await sleep(300)
    for (const key of [...keys, m]) expect(await raw.get(key), `${key} was overwritten late`).toBe('"newer"')
    expect(await c.get(keys[0])).toBe('newer')
  }, 40_000)
})
