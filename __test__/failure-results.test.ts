// With the server that holds the keys stopped (SIGSTOP: it holds its
// connections open and answers nothing), every method settles to its failure
// result within commandTimeoutMs, on every topology (helpers/topologies.ts),
// and the same instance serves again once the server answers.
import { describe, it, expect } from 'vitest'
import { CacheService } from '../index.js'
import { eventually, sleep } from './helpers/redis'
import { ownTopologies } from './helpers/topologies'
import { expectFailureResults } from './helpers/failure-results'

const TIMEOUT = 300
// Scheduling slack on a shared 2-core machine; the bound under test is TIMEOUT.
const MARGIN = 400

const topologies = ownTopologies()

for (const t of topologies) {
  describe(`${t.name}: the keys' server stopped`, () => {
    it('every method resolves to its failure result within the bound, then the instance recovers', async () => {
      const cache = new CacheService({ ...t.address(), commandTimeoutMs: TIMEOUT, logger: false })
      try {
        expect(await eventually(() => cache.ping(), 10_000, 50)).toBe(true)
        t.stop()
        try {
          await sleep(50)
          await expectFailureResults(cache, TIMEOUT + MARGIN, t.key)
        } finally {
          t.resume()
        }
        const key = t.key('after')
        expect(await eventually(async () => (await cache.set(key, 1, 60), (await cache.get(key)) === 1), 10_000, 50)).toBe(true)
      } finally {
        await cache.close()
      }
    })
  })
}
