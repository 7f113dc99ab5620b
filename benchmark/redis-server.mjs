// A private redis-server for the benchmark and the soak: a free loopback
// port, nothing saved to disk, killed by stop().
import { spawn } from 'node:child_process'
import { createServer, connect } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

export async function startRedis() {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'native-cache-redis-'))
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]
  const child = spawn(process.env.REDIS_SERVER_BIN ?? 'redis-server', args, { stdio: 'ignore' })
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((r) => {
      const s = connect(port, '127.0.0.1')
      s.once('connect', () => (s.destroy(), r(true)))
      s.once('error', () => r(false))
    })
    if (ok) {
      const stop = () => {
        child.kill('SIGKILL')
        rmSync(dir, { recursive: true, force: true })
      }
      return { port, url: `redis://127.0.0.1:${port}`, stop }
    }
    await sleep(25)
  }
  child.kill('SIGKILL')
  throw new Error('redis-server did not start')
}

/** A port whose cluster bus port (port + 10000) is free too. */
async function clusterPort(taken) {
  for (;;) {
    const port = await freePort()
    if (port > 55_535 || taken.has(port) || taken.has(port + 10_000)) continue
    const busFree = await new Promise((r) => {
      const s = createServer()
      s.once('error', () => r(false))
      s.listen(port + 10_000, '127.0.0.1', () => s.close(() => r(true)))
    })
    if (busFree) {
      taken.add(port).add(port + 10_000)
      return port
    }
  }
}

/** A private Redis Cluster: 3 primaries, 3 replicas (`redis-cli --cluster create`); stop() kills and deletes it. */
export async function startCluster() {
  const { execFileSync } = await import('node:child_process')
  const taken = new Set()
  const nodes = []
  for (let i = 0; i < 6; i++) {
    const port = await clusterPort(taken)
    const dir = mkdtempSync(join(tmpdir(), 'native-cache-cluster-'))
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf']
    nodes.push({ port, dir, child: spawn(process.env.REDIS_SERVER_BIN ?? 'redis-server', args, { stdio: 'ignore' }) })
  }
  const stop = () => {
    for (const n of nodes) {
      n.child.kill('SIGKILL')
      rmSync(n.dir, { recursive: true, force: true })
    }
  }
  try {
    const cli = (port, ...a) => execFileSync('redis-cli', ['-p', String(port), ...a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    for (const n of nodes) {
      for (let i = 0; i < 200; i++) {
        try {
          if (cli(n.port, 'PING').includes('PONG')) break
        } catch {}
        await sleep(25)
      }
    }
    const seeds = nodes.map((n) => `127.0.0.1:${n.port}`)
    execFileSync('redis-cli', ['--cluster', 'create', ...seeds, '--cluster-replicas', '1', '--cluster-yes'], { stdio: 'ignore', timeout: 60_000 })
    for (let i = 0; ; i++) {
      if (nodes.every((n) => cli(n.port, 'CLUSTER', 'INFO').includes('cluster_state:ok'))) break
      if (i > 600) throw new Error('the benchmark cluster did not reach cluster_state:ok')
      await sleep(50)
    }
    return { seeds, stop }
  } catch (err) {
    stop()
    throw err
  }
}
