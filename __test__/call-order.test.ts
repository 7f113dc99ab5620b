// Promises settle in the order their calls were made, as ioredis' do: a caller
// that records "the last write that resolved" holds what Redis holds. On every
// topology (helpers/topologies.ts); on a Cluster the keys share a slot, so one
// primary orders them as one server does.
import { describe, it, expect } from 'vitest'
import { CacheService } from '../index.js'
import { ownTopologies } from './helpers/topologies'

const topologies = ownTopologies()
const nextTurn = () => new Promise<void>((r) => setImmediate(r))

for (const t of topologies) describe(`${t.name}: call order`, () => {
  it('calls made in separate event-loop turns settle in call order, and the last to settle is what Redis holds', async () => {
    const K = t.key('order:k')
    const cache = new CacheService({ ...t.address(), commandTimeoutMs: 10_000 })
    const calls = 5000
    const settled: number[] = []
    const pending: Promise<void>[] = []
    for (let n = 0; n < calls; n++) {
      const call = n % 5 === 4 ? cache.del(K) : cache.set(K, n, 60)
      pending.push(call.then(() => void settled.push(n)))
      // One batch per turn: many batches in flight, answered in bunches.
      await nextTurn()
    }
    await Promise.all(pending)
    const outOfOrder = settled.filter((n, i) => i > 0 && n < settled[i - 1])
    expect(outOfOrder, 'calls that settled after a later call').toEqual([])
    expect(settled).toHaveLength(calls)
    // The last call is a del; a set before it must not have landed after it.
    expect(await t.server().get(K)).toBeNull()
    await cache.close()
  })

  it('many calls in one turn take effect and settle in call order: each read sees the write made just before it', async () => {
    const TURN = t.key('order:turn')
    const cache = new CacheService({ ...t.address(), commandTimeoutMs: 10_000 })
    const settled: number[] = []
    const pending: Promise<void>[] = []
    const wrongReads: string[] = []
    // 200 rounds of 100 calls per turn: writes, deletes and reads of one key.
    // Each read must see the write or delete made just before it in call order.
    let last: number | null = null
    for (let round = 0; round < 200; round++) {
      for (let i = 0; i < 100; i++) {
        const n = round * 100 + i
        if (i % 7 === 3) {
          pending.push(cache.del(TURN).then(() => void settled.push(n)))
          last = null
        } else if (i % 7 === 5) {
          const expected = last
          pending.push(
            cache.get(TURN).then((v) => {
              settled.push(n)
              if (v !== expected) wrongReads.push(`read ${n}: ${String(v)}, expected ${String(expected)}`)
            }),
          )
        } else {
          pending.push(cache.set(TURN, n, 60).then(() => void settled.push(n)))
          last = n
        }
      }
      await nextTurn()
    }
    await Promise.all(pending)
    const outOfOrder = settled.filter((n, i) => i > 0 && n < settled[i - 1])
    expect(outOfOrder, 'calls that settled after a later call').toEqual([])
    expect(wrongReads.slice(0, 5), `${wrongReads.length} reads saw another call's effect`).toEqual([])
    expect(await t.server().get(TURN)).toBe(String(last))
    await cache.close()
  })
})
