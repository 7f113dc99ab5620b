// Issue 9, Sentinel: the master killed (SIGKILL) under load. The sentinels
// promote the replica after down-after-milliseconds (1000 here); meanwhile every
// call settles within commandTimeoutMs (plus a margin) with its failure result,
// and the instance moves to the new master by itself. The recovery time is printed.
// This group's sentinels and data nodes require passwords: `sentinel.password`
// authenticates to the sentinels, the top-level `password` to the master.
import { describe, it, expect, afterEach } from 'vitest'
import { CacheService } from '../index.js'
import { ownSentinelGroup, watchSwitch, loadLoops, writesReachNewMaster } from './helpers/sentinel'
import { eventually, sleep } from './helpers/redis'

const TIMEOUT = 1000
const MARGIN = 500

const SENTINEL_PASSWORD = 'sentinel-secret'
const MASTER_PASSWORD = 'master-secret'
const group = ownSentinelGroup({ sentinelPassword: SENTINEL_PASSWORD, masterPassword: MASTER_PASSWORD })

const open: { close(): unknown }[] = []
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c.close()
})

describe('passwords', () => {
  it('a wrong sentinel password: failure results within the bound and the reason logged; the right ones connect', async () => {
    const messages: string[] = []
    const log = (m: string) => messages.push(m)
    const wrong = new CacheService({
      sentinel: { sentinels: group.sentinels, name: group.name, password: 'nope' },
      password: MASTER_PASSWORD,
      commandTimeoutMs: 300,
      logger: { error: log, warn: log, info: log, debug: log },
    })
    open.push(wrong)
    const started = Date.now()
    expect(await wrong.ping()).toBe(false)
    expect(await wrong.get('k')).toBeNull()
    expect(Date.now() - started).toBeLessThan(2 * (300 + 500))
    expect(await eventually(async () => (await wrong.ping(), messages.some((m) => /WRONGPASS|invalid password|AuthenticationFailed/i.test(m))), 3000, 50), messages.join('\n')).toBe(true)

    const noMasterPassword = new CacheService({ sentinel: { sentinels: group.sentinels, name: group.name, password: SENTINEL_PASSWORD }, commandTimeoutMs: 300, logger: false })
    open.push(noMasterPassword)
    expect(await noMasterPassword.ping()).toBe(false)

    const right = new CacheService({ sentinel: { sentinels: group.sentinels, name: group.name, password: SENTINEL_PASSWORD }, password: MASTER_PASSWORD, logger: false })
    open.push(right)
    expect(await eventually(() => right.ping(), 10_000, 50)).toBe(true)
  })
})

describe('the master killed under load', () => {
  it('calls settle within the bound while no master is there; the instance moves to the promoted replica', async () => {
    const c = new CacheService({
      sentinel: { sentinels: group.sentinels, name: group.name, password: SENTINEL_PASSWORD },
      password: MASTER_PASSWORD,
      commandTimeoutMs: TIMEOUT,
      logger: false,
    })
    open.push(c)
    expect(await eventually(() => c.ping(), 10_000, 50)).toBe(true)
    const oldPort = await group.masterPort()
    const old = group.nodes.find((n) => n.port === oldPort)!
    const newPort = group.nodes.find((n) => n.port !== oldPort)!.port
    const newRaw = group.raw(newPort)
    await c.set('kill:l1', 'before')
    expect(await eventually(async () => (await newRaw.get('kill:l1')) === '"before"', 2000)).toBe(true)
    expect(await c.get('kill:l1')).toBe('before')

    const sw = await watchSwitch(group.sentinels[0], SENTINEL_PASSWORD)
    open.push(sw)

    const load = loadLoops(4, async (timed, w, i) => {
      await timed(c.set(`kl:${w}:${i % 50}`, i))
      await timed(c.get(`kl:${w}:${(i * 7) % 50}`))
      // Calls failing fast must not spin the event loop.
      await sleep(1)
    })
    open.push(load)
    await sleep(200)

    const killedAt = Date.now()
    old.signal('SIGKILL')
    const recoveredAt = await writesReachNewMaster(c, newRaw, 'kill:probe', 30_000)
    expect(recoveredAt, 'never wrote to the new master').toBeGreaterThan(0)
    // The watched sentinel may announce the switch after the instance got there
    // (it learns the new config from the sentinel that led the failover).
    expect(await eventually(() => sw.at > 0, 5000, 10), 'no +switch-master announced').toBe(true)

    // L1 was emptied with the lost link: a foreign write on the new master is seen.
    await newRaw.set('kill:l1', JSON.stringify('after'))
    expect(await eventually(async () => (await c.get('kill:l1')) === 'after', 100, 5)).toBe(true)

    await sleep(300)
    await load.stop()
    console.log(
      `master killed: writes land on the new master ${recoveredAt - killedAt} ms after SIGKILL, ` +
        `${recoveredAt - sw.at} ms after +switch-master (announced ${sw.at - killedAt} ms after SIGKILL); ` +
        `slowest of ${load.calls} calls under load: ${load.slowest} ms`,
    )
    expect(load.slowest).toBeLessThan(TIMEOUT + MARGIN)
    expect(recoveredAt - sw.at).toBeLessThan(2000)
    expect(c.stats().redis.connected).toBe(true)
  })
})
