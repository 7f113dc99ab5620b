// L1 stays coherent with Redis on every topology (helpers/topologies.ts): a
// foreign write on the key's server is seen within 100 ms, also for a key
// served from L1; while that server is stopped L1 serves its last values for
// at most the liveness lease (LIVENESS_LEASE_MS), and once it answers again a
// foreign write is seen (whatever connection the instance has rebuilt meanwhile).
import { describe, it, expect } from 'vitest'
import { CacheService } from '../index.js'
import { LIVENESS_LEASE_MS } from '../native.js'
import { eventually, sleep } from './helpers/redis'
import { ownTopologies } from './helpers/topologies'

const topologies = ownTopologies()
/** Scheduling slack on a shared 2-core machine. */
const MARGIN_MS = 500

async function heldInL1(cache: CacheService, key: string, value: unknown): Promise<boolean> {
  return eventually(async () => {
    const before = cache.stats().local.hits
    return (await cache.get(key)) === value && cache.stats().local.hits === before + 1
  }, 3000, 10)
}

for (const t of topologies) {
  describe(`${t.name}: L1 coherence`, () => {
    /** Runs `body` on a new instance whose L1 serves `key` (named after `name`) with `value`. */
    async function withKeyInL1(name: string, value: string, body: (cache: CacheService, key: string) => Promise<void>) {
      const cache = new CacheService({ ...t.address(), commandTimeoutMs: 300, logger: false })
      try {
        const key = t.key(name)
        await cache.set(key, value, 60)
        expect(await heldInL1(cache, key, value), 'the key is served from L1').toBe(true)
        await body(cache, key)
      } finally {
        await cache.close()
      }
    }

    it('a foreign write on the key\'s server is seen within 100 ms, also for a key served from L1', () =>
      withKeyInL1('coherent', 'mine', async (cache, key) => {
        await t.server().set(key, '"theirs"', 'EX', 60)
        const seen = await eventually(async () => (await cache.get(key)) === 'theirs', 100, 5)
        expect(seen, 'the foreign write was not seen within 100 ms').toBe(true)
      }))

    it('while the key\'s server is stopped, L1 serves for at most the lease; once it answers, a foreign write is seen', () =>
      withKeyInL1('stopped', 'before', async (cache, key) => {
        t.stop()
        const stopped = Date.now()
        let lastServed = 0
        try {
          while (Date.now() < stopped + 3000) {
            if ((await cache.get(key)) === 'before') lastServed = Date.now() - stopped
            await sleep(20)
          }
        } finally {
          t.resume()
        }
        expect(lastServed, `L1 served ${lastServed} ms into the stop`).toBeLessThanOrEqual(LIVENESS_LEASE_MS + MARGIN_MS)
        await sleep(1000)
        await t.server().set(key, '"after"', 'EX', 60)
        const seen = await eventually(async () => (await cache.get(key)) === 'after', 2000, 10)
        expect(seen, 'a foreign write after the server answered again was not seen within 2 s').toBe(true)
      }))
  })
}
