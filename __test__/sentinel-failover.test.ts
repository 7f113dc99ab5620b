// Issue 9, Sentinel: `SENTINEL FAILOVER` under load. Every call settles within
// commandTimeoutMs (plus a margin); the instance follows `+switch-master` to the
// new master by itself, while the old one still says it is master (it accepts
// writes for ~10 s more), so nothing written after the switch is known lands on
// the old master; L1 is emptied, so a foreign write on the new master is seen.
// The sentinel the instance was listening to is killed first: the instance
// must listen to another one to learn of the switch in time.
// The recovery time is printed (the README quotes it).
import { describe, it, expect, afterEach } from 'vitest'
import { CacheService } from '../index.js'
import { ownSentinelGroup, watchSwitch, loadLoops, writesReachNewMaster } from './helpers/sentinel'
import { eventually, sleep } from './helpers/redis'

const TIMEOUT = 1000
const MARGIN = 500

const group = ownSentinelGroup()

const open: { close(): unknown }[] = []
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c.close()
})

describe('SENTINEL FAILOVER under load', () => {
  it('with the sentinel it listened to killed first: calls settle within the bound, the instance moves to the new master, no stale L1 read after the switch', async () => {
    // Sentinel 0 is the first the instance listens to; it is killed below, so the test uses sentinel 1.
    const S = 1
    const messages: string[] = []
    const log = (m: string) => messages.push(m)
    const c = new CacheService({
      sentinel: { sentinels: group.sentinels, name: group.name },
      commandTimeoutMs: TIMEOUT,
      logger: { error: log, warn: log, info: log, debug: log },
    })
    open.push(c)
    expect(await eventually(() => c.ping(), 10_000, 50)).toBe(true)
    const oldPort = await group.masterPort(S)
    const newPort = group.nodes.find((n) => n.port !== oldPort)!.port
    const oldRaw = group.raw(oldPort)
    const newRaw = group.raw(newPort)

    // A key held in L1 before the failover.
    await oldRaw.set('fo:l1', JSON.stringify('before'))
    expect(await c.get('fo:l1')).toBe('before')
    expect(await c.get('fo:l1')).toBe('before') // L1 fills on a key's second read
    const hits = c.stats().local.hits
    expect(await c.get('fo:l1')).toBe('before')
    expect(c.stats().local.hits).toBe(hits + 1)
    expect(await eventually(async () => (await newRaw.get('fo:l1')) !== null, 2000)).toBe(true)

    // The instance listens to sentinel 0 (the first named): kill it; the instance must
    // find another one to listen to (it tries the next after a second).
    await group.killSentinel(0)
    await sleep(2500)

    // When the sentinels announce the switch.
    const sw = await watchSwitch(group.sentinels[S])
    open.push(sw)

    // Load: 4 loops of set + get + mget, each call timed.
    const load = loadLoops(4, async (timed, w, i) => {
      await timed(c.set(`load:${w}:${i % 50}`, { w, i }))
      await timed(c.get(`load:${w}:${(i * 7) % 50}`))
      await timed(c.mget([`load:${w}:1`, `load:${w}:2`]))
    })
    open.push(load)
    await sleep(200)

    const failedOverAt = Date.now()
    await group.sentinel(S).call('SENTINEL', 'FAILOVER', group.name)
    // Recovered: a write through the instance lands on the new master, once it is
    // master (before that, it replicates what the old one takes).
    const recoveredAt = await writesReachNewMaster(c, newRaw, 'fo:probe', 20_000)
    expect(recoveredAt, 'never wrote to the new master').toBeGreaterThan(0)
    expect(sw.at, 'the sentinels announced no switch').toBeGreaterThan(0)
    // Followed the announcement: the old master still says it is master, so ROLE checks alone would not have moved it yet.
    const oldRole = ((await oldRaw.call('ROLE')) as unknown[])[0]

    // After the switch is known, writes land on the new master and not on the old one.
    await c.set('fo:after', 'x')
    expect(await newRaw.get('fo:after')).toBe('"x"')
    if (oldRole === 'master') expect(await oldRaw.get('fo:after')).toBeNull()

    // No stale L1 read: a foreign write on the new master is seen.
    await newRaw.set('fo:l1', JSON.stringify('after'))
    expect(await eventually(async () => (await c.get('fo:l1')) === 'after', 100, 5)).toBe(true)

    // The latency probe (a MULTI/EXEC about once a second) follows to the new master too.
    const execs = async () => Number(/cmdstat_exec:calls=(\d+)/.exec(await newRaw.info('commandstats'))?.[1] ?? 0)
    const execsBefore = await execs()
    expect(await eventually(async () => (await execs()) > execsBefore, 3000, 100), 'no probe reached the new master').toBe(true)

    await sleep(300)
    await load.stop()
    const loadAfter = await c.get('load:0:1')
    expect(loadAfter === null || typeof loadAfter === 'object').toBe(true)

    console.log(
      `SENTINEL FAILOVER: writes land on the new master ${recoveredAt - failedOverAt} ms after the command, ` +
        `${recoveredAt - sw.at} ms after +switch-master (announced ${sw.at - failedOverAt} ms after the command); ` +
        `old master's role then: ${String(oldRole)}; slowest of ${load.calls} calls under load: ${load.slowest} ms`,
    )
    expect(oldRole, 'the old master was demoted before the instance moved: +switch-master was not followed').toBe('master')
    expect(recoveredAt - sw.at).toBeLessThan(2000)
    expect(load.slowest).toBeLessThan(TIMEOUT + MARGIN)
    expect(c.stats().redis.connected).toBe(true)
    expect(messages.some((m) => m.includes('Sentinel switched the master'))).toBe(true)
  })
})
