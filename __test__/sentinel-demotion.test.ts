// Issue 9, Sentinel: a master demoted behind the instance's back (no
// `+switch-master`: the roles are swapped by hand and the sentinels re-pointed
// with SENTINEL REMOVE / MONITOR) leads back to the sentinels:
// - idle, the heartbeat's ROLE check sees "slave" and reconnects to the master
//   the sentinels now name;
// - a write answered `READONLY` breaks the link at once (no waiting for the heartbeat).
// Either way L1 is emptied: a foreign write on the new master is seen.
import { describe, it, expect, afterEach } from 'vitest'
import { CacheService } from '../index.js'
import { ownSentinelGroup, MASTER_NAME } from './helpers/sentinel'
import { eventually } from './helpers/redis'

const group = ownSentinelGroup()

const open: CacheService[] = []
afterEach(async () => {
  for (const c of open.splice(0)) await c.close()
})

/** Makes `to` the master and `from` its replica, and points the sentinels at `to`, without any failover. */
async function demote(from: number, to: number, between?: () => Promise<void>) {
  for (let i = 0; i < 3; i++) await group.sentinel(i).call('SENTINEL', 'REMOVE', MASTER_NAME)
  await group.raw(to).call('REPLICAOF', 'NO', 'ONE')
  await group.raw(from).call('REPLICAOF', '127.0.0.1', String(to))
  if (between) await between()
  for (let i = 0; i < 3; i++) {
    await group.sentinel(i).call('SENTINEL', 'MONITOR', MASTER_NAME, '127.0.0.1', String(to), '2')
    await group.sentinel(i).call('SENTINEL', 'SET', MASTER_NAME, 'down-after-milliseconds', '1000', 'failover-timeout', '5000')
  }
}

/** Whether node `port` serves a client with tracking on (this instance's link). */
async function tracked(port: number) {
  const list = (await group.raw(port).call('CLIENT', 'LIST')) as string
  return list.split('\n').some((line) => / flags=[A-Za-z]*t/.test(line))
}

interface Logged {
  message: string
  code?: string
}

function cache() {
  const logs: Logged[] = []
  const at = (message: string, meta?: { code?: string }) => logs.push({ message, code: meta?.code })
  const c = new CacheService({
    sentinel: { sentinels: group.sentinels, name: group.name },
    logger: { error: at, warn: at, info: at, debug: at },
  })
  open.push(c)
  return { c, logs }
}

async function heldInL1(c: CacheService, key: string, value: unknown) {
  expect(await c.get(key)).toEqual(value)
  expect(await c.get(key)).toEqual(value) // L1 fills on a key's second read
  const hits = c.stats().local.hits
  expect(await c.get(key)).toEqual(value)
  expect(c.stats().local.hits, `${key} should be served from L1`).toBe(hits + 1)
}

describe('a demoted master leads back to the sentinels', () => {
  it('idle: the heartbeat sees ROLE slave and the instance moves to the master the sentinels name', async () => {
    const { c, logs } = cache()
    expect(await eventually(() => c.ping(), 10_000, 50)).toBe(true)
    const oldPort = await group.masterPort()
    const newPort = group.nodes.find((n) => n.port !== oldPort)!.port
    expect(await tracked(oldPort)).toBe(true)
    await group.raw(oldPort).set('dm:k', JSON.stringify('before'))
    await heldInL1(c, 'dm:k', 'before')
    const reconnects = c.stats().redis.reconnects

    await demote(oldPort, newPort)
    // No call meanwhile: only the instance's own checks can notice.
    expect(await eventually(() => tracked(newPort), 5000, 20), 'never moved to the new master').toBe(true)
    expect(c.stats().redis.reconnects).toBeGreaterThan(reconnects)

    await c.set('dm:after', 1)
    // Logs reach the logger when calls settle.
    expect(logs.some((l) => l.message.includes('reports itself a replica'))).toBe(true)
    expect(await group.raw(newPort).get('dm:after')).toBe('1')
    await group.raw(newPort).set('dm:k', JSON.stringify('after'))
    expect(await eventually(async () => (await c.get('dm:k')) === 'after', 100, 5)).toBe(true)
  })

  it('a READONLY reply breaks the link at once; the instance then writes to the new master', async () => {
    const { c, logs } = cache()
    expect(await eventually(() => c.ping(), 10_000, 50)).toBe(true)
    const oldPort = await group.masterPort()
    const newPort = group.nodes.find((n) => n.port !== oldPort)!.port
    expect(await eventually(() => tracked(oldPort), 2000)).toBe(true)

    let connectedAfterReadonly: boolean | undefined
    await demote(oldPort, newPort, async () => {
      // Sent right after the demotion, before any heartbeat can see it.
      await c.set('ro:k', 1)
      connectedAfterReadonly = c.stats().redis.connected
    })
    expect(logs.some((l) => /ReadOnly|READONLY/.test(l.message) && l.code === 'ERR_CACHE_UNAVAILABLE')).toBe(true)
    expect(connectedAfterReadonly, 'the READONLY reply did not break the link').toBe(false)
    expect(await group.raw(oldPort).get('ro:k')).toBeNull()

    let landed = false
    for (let n = 0; n < 200 && !landed; n++) {
      await c.set('ro:after', n)
      landed = (await group.raw(newPort).get('ro:after')) === String(n)
      if (!landed) await new Promise((r) => setTimeout(r, 25))
    }
    expect(landed, 'never wrote to the new master').toBe(true)
  })
})
