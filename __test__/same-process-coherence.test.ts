// Instances of one process on the same Redis target and database see each
// other's acknowledged writes at once, as two instances of the original did:
// a write drops the key from every instance's L1 (and memo) when it is made,
// spoils their reads in flight, and a read sent while another instance's
// write is in flight fills nothing. Not through the network: synchronously.
import { describe, it, expect, afterEach } from 'vitest'
import { CacheService } from '../index.js'
import { ownRedis } from './helpers/own-redis'
import { ownCluster } from './helpers/cluster'

const redis = ownRedis()
const cluster = ownCluster()
const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} }

const open: CacheService[] = []
afterEach(async () => {
  for (const c of open.splice(0)) await c.close()
})

const topologies = [
  ['one server', () => ({ url: redis.server.url })],
  ['cluster', () => ({ cluster: { nodes: cluster.seeds } })],
] as const

describe.each(topologies)('%s', (_name, target) => {
  function pair() {
    const a = new CacheService({ ...target(), logger: quiet })
    const b = new CacheService({ ...target(), logger: quiet })
    open.push(a, b)
    return [a, b] as const
  }

  /** Reads `k` on `c` until L1 (or the memo) answers it. */
  async function cached(c: CacheService, k: string) {
    for (let i = 0; i < 50; i++) {
      const before = c.stats().local.hits
      await c.get(k)
      if (c.stats().local.hits > before) return
      await new Promise((r) => setTimeout(r, 5))
    }
    throw new Error(`${k} never reached L1`)
  }

  it("after B's set, del, invalidatePattern or clear resolves, A's next read (L1 held the key) sees it, 300 times", async () => {
    const [a, b] = pair()
    await a.ping()
    await b.ping()
    const wrong: string[] = []
    for (let i = 0; i < 300; i++) {
      const k = `peer:${i % 10}`
      await b.set(k, { v: i - 1 }, 60)
      await cached(a, k)
      const how = ['set', 'set', 'del', 'pattern', 'clear'][i % 5]
      let expected: unknown = null
      if (how === 'set') {
        expected = { v: i }
        await b.set(k, expected, 60)
      } else if (how === 'del') await b.del(k)
      else if (how === 'pattern') await b.invalidatePattern(`${k}*`)
      else await b.clear()
      const seen = await a.get(k)
      if (JSON.stringify(seen) !== JSON.stringify(expected)) wrong.push(`${i} ${how}: ${JSON.stringify(seen)}`)
    }
    expect(wrong).toEqual([])
  })

  it("a read A sent before B's write lands in no L1: A's later reads see B's value", async () => {
    const [a, b] = pair()
    const wrong: string[] = []
    for (let i = 0; i < 100; i++) {
      const k = `inflight:${i % 5}`
      await b.set(k, { v: i - 1 }, 60)
      await a.get(k)
      // A's read (its second: it fills L1) and B's write leave in the same turn, on two
      // connections, in either order: the read may reach Redis first and answer the old value.
      const [read, write] = i % 2 === 0 ? [a.get(k), b.set(k, { v: i }, 60)] : [b.set(k, { v: i }, 60), a.get(k)].reverse()
      await Promise.all([read, write])
      for (let j = 0; j < 3; j++) {
        const seen = (await a.get<{ v: number }>(k))?.v
        if (seen !== i) wrong.push(`${i}.${j}: ${seen}`)
      }
    }
    expect(wrong).toEqual([])
  })
})
