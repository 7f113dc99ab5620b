// The three topologies a guarantee is claimed for, each started for the
// calling test file, behind one interface so one test body runs on all of
// them: a single server, a Sentinel group (its master) and a Cluster (one of
// its primaries). The server that holds a test's keys can be stopped
// (SIGSTOP) and stays what it is meanwhile: no failover (Sentinel
// down-after 60 s, cluster-node-timeout 60 s).
import { beforeAll, afterAll } from 'vitest'
import Redis from 'ioredis'
import { startRedis, stopRedis, type RedisProcess } from './redis'
import { ownCluster } from './cluster'
import { ownSentinelGroup } from './sentinel'

export interface Topology {
  name: 'single server' | 'Sentinel' | 'Cluster'
  /** The connection options of a CacheService. */
  address(): { url: string } | { sentinel: { sentinels: string[]; name: string } } | { cluster: { nodes: string[] } }
  /** A key named after `name`, held by the server `stop` stops. */
  key(name: string): string
  /** A plain client on the server that holds the keys (a foreign writer). */
  server(): Redis
  /** SIGSTOPs the server that holds the keys. */
  stop(): void
  /** SIGCONTs it. */
  resume(): void
}

/** Every topology, started before the calling file's tests and stopped after them. */
export function ownTopologies(): Topology[] {
  let single: RedisProcess | undefined
  let singleRaw: Redis | undefined
  beforeAll(async () => {
    single = await startRedis()
    singleRaw = new Redis(single.port, '127.0.0.1')
  })
  afterAll(async () => {
    singleRaw?.disconnect()
    await stopRedis(single)
  })
  const group = ownSentinelGroup({ downAfterMs: 60_000 })
  let master = 0
  const cluster = ownCluster({ nodeTimeoutMs: 60_000 })
  let primary = { port: 0, tag: '' }
  beforeAll(async () => {
    master = await group.masterPort()
    const [p] = await cluster.primaries()
    let i = 0
    while ((await cluster.primaryOf(`{t${i}}`)) !== p.port) i++
    primary = { port: p.port, tag: `{t${i}}` }
  }, 90_000)
  const masterNode = () => group.nodes.find((n) => n.port === master)!
  const primaryNode = () => cluster.nodes.find((n) => n.port === primary.port)!
  return [
    {
      name: 'single server',
      address: () => ({ url: single!.url }),
      key: (name) => name,
      server: () => singleRaw!,
      stop: () => single!.signal('SIGSTOP'),
      resume: () => single!.signal('SIGCONT'),
    },
    {
      name: 'Sentinel',
      address: () => ({ sentinel: { sentinels: group.sentinels, name: group.name } }),
      key: (name) => name,
      server: () => group.raw(master),
      stop: () => masterNode().signal('SIGSTOP'),
      resume: () => masterNode().signal('SIGCONT'),
    },
    {
      name: 'Cluster',
      address: () => ({ cluster: { nodes: cluster.seeds } }),
      key: (name) => `${primary.tag}:${name}`,
      server: () => cluster.node(primary.port),
      stop: () => primaryNode().signal('SIGSTOP'),
      resume: () => primaryNode().signal('SIGCONT'),
    },
  ]
}
