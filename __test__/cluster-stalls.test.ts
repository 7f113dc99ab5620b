// A Redis Cluster whose primaries stay primaries while stopped or dead
// (cluster-node-timeout 60 s: no replica takes over during a test), so what
// the instance does about a node that is gone is seen apart from failover:
// L1 stays coherent across a rebuilt cluster connection, and `ping()` tells a
// dead primary. CLUSTER_DEBUG=1 prints the instance's log lines.
import { describe, it, expect } from 'vitest'
import { CacheService } from '../index.js'
import { ownCluster } from './helpers/cluster'
import { eventually, sleep } from './helpers/redis'

const cluster = ownCluster({ nodeTimeoutMs: 60_000 })
const T0 = Date.now()

/** A logger that keeps every line (and prints it with CLUSTER_DEBUG=1). */
function keptLogs() {
  const lines: string[] = []
  const keep = (m: unknown) => {
    lines.push(String(m))
    if (process.env.CLUSTER_DEBUG) console.log(Date.now() - T0, String(m))
  }
  return { lines, logger: { error: keep, warn: keep, info: keep, debug: keep } }
}

/** A key whose slot the primary on `port` serves. */
async function keyOn(port: number, prefix: string): Promise<string> {
  for (let i = 0; ; i++) if ((await cluster.primaryOf(`${prefix}:${i}`)) === port) return `${prefix}:${i}`
}

describe('cluster: a primary stopped or dead without failover', () => {
  // The heartbeat replaces a cluster connection whose primaries keep failing
  // to answer. What L1 took in through the old connection was tracked there
  // only: the replacement must empty it, or a later write on a healthy
  // primary is never seen (the old connection's invalidations no longer come).
  it('L1 filled through a cluster connection that is then replaced is emptied: a foreign write is seen', async () => {
    const { lines, logger } = keptLogs()
    const cache = new CacheService({ cluster: { nodes: cluster.seeds }, commandTimeoutMs: 300, logger })
    const [stopped, healthy] = await cluster.primaries()
    const key = await keyOn(healthy.port, 'rebuilt')
    const other = await keyOn(healthy.port, 'poll')
    try {
      await cache.set(key, 'old', 60)
      expect(await cache.get(key)).toBe('old')
      cluster.pause(stopped.port)
      try {
        // Each failed heartbeat empties L1; reads in between fill it again,
        // through the connection about to be replaced, until it is. (A call
        // on another key brings the log lines in: no read of `key` goes
        // through the new connection, which would track it there.)
        const rebuilt = await eventually(async () => {
          await cache.exists(other)
          if (lines.some((l) => /rebuilt/.test(l))) return true
          await cache.get(key)
          await cache.get(key)
          await sleep(100)
          return false
        }, 10_000, 0)
        expect(rebuilt, 'the cluster connection was rebuilt').toBe(true)
      } finally {
        await cluster.resume(stopped.port)
      }
      // Every primary answers again: L1 serves (the heartbeat proves the link).
      await cluster.settled()
      await sleep(1000)
      await cluster.node(healthy.port).set(key, '"new"', 'EX', 60)
      const seen = await eventually(async () => (await cache.get(key)) === 'new', 2000, 10)
      expect(seen, `${key} still served as 'old' 2 s after a foreign write on its (healthy) primary`).toBe(true)
    } finally {
      await cache.close()
    }
  })

  it('ping() answers false within half a second of a primary being killed', async () => {
    const cache = new CacheService({ cluster: { nodes: cluster.seeds }, commandTimeoutMs: 300, logger: false })
    const [victim] = await cluster.primaries()
    try {
      expect(await eventually(() => cache.ping(), 5000, 50)).toBe(true)
      cluster.kill(victim.port)
      await sleep(500)
      const answers: boolean[] = []
      for (let i = 0; i < 5; i++) {
        answers.push(await cache.ping())
        await sleep(50)
      }
      expect(answers, 'ping() while a primary is dead (none of its slots is served)').toEqual([false, false, false, false, false])
      await cluster.restart(victim.port)
      await cluster.settled()
      expect(await eventually(() => cache.ping(), 5000, 50), 'ping() once the primary is back').toBe(true)
    } finally {
      await cache.close()
      await cluster.restart(victim.port)
      await cluster.settled()
    }
  })
})
