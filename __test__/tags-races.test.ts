// invalidateTags under races and failures (docs/tags.md): two calls on one
// tag at once both resolve only once its keys are gone; a call that failed
// leaves its keys to the next call; a getOrSet write-back that lost does not
// shorten the winner's index entry.
import { describe, it, expect } from 'vitest'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { CacheService } from '../index.js'
import { TAG_INDEX_PREFIX, TAG_SLACK_MS } from '../native.js'
import { eventually, sleep } from './helpers/redis'
import { ownRedis } from './helpers/own-redis'

const redis = ownRedis()

async function fill(c: CacheService, prefix: string, tag: string, n: number): Promise<string[]> {
  const keys = Array.from({ length: n }, (_, i) => `${prefix}:${i}`)
  for (let i = 0; i < n; i += 500) await Promise.all(keys.slice(i, i + 500).map((k, j) => c.set(k, i + j, 600, { tags: [tag] })))
  return keys
}

describe('invalidateTags races', () => {
  it('two calls on one tag at once: neither resolves while a key is left; together they count every key once', async () => {
    const a = new CacheService({ url: redis.server.url, logger: false })
    const b = new CacheService({ url: redis.server.url, logger: false })
    try {
      const keys = await fill(a, 'conc', 'conc-t', 10_000)
      const pa = a.invalidateTags(['conc-t'])
      const pb = b.invalidateTags(['conc-t'])
      // Whichever resolves first: one EXISTS of every key, at once.
      await Promise.race([pa, pb])
      expect(await redis.raw.exists(...keys)).toBe(0)
      const [na, nb] = await Promise.all([pa, pb])
      expect(na + nb).toBe(keys.length)
      expect(await redis.raw.keys(`${TAG_INDEX_PREFIX}*`)).toEqual([])
    } finally {
      await a.close()
      await b.close()
    }
  })

  it('a call that timed out (Redis busy) resolves 0; a later call deletes the keys', async () => {
    const c = new CacheService({ url: redis.server.url, commandTimeoutMs: 200, logger: false })
    try {
      const keys = await fill(c, 'busy', 'busy-t', 50)
      // A raw client's Lua script holds Redis for 600 ms; the call's commands wait behind it.
      const busy = redis.raw.eval("local t = redis.call('TIME') local s = t[1] + t[2] / 1e6 while true do local u = redis.call('TIME') if u[1] + u[2] / 1e6 - s > 0.6 then break end end return 1", 0)
      await sleep(20)
      expect(await c.invalidateTags(['busy-t'])).toBe(0)
      await busy
      // The failure may have cut the connection: a call made while it reconnects fails too.
      let deleted = 0
      expect(await eventually(async () => (deleted = await c.invalidateTags(['busy-t'])) > 0, 5000, 50)).toBe(true)
      expect(deleted).toBe(keys.length)
      expect(await redis.raw.exists(...keys)).toBe(0)
    } finally {
      await c.close()
    }
  })

  it('a getOrSet write-back that lost keeps the winner\'s longer entry: invalidateTags deletes the winner', async () => {
    const a = new CacheService({ url: redis.server.url, logger: false, local: false })
    try {
      let release!: () => void
      const gate = new Promise<void>((res) => (release = res))
      const loser = a.getOrSet('lose:k', async () => (await gate, 'loser'), { ttl: 0.2, tags: ['lose-t'] })
      await sleep(50)
      // A tagged write by another process, resolved before the write-back.
      const script = `const { CacheService } = require(${JSON.stringify(join(__dirname, '..', 'index.js'))})
        const c = new CacheService({ url: ${JSON.stringify(redis.server.url)}, logger: false })
        c.set('lose:k', 'winner', 600, { tags: ['lose-t'] }).then(() => c.close())`
      await new Promise<void>((res, rej) => execFile(process.execPath, ['-e', script], (e) => (e ? rej(e) : res())))
      release()
      expect(await loser).toBe('loser')
      expect(await redis.raw.get('lose:k')).toBe('"winner"')
      // Past the loser's ttl + slack: its score would have dropped the entry.
      await sleep(200 + TAG_SLACK_MS + 200)
      expect(await a.invalidateTags(['lose-t'])).toBe(1)
      expect(await redis.raw.get('lose:k')).toBeNull()
    } finally {
      await a.close()
    }
  })
})
