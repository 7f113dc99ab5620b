// Issue 8, defect 9: a very large call (a 400,000-key mget) on an open
// instance respects the bound (it succeeds, or resolves to its failure result
// within commandTimeoutMs plus a margin) and never makes concurrent calls fail
// as "closed": that code is for closed instances only. Error codes reach the
// logger's metadata and stats().redis.errorsByCode.
import { describe, it, expect } from 'vitest'
import { CacheService } from '../index.js'
import { ownRedis } from './helpers/own-redis'
import { eventually, sleep } from './helpers/redis'

const CODES = ['ERR_CACHE_TIMEOUT', 'ERR_CACHE_UNAVAILABLE', 'ERR_CACHE_SERVER', 'ERR_CACHE_PROTOCOL', 'ERR_CACHE_CLOSED']

const redis = ownRedis()

interface Logged {
  level: string
  message: string
  code?: string
}

/**
 * A 400,000-key mget while other calls are made every 10 ms, on an instance with `TIMEOUT` as
 * commandTimeoutMs; every call must settle within `TIMEOUT + MARGIN`.
 */
async function mgetAmongOthers(TIMEOUT: number, MARGIN: number) {
    const logs: Logged[] = []
    const push = (level: string) => (message: string, meta?: { code?: string }) =>
      logs.push({ level, message: String(message), code: meta?.code })
    const c = new CacheService({
      url: redis.server.url,
      commandTimeoutMs: TIMEOUT,
      local: { maxTtl: 3600 },
      logger: { error: push('error'), warn: push('warn'), info: () => {}, debug: () => {} },
    })
    try {
      expect(await eventually(() => c.ping(), 5000, 50)).toBe(true)
      const N = 400_000
      const keys = Array.from({ length: N }, (_, i) => `big:mget:${i}`)
      // Every 1000th key exists.
      const present = new Map<number, unknown>()
      const pipe = redis.raw.pipeline()
      for (let i = 0; i < N; i += 1000) {
        present.set(i, { i })
        pipe.set(keys[i], JSON.stringify({ i }))
      }
      await pipe.exec()
      await redis.raw.set('big:other', JSON.stringify('other'))

      // Other calls every 10 ms while the mget runs, each timed and checked.
      let running = true
      const others: Array<{ name: string; took: number; value: unknown; ok: boolean }> = []
      const background = (async () => {
        let i = 0
        const inFlight: Promise<void>[] = []
        while (running) {
          i += 1
          const n = i
          const timed = (name: string, call: () => Promise<unknown>, good: (v: unknown) => boolean) => {
            const started = performance.now()
            inFlight.push(
              call().then((value) => {
                others.push({ name, took: performance.now() - started, value, ok: good(value) })
              }),
            )
          }
          timed('get', () => c.get('big:other'), (v) => v === 'other' || v === null)
          timed('set', () => c.set(`big:set:${n}`, n), (v) => v === undefined)
          timed('ping', () => c.ping(), (v) => v === true || v === false)
          timed('exists', () => c.exists('big:other'), (v) => v === true || v === false)
          await sleep(10)
        }
        await Promise.all(inFlight)
      })()

      await sleep(50)
      // The call's synchronous part (checking and handing over 400,000 keys) blocks the
      // event loop before any deadline can start; it is measured and reported apart,
      // and the bound applies from the hand-over on.
      const started = performance.now()
      const pending = c.mget(keys)
      const syncMs = performance.now() - started
      const result = await pending
      const mgetMs = performance.now() - started - syncMs
      await sleep(300)
      running = false
      await background

      const closedLogs = logs.filter((l) => l.code === 'ERR_CACHE_CLOSED' || /closed/i.test(l.message))
      // Calls that were waiting while the event loop was blocked get that time on top.
      const slowOthers = others.filter((o) => o.took >= TIMEOUT + MARGIN + syncMs)
      const wrong = others.filter((o) => !o.ok)
      const report =
        `mget of ${N} keys: ${syncMs.toFixed(0)} ms synchronous, then ${mgetMs.toFixed(0)} ms to settle, ${result.length === 0 ? 'failure result []' : `${result.length} entries`}; ` +
        `${others.length} other calls, ${slowOthers.length} past the bound, slowest ${Math.max(...others.map((o) => o.took)).toFixed(0)} ms; ` +
        `logged: ${JSON.stringify([...new Set(logs.map((l) => `${l.code ?? '-'} ${l.message}`))].slice(0, 5))}`

      console.log(report)
      expect(closedLogs, report).toEqual([])
      expect(wrong, report).toEqual([])
      expect(slowOthers, report).toEqual([])
      expect(mgetMs, report).toBeLessThan(TIMEOUT + MARGIN)
      // Either every entry is right, or the failure result.
      if (result.length !== 0) {
        expect(result.length, report).toBe(N)
        let bad = 0
        for (let i = 0; i < N; i++) {
          const expected = present.get(i) ?? null
          if (JSON.stringify(result[i]) !== JSON.stringify(expected)) bad += 1
        }
        expect(bad, report).toBe(0)
      }
      // Every logged failure carries one of the stable codes.
      for (const l of logs) expect(CODES, `${l.message} (code ${l.code})`).toContain(l.code)
      const byCode = (c.stats().redis as unknown as { errorsByCode?: Record<string, number> }).errorsByCode
      expect(byCode, 'stats().redis.errorsByCode').toBeDefined()
      expect(byCode!.closed, report).toBe(0)

      // The instance is still open and works (once it has reconnected, should the mget have broken the link).
      expect(await eventually(() => c.ping(), 5000, 20)).toBe(true)
      await c.set('big:after', { fine: true })
      expect(await redis.raw.get('big:after')).toBe('{"fine":true}')
      expect(await c.get('big:after')).toEqual({ fine: true })
      return { result, byCode: byCode!, report }
    } finally {
      await c.close()
    }
}

describe('a 400,000-key mget among other calls', () => {
  it('other calls are never reported closed, and the mget settles within the bound with a correct result', async () => {
    // A 400,000-entry result is parsed on the JavaScript thread after it arrives; allow for it.
    await mgetAmongOthers(1000, 700)
  }, 60_000)

  // The round that carries the mget overruns the calls queued behind it: they
  // are answered as timed out (never "closed"), each by its own deadline.
  it('with commandTimeoutMs 50 the round overruns; queued calls time out by their own deadlines, none is reported closed', async () => {
    // Its failure result needs no parsing.
    const { result, byCode, report } = await mgetAmongOthers(50, 200)
    expect(byCode.timeout, `the round did not overrun: ${report}`).toBeGreaterThan(0)
    expect(result, report).toEqual([])
  }, 60_000)
})
