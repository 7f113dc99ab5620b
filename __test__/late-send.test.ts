// A call answered as failed is never executed later (SPEC, faults), also when
// its bytes could not be written in time: Redis stops reading (SIGSTOP here; a
// partition or a swamped server alike) while a 32 MB value is being written,
// and the calls behind it wait in the client's write buffer. When their callers
// have been answered "timed out", none of it may reach Redis once it reads again.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import Redis from 'ioredis'
import { CacheService } from '../index.js'
import { startRedis, stopRedis, eventually, sleep, type RedisProcess } from './helpers/redis'

const TIMEOUT = 300
const BIG = 'x'.repeat(32 * 1024 * 1024)

let server: RedisProcess
let raw: Redis
beforeAll(async () => {
  server = await startRedis()
  raw = new Redis(server.port, '127.0.0.1')
})
afterAll(async () => {
  raw?.disconnect()
  await stopRedis(server)
})

const turn = () => new Promise<void>((r) => setImmediate(r))

describe('calls stuck behind a write Redis does not read', () => {
  for (const attempt of [1, 2, 3]) {
    it(`none reaches Redis after its caller was answered, also with several rounds out (attempt ${attempt})`, async () => {
      const logs: string[] = []
      const log = (message: string) => logs.push(String(message))
      const cache = new CacheService({
        url: server.url,
        commandTimeoutMs: TIMEOUT,
        logger: { error: log, warn: log, info: () => {}, debug: () => {} },
      })
      expect(await eventually(() => cache.ping(), 5000, 50)).toBe(true)
      const prefix = `late:${attempt}`
      server.signal('SIGSTOP')
      // Every call is answered while Redis is stopped, so every one took its failure result.
      const pending: Promise<unknown>[] = []
      const issue = (key: string, value: unknown) => pending.push(cache.set(key, value, 60))
      try {
        issue(`${prefix}:big`, BIG)
        // Small sets over several turns: rounds handed to the connection behind the big one.
        for (let i = 0; i < 40; i++) {
          issue(`${prefix}:${i}`, i)
          if (i % 4 === 3) await turn()
        }
        await Promise.all(pending)
        await sleep(50)
      } finally {
        server.signal('SIGCONT')
      }
      // Redis reads whatever reached it; give it time to run all of it.
      await sleep(1000)
      const keys = [`${prefix}:big`, ...Array.from({ length: 40 }, (_, i) => `${prefix}:${i}`)]
      const exists = await Promise.all(keys.map((k) => raw.exists(k)))
      const late = keys.filter((_, i) => exists[i] === 1)
      expect(logs.join('\n'), 'the failures were reported').toMatch(/timed out|connection/i)
      expect(late, `sets answered as failed that still ran once Redis read again (${late.length} of ${keys.length})`).toEqual([])
      // And the instance recovers by itself.
      expect(
        await eventually(async () => (await cache.set(`${prefix}:after`, 1, 60), (await raw.get(`${prefix}:after`)) === '1'), 5000, 50),
      ).toBe(true)
      await cache.close()
    })
  }
})
