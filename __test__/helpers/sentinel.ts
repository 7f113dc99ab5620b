// A Sentinel group for the calling test file: a master, a replica and three
// sentinels on free loopback ports (`redis-server <conf> --sentinel`, configs
// written to a temp dir), ready when every sentinel knows the replica and the
// two other sentinels; all stopped and removed after the file's tests.
import { beforeAll, afterAll } from 'vitest'
import Redis from 'ioredis'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRedis, stopRedis, freePort, eventually, redisServerBinary, canConnect, type RedisProcess } from './redis'
import { startProxy, type TcpProxy } from './proxy'

export const MASTER_NAME = 'mymaster'

export interface SentinelGroup {
  readonly name: string
  /** The two data nodes, by port: which one is master changes with failovers. */
  readonly nodes: RedisProcess[]
  /** `127.0.0.1:<port>` of each sentinel. */
  readonly sentinels: string[]
  /** A raw client on node `port` (one per port, kept for the file). */
  raw(port: number): Redis
  /** A raw client on sentinel `i`. */
  sentinel(i: number): Redis
  /** Kills sentinel `i` (SIGKILL) and waits for it to be gone. */
  killSentinel(i: number): Promise<void>
  /** The master's port as sentinel `i` (default 0) names it. */
  masterPort(i?: number): Promise<number>
  /** Waits until every sentinel names the same master, which says role master and has a synced replica. */
  settled(ms?: number): Promise<number>
  /** With `proxied`: the proxy in front of the first master. */
  readonly proxy?: TcpProxy
  /** The port of the node behind `port` (the first master's for the proxy's, else `port`). */
  nodePort(port: number): number
}

export interface GroupOptions {
  /** `requirepass` of the sentinels. */
  sentinelPassword?: string
  /** `requirepass` of the master and the replica (and what the sentinels and the replica authenticate with). */
  masterPassword?: string
  /**
   * `down-after-milliseconds`: how long a silent master goes unnoticed before
   * the sentinels fail it over. Default 1000; tests that stop the master and
   * need it to stay master give a long one.
   */
  downAfterMs?: number
  /**
   * The sentinels and the replica reach the first master through a TCP proxy
   * (monitored and replicated at the proxy's port), so its clients do too.
   */
  proxied?: boolean
}

