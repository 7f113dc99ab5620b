// The three topologies a guarantee is claimed for, each started for the
// calling test file, behind one interface so one test body runs on all of
// them: a single server, a Sentinel group (its master) and a Cluster (one of
// its primaries). The server that holds a test's keys can be stopped
// (SIGSTOP) and stays what it is meanwhile: no failover (Sentinel
// down-after 60 s, cluster-node-timeout 60 s). With `proxied`, everything
// reaches that server through a TCP proxy (`link`) but the test's own plain
// client (`server()`), so the link can fall silent while the server runs on.
import { beforeAll, afterAll } from 'vitest'
import Redis from 'ioredis'
import { startRedis, stopRedis, type RedisProcess } from './redis'
import { ownCluster } from './cluster'
import { ownSentinelGroup } from './sentinel'
import { startProxy, type TcpProxy } from './proxy'

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
  /** With `proxied`: the proxy every client but `server()` reaches that server through. */
  link(): TcpProxy
}

export interface TopologyOptions {
  /** Clients reach the keys' server through a proxy (`link()`). */
  proxied?: boolean
}

/** Every topology, started before the calling file's tests and stopped after them. */
export function ownTopologies(options: TopologyOptions = {}): Topology[] {
  const proxied = options.proxied ?? false
  let single: RedisProcess | undefined
  let singleRaw: Redis | undefined
  let singleLink: TcpProxy | undefined
  beforeAll(async () => {
    single = await startRedis()
    singleRaw = new Redis(single.port, '127.0.0.1')
    if (proxied) singleLink = await startProxy(single.port)
  })
  afterAll(async () => {
    singleRaw?.disconnect()
    await singleLink?.close()
    await stopRedis(single)
  })
  const group = ownSentinelGroup({ downAfterMs: 60_000, proxied })
  let master = 0
  const cluster = ownCluster({ nodeTimeoutMs: 60_000, proxied })
  let primary = { port: 0, tag: '' }
  beforeAll(async () => {
    master = group.nodePort(await group.masterPort())
    // Proxied, the keys live on the proxied primary (the first).
    const p = proxied ? cluster.nodes[0] : (await cluster.primaries())[0]
    let i = 0
    while ((await cluster.primaryOf(`{t${i}}`)) !== p.port) i++
    primary = { port: p.port, tag: `{t${i}}` }
  }, 90_000)
  const masterNode = () => group.nodes.find((n) => n.port === master)!
  const primaryNode = () => cluster.nodes.find((n) => n.port === primary.port)!
  const linked = (proxy: TcpProxy | undefined) => () => {
    if (!proxy) throw new Error('ownTopologies: link() needs { proxied: true }')
    return proxy
  }
  return [
    {
      name: 'single server',
      address: () => ({ url: singleLink ? `redis://127.0.0.1:${singleLink.port}` : single!.url }),
      key: (name) => name,
      server: () => singleRaw!,
      stop: () => single!.signal('SIGSTOP'),
      resume: () => single!.signal('SIGCONT'),
      link: () => linked(singleLink)(),
    },
    {
      name: 'Sentinel',
      address: () => ({ sentinel: { sentinels: group.sentinels, name: group.name } }),
      key: (name) => name,
      server: () => group.raw(master),
      stop: () => masterNode().signal('SIGSTOP'),
      resume: () => masterNode().signal('SIGCONT'),
      link: () => linked(group.proxy)(),
    },
    {
      name: 'Cluster',
      address: () => ({ cluster: { nodes: cluster.seeds } }),
      key: (name) => `${primary.tag}:${name}`,
      server: () => cluster.node(primary.port),
      stop: () => primaryNode().signal('SIGSTOP'),
      resume: () => primaryNode().signal('SIGCONT'),
      link: () => linked(cluster.proxy)(),
    },
  ]
}
