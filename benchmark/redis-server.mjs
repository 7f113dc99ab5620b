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
