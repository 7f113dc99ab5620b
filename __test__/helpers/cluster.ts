// A real Redis Cluster for a test file: 3 primaries and 3 replicas on free
// loopback ports (each node's cluster bus on port + 10000), created with
// `redis-cli --cluster create`, stopped and deleted after the file's tests.
import { beforeAll, afterAll } from 'vitest'
import { execFile } from 'node:child_process'
import { createServer } from 'node:net'
import { promisify } from 'node:util'
import Redis, { Cluster } from 'ioredis'
import { freePort, startRedis, stopRedis, sleep, type RedisProcess } from './redis'
import { startProxy, type TcpProxy } from './proxy'

const run = promisify(execFile)

/** Failure detection after 500 ms: failovers take about a second instead of several. */
export const NODE_TIMEOUT_MS = 500

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer()
    srv.unref()
    srv.once('error', () => resolve(false))
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
  })
}

/** A free port whose cluster bus port (port + 10000) is free too. */
async function clusterPort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = await freePort()
    if (port > 55_535 || taken.has(port) || taken.has(port + 10_000)) continue
    if (await portFree(port + 10_000)) {
      taken.add(port)
      taken.add(port + 10_000)
      return port
    }
  }
}

export interface TestCluster {
  nodes: RedisProcess[]
  /** `host:port` of every node (but a proxied one, reached only as it announces itself), for `cluster: { nodes }`. */
  seeds: string[]
  /** A cluster-aware raw client (ioredis' Redis.Cluster), as the original would use. */
  raw: Cluster
  /** A plain client on one node (for CLUSTER commands). */
  node(port: number): Redis
  /** The ports of the current primaries, each with the slot ranges it serves. */
  primaries(): Promise<{ port: number; slots: [number, number][] }[]>
  /** The primary serving `key`'s slot. */
  primaryOf(key: string): Promise<number>
  /** Waits until every running node reports cluster_state:ok and agrees on 3 primaries with a replica each. */
  settled(ms?: number): Promise<void>
  /** SIGKILLs the node on `port` (left out of `settled` until restarted). */
  kill(port: number): void
  /** SIGSTOPs the node on `port`: it holds its connections open and answers nothing. */
  pause(port: number): void
  /** SIGCONTs a paused node. */
  resume(port: number): Promise<void>
  /** Starts the node on `port` again; it rejoins the cluster from its nodes.conf. */
  restart(port: number): Promise<void>
}

async function info(client: Redis, section: string): Promise<string> {
  return client.call(section === 'cluster' ? 'CLUSTER' : 'INFO', section === 'cluster' ? 'INFO' : section) as Promise<string>
}

export interface ClusterOptions {
  /**
   * `cluster-node-timeout`: how long a silent primary goes unnoticed before
   * its replica takes over. Default {@link NODE_TIMEOUT_MS}; tests that stop a
   * primary and need it to stay primary give a long one.
   */
  nodeTimeoutMs?: number
  /**
   * The first primary (slots 0-5460) announces a TCP proxy in front of it
   * (`cluster-announce-port`; its bus port stays its own): clients and its
   * replica reach it through `proxy`, the other nodes' cluster bus directly.
   * The helper's methods still name it by its own port.
   */
  proxied?: boolean
}

