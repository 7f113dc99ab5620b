// Promises settle in the order their calls were made, as ioredis' do: a caller
// that records "the last write that resolved" holds what Redis holds.
import { describe, it, expect } from 'vitest'
import { CacheService } from '../index.js'
import { ownRedis } from './helpers/own-redis'

const redis = ownRedis()
const nextTurn = () => new Promise<void>((r) => setImmediate(r))

describe('call order', () => {
  it('calls made in separate event-loop turns settle in call order, and the last to settle is what Redis holds', async () => {
    const cache = new CacheService({ url: redis.server.url, commandTimeoutMs: 10_000 })
    const calls = 5000
    const settled: number[] = []
    const pending: Promise<void>[] = []
    for (let n = 0; n < calls; n++) {
      const call = n % 5 === 4 ? cache.del('order:k') : cache.set('order:k', n, 60)
      pending.push(call.then(() => void settled.push(n)))
      // One batch per turn: many batches in flight, answered in bunches.
      await nextTurn()
    }
    await Promise.all(pending)
    const outOfOrder = settled.filter((n, i) => i > 0 && n < settled[i - 1])
    expect(outOfOrder, 'calls that settled after a later call').toEqual([])
    expect(settled).toHaveLength(calls)
    // The last call is a del; a set before it must not have landed after it.
    expect(await redis.raw.get('order:k')).toBeNull()
    await cache.close()
  })
})
