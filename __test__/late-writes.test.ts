// Issue 8, defect 4: a call answered as failed is never executed later. Calls
// queued behind a long invalidatePattern (a SCAN over a big keyspace) time
// out while the SCAN runs; none of them may be sent after its deadline, or a
// `set` answered as failed overwrites a newer value another client wrote.
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest'
import Redis from 'ioredis'
import { CacheService } from '../index.js'
import { startRedis, stopRedis, eventually, sleep, type RedisProcess } from './helpers/redis'

const TIMEOUT = 300
const KEYSPACE = 300_000

let server: RedisProcess
let raw: Redis
let admin: Redis
beforeAll(async () => {
  server = await startRedis(['--enable-debug-command', 'local'])
  raw = new Redis(server.port, '127.0.0.1')
  admin = new Redis(server.port, '127.0.0.1')
  await raw.call('DEBUG', 'POPULATE', String(KEYSPACE), 'fill')
})
afterAll(async () => {
  raw?.disconnect()
  admin?.disconnect()
  await stopRedis(server)
})

let cache: CacheService | undefined
afterEach(async () => {
  await cache?.close()
  cache = undefined
})

const nextTick = () => new Promise<void>((r) => process.nextTick(r))

interface SetCall {
  key: string
  mine: string
  took: number
  /** Answered at or past its deadline: the failure result of a set. */
  failed: boolean
  /** What another client wrote right after this set resolved. */
  newer: string
}

describe('writes queued behind a long invalidatePattern', () => {
  it('a set answered as failed (timed out) never lands after a newer write by another client', async () => {
    const logs: Array<{ message: string; meta: unknown }> = []
    const log = (message: string, meta?: unknown) => logs.push({ message: String(message), meta })
    cache = new CacheService({
      url: server.url,
      commandTimeoutMs: TIMEOUT,
      logger: { error: log, warn: log, info: () => {}, debug: () => {} },
    })
    const c = cache
    expect(await eventually(() => c.ping(), 5000, 50)).toBe(true)

    // Measure the SCAN alone, for the report (it must outlast TIMEOUT for the test to mean anything).
    let started = performance.now()
    await c.invalidatePattern('nomatch:*')
    const scanMs = performance.now() - started

    // Keep the executor busy with one call while the rest queue up behind it,
    // so the pattern and the sets are picked up together, as under load.
    const sleeping = admin.call('DEBUG', 'SLEEP', '0.15')
    await sleep(20)
    const busy = c.ping()
    await nextTick()

    const sets: SetCall[] = []
    const pending: Promise<unknown>[] = []
    const issue = (i: number) => {
      const call: SetCall = { key: `late:${i}`, mine: `mine:${i}`, took: 0, failed: false, newer: `newer:${i}` }
      sets.push(call)
      const t0 = performance.now()
      pending.push(
        c.set(call.key, call.mine).then(async () => {
          call.took = performance.now() - t0
          call.failed = call.took >= TIMEOUT - 5
          // Once a set has resolved, failed or not, nothing of it may land any more:
          // another client's write made now must be what Redis keeps.
          await raw.set(call.key, JSON.stringify(call.newer))
        }),
      )
    }
    started = performance.now()
    const pattern = c.invalidatePattern('nomatch:*')
    // Same tick as the pattern, then one set per tick after it.
    for (let i = 0; i < 5; i++) issue(i)
    for (let i = 5; i < 25; i++) {
      await nextTick()
      issue(i)
    }
    await Promise.all([busy, sleeping, pattern, ...pending])
    const patternMs = performance.now() - started
    // Whatever was still queued has had its chance to run.
    expect(await eventually(() => c.ping(), 5000, 20)).toBe(true)
    await sleep(100)

    const failed = sets.filter((s) => s.failed)
    const values = await raw.mget(...sets.map((s) => s.key))
    const late = sets.filter((s, i) => values[i] !== JSON.stringify(s.newer))
    const report =
      `SCAN of ${KEYSPACE} keys alone: ${scanMs.toFixed(0)} ms; pattern under test: ${patternMs.toFixed(0)} ms; ` +
      `${failed.length} of ${sets.length} sets answered at or past their deadline; ` +
      `${late.length} sets landed after they resolved (${late.filter((s) => s.failed).length} of them answered as failed): ` +
      late.map((s) => `${s.key}=${values[sets.indexOf(s)]} (took ${s.took.toFixed(0)} ms)`).join(', ')
    console.log(report)
    expect(late.length, report).toBe(0)
    // Sets answered past the deadline were failures, and the logger heard of them.
    if (failed.some((s) => s.took > TIMEOUT + 50)) expect(logs.length, report).toBeGreaterThan(0)
    // Reads agree with Redis afterwards.
    for (const [i, s] of sets.entries()) expect(JSON.stringify(await c.get(s.key))).toBe(values[i])
  }, 60_000)
})