async function startSentinel(dir: string, masterPort: number, o: GroupOptions): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort()
  const conf = join(dir, `sentinel-${port}.conf`)
  writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${masterPort} 2`,
      `sentinel down-after-milliseconds ${MASTER_NAME} ${o.downAfterMs ?? 1000}`,
      `sentinel failover-timeout ${MASTER_NAME} 5000`,
      ...(o.masterPassword ? [`sentinel auth-pass ${MASTER_NAME} ${o.masterPassword}`] : []),
      ...(o.sentinelPassword ? [`requirepass ${o.sentinelPassword}`, `sentinel sentinel-pass ${o.sentinelPassword}`] : []),
      '',
    ].join('\n'),
  )
  const child = spawn(redisServerBinary(), [conf, '--sentinel'], { stdio: 'ignore' })
  if (!(await eventually(() => canConnect(port), 5000, 20))) throw new Error(`sentinel did not start on ${port}`)
  return { port, child }
}

/** Fields of a flat `[k, v, k, v]` reply. */
export function fields(reply: unknown): Record<string, string> {
  const out: Record<string, string> = {}
  const a = reply as string[]
  for (let i = 0; i + 1 < a.length; i += 2) out[a[i]] = a[i + 1]
  return out
}

export function ownSentinelGroup(o: GroupOptions = {}): SentinelGroup {
  let dir = ''
  const nodes: RedisProcess[] = []
  const sentinels: { port: number; child: ChildProcess }[] = []
  const raws = new Map<number, Redis>()
  const sentinelRaws: Redis[] = []
  let proxy: TcpProxy | undefined
  const nodePort = (port: number) => (proxy && port === proxy.port ? nodes[0].port : port)

  const raw = (port: number) => {
    let r = raws.get(port)
    if (!r) {
      r = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, password: o.masterPassword }).on('error', () => {})
      raws.set(port, r)
    }
    return r
  }
  const sentinel = (i: number) => sentinelRaws[i]
  const masterPort = async (i = 0) => {
    const addr = (await sentinel(i).call('SENTINEL', 'get-master-addr-by-name', MASTER_NAME)) as string[] | null
    return addr ? Number(addr[1]) : 0
  }
  const settled = async (ms = 30_000) => {
    let port = 0
    const ok = await eventually(
      async () => {
        try {
          const ports = await Promise.all(sentinels.map((_, i) => masterPort(i)))
          port = ports[0]
          if (!ports.every((p) => p === port) || port === 0) return false
          for (let i = 0; i < sentinels.length; i++) {
            const m = fields(await sentinel(i).call('SENTINEL', 'MASTER', MASTER_NAME))
            if (m['num-other-sentinels'] !== '2' || m['num-slaves'] !== '1' || m.flags !== 'master') return false
          }
          const role = (await raw(port).call('ROLE')) as unknown[]
          if (role[0] !== 'master') return false
          const replica = nodes.find((n) => n.port !== nodePort(port))!
          const info = (await raw(replica.port).info('replication')) as string
          return info.includes('role:slave') && info.includes(`master_port:${port}`) && info.includes('master_link_status:up')
        } catch {
          return false
        }
      },
      ms,
      100,
    )
    if (!ok) throw new Error('the Sentinel group did not settle')
    return port
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'native-cache-sentinel-'))
    // No delay before a replica's sync (the default waits 5 s for more replicas).
    const auth = [
      '--repl-diskless-sync-delay', '0',
      ...(o.masterPassword ? ['--requirepass', o.masterPassword, '--masterauth', o.masterPassword] : []),
    ]
    const master = await startRedis(auth)
    nodes.push(master)
    if (o.proxied) proxy = await startProxy(master.port)
    const monitored = proxy?.port ?? master.port
    nodes.push(await startRedis([...auth, '--replicaof', '127.0.0.1', String(monitored)]))
    for (let i = 0; i < 3; i++) sentinels.push(await startSentinel(dir, monitored, o))
    for (const s of sentinels) {
      sentinelRaws.push(new Redis({ port: s.port, host: '127.0.0.1', password: o.sentinelPassword }).on('error', () => {}))
    }
    await settled()
  }, 60_000)

  afterAll(async () => {
    for (const r of [...raws.values(), ...sentinelRaws]) r.disconnect()
    for (const s of sentinels) {
      if (s.child.exitCode === null && s.child.signalCode === null) {
        const gone = new Promise((r) => s.child.once('exit', r))
        s.child.kill('SIGKILL')
        await gone
      }
    }
    for (const n of nodes) await stopRedis(n)
    await proxy?.close()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  return {
    name: MASTER_NAME,
    nodes,
    get sentinels() {
      return sentinels.map((s) => `127.0.0.1:${s.port}`)
    },
    raw,
    sentinel,
    async killSentinel(i: number) {
      const { child } = sentinels[i]
      if (child.exitCode !== null || child.signalCode !== null) return
      const gone = new Promise((r) => child.once('exit', r))
      child.kill('SIGKILL')
      await gone
    },
    masterPort,
    settled,
    get proxy() {
      return proxy
    },
    nodePort,
  }
}

/** When the sentinel at `addr` (host:port) first announced `+switch-master` (`at`, 0 until then). */
export async function watchSwitch(addr: string, password?: string) {
  const [host, port] = addr.split(':')
  const sub = new Redis({ host, port: Number(port), password }).on('error', () => {})
  const watch = { at: 0, close: () => sub.disconnect() }
  sub.on('message', (channel: string) => {
    if (channel === '+switch-master' && watch.at === 0) watch.at = Date.now()
  })
  await sub.subscribe('+switch-master')
  return watch
}

/**
 * Load for a failover: `workers` loops each running `round(timed, w, i)` for
 * i = 0, 1, … until stopped; `timed(p)` awaits `p`, counting it and keeping
 * the slowest. `stop()` ends the loops and rethrows a loop's failure;
 * `close()` (for after-hooks) ends them whatever happened.
 */
export function loadLoops(workers: number, round: (timed: <T>(p: Promise<T>) => Promise<T>, w: number, i: number) => Promise<unknown>) {
  let running = true
  const load = {
    slowest: 0,
    calls: 0,
    async stop() {
      running = false
      await Promise.all(loops)
    },
    async close() {
      running = false
      await Promise.allSettled(loops)
    },
  }
  const timed = async <T>(p: Promise<T>) => {
    const t = Date.now()
    const v = await p
    load.slowest = Math.max(load.slowest, Date.now() - t)
    load.calls++
    return v
  }
  const loops = Array.from({ length: workers }, async (_, w) => {
    for (let i = 0; running; i++) await round(timed, w, i)
  })
  return load
}

/**
 * Writes `key` through `cache` (a new number each time, every 10 ms) until a
 * write lands on `newMaster` while it says it is master (before that, it
 * replicates what the old one takes): when that happened, or 0 if not
 * within `ms`.
 */
export async function writesReachNewMaster(
  cache: { set(key: string, value: unknown): Promise<void> },
  newMaster: Redis,
  key: string,
  ms: number,
): Promise<number> {
  const from = Date.now()
  for (let n = 0; Date.now() - from < ms; n++) {
    const promoted = ((await newMaster.call('ROLE')) as unknown[])[0] === 'master'
    await cache.set(key, n)
    if (promoted && (await newMaster.get(key)) === String(n)) return Date.now()
    await new Promise((r) => setTimeout(r, 10))
  }
  return 0
}
