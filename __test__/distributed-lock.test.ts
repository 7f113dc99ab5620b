// getOrSet(…, { lock: 'distributed' }): one factory run across processes.
// Each child process (fixtures/lock-child.cjs) has its own CacheService
// against one private redis-server; the factory counts its runs with INCR.
import { describe, it, expect, afterEach } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { CacheService } from '../index.js'
import { ownRedis } from './helpers/own-redis'
import { sleep } from './helpers/redis'

type Answer = { value: { from: number; doneAt: number }; at: number }
type Report = { answers: Answer[]; lockWaits: number; factoryRuns: number }

const redis = ownRedis()
const children: ChildProcess[] = []
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  await redis.raw.flushall()
})

/** A child process with `callers` concurrent calls; resolves once it is connected and waits for `go()`. */
function child(key: string, callers: number, factoryMs: number, local: 'on' | 'off' = 'on') {
  const proc = spawn(process.execPath, [join(__dirname, 'fixtures', 'lock-child.cjs'), redis.server.url, key, String(callers), String(factoryMs), local], {
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  children.push(proc)
  let out = ''
  let err = ''
  const lines: string[] = []
  const waiters: Array<() => void> = []
  proc.stdout.on('data', (d) => {
    out += d
    const parts = out.split('\n')
    out = parts.pop() ?? ''
    lines.push(...parts)
    for (const w of waiters.splice(0)) w()
  })
  proc.stderr.on('data', (d) => (err += d))
  proc.once('exit', () => setImmediate(() => waiters.splice(0).forEach((w) => w())))
  const line = (test: (l: string) => boolean) => {
    const found = new Promise<string>((resolve, reject) => {
      const look = () => {
        const hit = lines.find(test)
        if (hit !== undefined) return resolve(hit)
        if (proc.exitCode !== null || proc.signalCode !== null) return reject(new Error(`child exited: ${err}`))
        waiters.push(look)
      }
      look()
    })
    // Lines a test does not wait for must not turn a child's exit into an unhandled rejection.
    found.catch(() => {})
    return found
  }
  const report = line((l) => l.startsWith('{"answers"')).then((l) => JSON.parse(l) as Report)
  report.catch(() => {})
  return {
    proc,
    ready: line((l) => l === 'ready'),
    factoryStarted: line((l) => l.includes('factoryStarted')),
    report,
    exited: new Promise<number | null>((resolve) => proc.once('exit', resolve)),
    go: () => proc.stdin.end('go\n'),
  }
}

async function stampede(key: string, factoryMs: number, local: 'on' | 'off') {
  const procs = [0, 1, 2, 3].map(() => child(key, 100, factoryMs, local))
  await Promise.all(procs.map((p) => p.ready))
  procs.forEach((p) => p.go())
  const reports = await Promise.all(procs.map((p) => p.report))
  expect(await Promise.all(procs.map((p) => p.exited))).toEqual([0, 0, 0, 0])
  return reports
}

describe.each(['on', 'off'] as const)('L1 %s', (local) => {
  it('4 processes × 100 concurrent callers on a missing key run the factory once; all get its value', async () => {
    const reports = await stampede('hot', 300, local)
    expect(await redis.raw.get('runs:hot')).toBe('1')
    const values = new Set(reports.flatMap((r) => r.answers.map((a) => JSON.stringify(a.value))))
    expect(values.size).toBe(1)
    expect(reports.flatMap((r) => r.answers)).toHaveLength(400)
    expect(reports.reduce((n, r) => n + r.factoryRuns, 0)).toBe(1)
    // The three processes that did not hold the lease waited, once per process (their callers joined in-process).
    expect(reports.map((r) => r.lockWaits).sort()).toEqual([0, 1, 1, 1])
    // Nothing left behind but the value (and the test's counter).
    expect(await redis.raw.exists('hot:__lock')).toBe(0)
    expect((await redis.raw.keys('*')).sort()).toEqual(['hot', 'runs:hot'])
  }, 30_000)
})

it('waiters are woken by the tracking invalidation of the key, not by their next poll', async () => {
  // The factory ends ~1.9 s in: a waiter relying on its poll (50 ms doubling to 500 ms)
  // would next look at ~2.25 s, hundreds of milliseconds after the value was written.
  const reports = await stampede('slow', 1900, 'on')
  expect(await redis.raw.get('runs:slow')).toBe('1')
  const lags = reports.filter((r) => r.lockWaits === 1).flatMap((r) => r.answers.map((a) => a.at - a.value.doneAt))
  expect(lags).toHaveLength(300)
  expect(Math.max(...lags)).toBeLessThan(100)
}, 30_000)

it('a factory that outlasts the lease keeps it: the holder renews it, nobody takes over', async () => {
  const procs = [child('long', 10, 4500), child('long', 10, 10)]
  await Promise.all(procs.map((p) => p.ready))
  procs[0].go()
  await procs[0].factoryStarted
  procs[1].go()
  const reports = await Promise.all(procs.map((p) => p.report))
  expect(await redis.raw.get('runs:long')).toBe('1')
  expect(new Set(reports.flatMap((r) => r.answers.map((a) => a.value.from)))).toEqual(new Set([procs[0].proc.pid]))
}, 30_000)

it('a lease holder killed mid-factory: another process takes over once the lease expires', async () => {
  const holder = child('orphan', 10, 60_000)
  await holder.ready
  holder.go()
  await holder.factoryStarted
  expect(await redis.raw.exists('orphan:__lock')).toBe(1)
  const other = child('orphan', 10, 100)
  await other.ready
  other.go()
  await sleep(300)
  const killedAt = Date.now()
  const leaseLeft = await redis.raw.pttl('orphan:__lock')
  holder.proc.kill('SIGKILL')
  const report = await other.report
  // The survivor ran its own factory, after the orphaned lease ran out, not before.
  expect(await redis.raw.get('runs:orphan')).toBe('2')
  expect(report.factoryRuns).toBe(1)
  expect(report.lockWaits).toBe(1)
  expect(new Set(report.answers.map((a) => a.value.from))).toEqual(new Set([other.proc.pid]))
  expect(report.answers[0].value.doneAt - killedAt).toBeGreaterThanOrEqual(leaseLeft - 50)
  expect(report.answers[0].value.doneAt - killedAt).toBeLessThan(leaseLeft + 1500)
  expect(await redis.raw.exists('orphan:__lock')).toBe(0)
}, 30_000)

it("the main key's bytes and TTL are exactly what set writes; the lock key is gone", async () => {
  const c = new CacheService({ url: redis.server.url, logger: false })
  try {
    const value = { name: 'Ünïcode \u2028', n: 1.5e-7, list: [0, false, ''] }
    await c.getOrSet('wire', async () => value, { ttl: 42, lock: 'distributed' })
    await c.set('wire:by-set', value, 42)
    expect(await redis.raw.getBuffer('wire')).toEqual(await redis.raw.getBuffer('wire:by-set'))
    expect(await redis.raw.get('wire')).toBe(JSON.stringify(value))
    const [a, b] = await Promise.all([redis.raw.pttl('wire'), redis.raw.pttl('wire:by-set')])
    expect(a).toBeGreaterThan(41_000)
    expect(a).toBeLessThanOrEqual(42_000)
    expect(Math.abs(a - b)).toBeLessThan(500)
    expect(await redis.raw.exists('wire:__lock')).toBe(0)
    expect(c.metrics()).toMatch(/^native_cache_getorset_lock_waits_total 0$/m)
  } finally {
    await c.close()
  }
})

it('a lease held elsewhere with timeout.hard: the wait ends there, with the fail-safe copy or a run of its own', async () => {
  const c = new CacheService({ url: redis.server.url, logger: false })
  try {
    await redis.raw.set('held:__lock', 'someone-else', 'PX', 60_000)
    let runs = 0
    const started = Date.now()
    const v = await c.getOrSet('held', async () => ++runs, { ttl: 10, lock: 'distributed', timeout: { hard: 400 } })
    expect(v).toBe(1)
    expect(Date.now() - started).toBeGreaterThanOrEqual(400)
    expect(Date.now() - started).toBeLessThan(1500)
    expect(c.stats().lockWaits).toBe(1)
    // Its lease was never taken: the other holder's token is untouched.
    expect(await redis.raw.get('held:__lock')).toBe('someone-else')
    // With a fail-safe copy: the copy answers at timeout.hard.
    await redis.raw.del('held')
    const copy = await c.getOrSet('held', async () => ++runs, { ttl: 10, grace: 60, lock: 'distributed', timeout: { hard: 300 } })
    expect(copy).toBe(2)
    await redis.raw.del('held')
    expect(await c.getOrSet('held', async () => ++runs, { ttl: 10, grace: 60, lock: 'distributed', timeout: { hard: 300 } })).toBe(2)
    expect(c.stats().failsafe).toBe(1)
  } finally {
    await c.close()
  }
})

it('Redis down during the lock: no hang; the fail-safe copy, else the factory', async () => {
  const c = new CacheService({ url: redis.server.url, logger: false, commandTimeoutMs: 300 })
  try {
    expect(await c.getOrSet('down', async () => 'v1', { ttl: 0.2, grace: 60, lock: 'distributed' })).toBe('v1')
    await sleep(300)
    redis.server.signal('SIGSTOP')
    const started = Date.now()
    expect(await c.getOrSet('down', async () => 'v2', { ttl: 10, grace: 60, lock: 'distributed' })).toBe('v1')
    expect(await c.getOrSet('down2', async () => 'fresh', { ttl: 10, lock: 'distributed' })).toBe('fresh')
    expect(Date.now() - started).toBeLessThan(2000)
  } finally {
    redis.server.signal('SIGCONT')
    await c.close()
  }
})

it("'memory' mode: the in-process single flight", async () => {
  const c = new CacheService({ mode: 'memory', logger: false })
  let runs = 0
  const all = await Promise.all(
    Array.from({ length: 50 }, () => c.getOrSet('m', async () => (await sleep(20), ++runs), { lock: 'distributed' })),
  )
  expect(new Set(all)).toEqual(new Set([1]))
  expect(runs).toBe(1)
  expect(c.stats().lockWaits).toBe(0)
  await c.close()
})

it('close() while holding the lease releases it: a waiter elsewhere does not wait out the 3 s lease', async () => {
  const holder = new CacheService({ url: redis.server.url, logger: false })
  const waiter = new CacheService({ url: redis.server.url, logger: false })
  try {
    let started = false
    const held = holder.getOrSet('closing', () => ((started = true), new Promise(() => {})), { ttl: 10, lock: 'distributed' })
    held.catch(() => {})
    for (let i = 0; i < 200 && !started; i++) await sleep(5)
    expect(started).toBe(true)
    expect(await redis.raw.exists('closing:__lock')).toBe(1)
    await holder.close()
    const t0 = performance.now()
    expect(await waiter.getOrSet('closing', async () => 'mine', { ttl: 10, lock: 'distributed' })).toBe('mine')
    expect(performance.now() - t0).toBeLessThan(1500)
  } finally {
    await holder.close()
    await waiter.close()
  }
})
