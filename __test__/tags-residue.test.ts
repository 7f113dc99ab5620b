// Tag bookkeeping leaves no unbounded residue in Redis (docs/tags.md): an
// index whose keys all expired goes by itself (its own TTL), and a live
// index drops its expired members on the next tagged write.
import { describe, it, expect } from 'vitest'
import { CacheService } from '../index.js'
import { TAG_INDEX_PREFIX, TAG_SLACK_MS } from '../native.js'
import { sleep } from './helpers/redis'
import { ownRedis } from './helpers/own-redis'

const redis = ownRedis()
const TTL_MS = 200
const SETS = 2000

/** The index keys in Redis and their members. */
async function indexes(): Promise<{ keys: number; members: number }> {
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, found] = await redis.raw.scan(cursor, 'MATCH', `${TAG_INDEX_PREFIX}*`, 'COUNT', 1000)
    keys.push(...found)
    cursor = next
  } while (cursor !== '0')
  let members = 0
  for (const k of keys) members += await redis.raw.zcard(k)
  return { keys: keys.length, members }
}

async function tagged(c: CacheService, prefix: string, tags: string[], n: number, ttlSeconds: number) {
  for (let i = 0; i < n; i += 200) {
    const batch = Array.from({ length: Math.min(200, n - i) }, (_, j) => c.set(`${prefix}:${i + j}`, i + j, ttlSeconds, { tags }))
    await Promise.all(batch)
  }
}

describe('tag bookkeeping residue', () => {
  it(`${SETS} tagged sets with a ${TTL_MS} ms ttl: once they expired, nothing of their indexes is left`, async () => {
    const c = new CacheService({ url: redis.server.url, logger: false })
    try {
      await redis.raw.flushdb()
      await tagged(c, 'gone', ['residue-a', 'residue-b'], SETS, TTL_MS / 1000)
      expect(await indexes()).toEqual({ keys: 2, members: 2 * SETS })
      await sleep(TTL_MS + TAG_SLACK_MS + 300)
      expect(await redis.raw.dbsize()).toBe(0)
      expect(await indexes()).toEqual({ keys: 0, members: 0 })
    } finally {
      await c.close()
    }
  })

  it('a live index drops its expired members on the next tagged write', async () => {
    const c = new CacheService({ url: redis.server.url, logger: false })
    try {
      await redis.raw.flushdb()
      // A long-lived key keeps the index alive past the short ones.
      await c.set('anchor', 0, 60, { tags: ['residue-live'] })
      await tagged(c, 'short', ['residue-live'], SETS, TTL_MS / 1000)
      await sleep(TTL_MS + TAG_SLACK_MS + 100)
      await c.set('long', 1, 60, { tags: ['residue-live'] })
      expect(await indexes()).toEqual({ keys: 1, members: 2 })
      expect(await c.invalidateTags(['residue-live'])).toBe(2)
      expect(await indexes()).toEqual({ keys: 0, members: 0 })
    } finally {
      await c.close()
    }
  })
})
