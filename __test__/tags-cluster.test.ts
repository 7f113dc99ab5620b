// A tagged write on a Cluster whose tag index lives on a stopped primary
// (docs/tags.md): the key is not written (the set fails, logged as usual),
// so no key is ever left in Redis without its index entry.
import { describe, it, expect } from 'vitest'
import { CacheService } from '../index.js'
import { eventually } from './helpers/redis'
import { ownCluster } from './helpers/cluster'

// Long node timeout: the stopped primary stays primary.
const cluster = ownCluster({ nodeTimeoutMs: 60_000 })

describe('Cluster: tags with the index\'s primary stopped', () => {
  it('a tagged set whose index entry cannot be written does not write its key', async () => {
    const errors: string[] = []
    const logger = { error: (m: unknown) => errors.push(String(m)), warn: () => {}, info: () => {}, debug: () => {} }
    const c = new CacheService({ cluster: { nodes: cluster.seeds }, commandTimeoutMs: 300, logger })
    try {
      expect(await eventually(() => c.ping(), 10_000, 50)).toBe(true)
      const [tagHome, keyHome] = (await cluster.primaries()).map((p) => p.port)
      let i = 0
      while ((await cluster.primaryOf(`t:tg${i}`)) !== tagHome) i++
      const tag = `tg${i}`
      let j = 0
      while ((await cluster.primaryOf(`k${j}`)) !== keyHome) j++
      const key = `k${j}`
      // Both primaries in the map, connected.
      await c.set('warm', 1, 60, { tags: [tag] })
      await c.set(key, 'old', 60)
      cluster.pause(tagHome)
      try {
        await c.set(key, 'new', 600, { tags: [tag] })
        expect(await c.getOrSet(`${key}:gos`, async () => 'made', { ttl: 600, tags: [tag] })).toBe('made')
      } finally {
        await cluster.resume(tagHome)
      }
      expect(errors.some((e) => e.startsWith('Cache set error:')), errors.join('\n')).toBe(true)
      expect(await cluster.raw.get(key)).toBe('"old"')
      expect(await cluster.raw.exists(`${key}:gos`)).toBe(0)
      // Once the primary is back, tagged writes and invalidateTags work again.
      const back = await eventually(async () => (await c.set(key, 'again', 600, { tags: [tag] }), (await cluster.raw.get(key)) === '"again"'), 10_000, 100)
      expect(back).toBe(true)
      expect(await c.invalidateTags([tag])).toBe(2)
      expect(await cluster.raw.exists(key)).toBe(0)
    } finally {
      await c.close()
    }
  }, 60_000)
})