export async function startCluster(
  options: ClusterOptions = {},
): Promise<TestCluster & { proxy?: TcpProxy; stop(): Promise<void> }> {
  const taken = new Set<number>()
  const ports: number[] = []
  for (let i = 0; i < 6; i++) ports.push(await clusterPort(taken))
  const args = [
    '--cluster-enabled', 'yes',
    '--cluster-config-file', 'nodes.conf',
    '--cluster-node-timeout', String(options.nodeTimeoutMs ?? NODE_TIMEOUT_MS),
    // A replica's first sync starts at once, not 5 s later (the default delay
    // waits for more replicas to share one transfer): the cluster settles sooner.
    '--repl-diskless-sync-delay', '0',
  ]
  const proxy = options.proxied ? await startProxy(ports[0]) : undefined
  const announce = (i: number) => (proxy && i === 0 ? ['--cluster-announce-port', String(proxy.port)] : [])
  const nodes = await Promise.all(ports.map((p, i) => startRedis([...args, ...announce(i)], p)))
  /** A node's own port for the port it announces. */
  const own = (port: number) => (proxy && port === proxy.port ? ports[0] : port)
  const clients = new Map<number, Redis>()
  const node = (port: number) => {
    let c = clients.get(port)
    if (!c) {
      c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 100, commandTimeout: 500 })
      c.on('error', () => {})
      clients.set(port, c)
    }
    return c
  }
  const down = new Set<number>()
  const addresses = ports.map((p) => `127.0.0.1:${p}`)
  await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '1', '--cluster-yes'], { timeout: 30_000 })
  const seeds = addresses.slice(proxy ? 1 : 0)

  async function primaries() {
    for (const p of ports.filter((p) => !down.has(p))) {
      try {
        const shards = (await node(p).call('CLUSTER', 'SLOTS')) as [number, number, [string, number, string]][]
        const byPort = new Map<number, [number, number][]>()
        for (const [from, to, [, port]] of shards) byPort.set(own(port), [...(byPort.get(own(port)) ?? []), [from, to]])
        return [...byPort].map(([port, slots]) => ({ port, slots }))
      } catch {
        // a stopped node: ask the next one
      }
    }
    throw new Error('no cluster node answers')
  }

  async function settled(ms = 30_000) {
    const end = Date.now() + ms
    for (;;) {
      try {
        const running = nodes.filter((n) => !down.has(n.port))
        const states = await Promise.all(running.map((n) => info(node(n.port), 'cluster')))
        const ps = await primaries()
        const synced = await Promise.all(
          ps.map(async (p) => /slave0:.*state=online/.test(await info(node(p.port), 'replication'))),
        )
        if (states.every((s) => s.includes('cluster_state:ok')) && ps.length === 3 && synced.every(Boolean)) return
      } catch {
        // not yet
      }
      if (Date.now() > end) throw new Error('the test cluster did not settle')
      await sleep(100)
    }
  }
  await settled()
  if (proxy && !(await primaries()).some((p) => p.port === ports[0])) throw new Error('the proxied node is not a primary')

  const raw = new Redis.Cluster(addresses.map((s) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) })), {
    redisOptions: { maxRetriesPerRequest: 3 },
  })
  raw.on('error', () => {})

  return {
    nodes,
    seeds,
    proxy,
    raw,
    node,
    primaries,
    async primaryOf(key: string) {
      const ps = await primaries()
      const up = ports.find((p) => !down.has(p))!
      const slot = (await node(up).call('CLUSTER', 'KEYSLOT', key)) as number
      const hit = ps.find((p) => p.slots.some(([a, b]) => slot >= a && slot <= b))
      if (!hit) throw new Error(`no primary serves slot ${slot}`)
      return hit.port
    },
    settled,
    kill(port: number) {
      down.add(port)
      nodes.find((n) => n.port === port)?.signal('SIGKILL')
    },
    pause(port: number) {
      down.add(port)
      nodes.find((n) => n.port === port)?.signal('SIGSTOP')
    },
    async resume(port: number) {
      nodes.find((n) => n.port === port)?.signal('SIGCONT')
      down.delete(port)
    },
    async restart(port: number) {
      await nodes.find((n) => n.port === port)?.start()
      down.delete(port)
    },
    async stop() {
      raw.disconnect()
      for (const c of clients.values()) c.disconnect()
      await Promise.all(nodes.map((n) => stopRedis(n)))
      await proxy?.close()
    },
  }
}

/** One cluster for the calling test file, started before its tests and stopped after them. */
export function ownCluster(options: ClusterOptions = {}): TestCluster & { readonly proxy?: TcpProxy } {
  let cluster: (TestCluster & { proxy?: TcpProxy; stop(): Promise<void> }) | undefined
  beforeAll(async () => {
    cluster = await startCluster(options)
  }, 90_000)
  afterAll(async () => {
    await cluster?.stop()
  })
  return new Proxy({} as TestCluster & { proxy?: TcpProxy }, {
    get(_, prop) {
      if (!cluster) throw new Error('ownCluster: used outside the tests of its file')
      return cluster[prop as keyof typeof cluster]
    },
  })
}
