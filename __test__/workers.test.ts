// The addon in several worker_threads at once, each with its own instance under
// load; the process exits cleanly when they end, whether or not they closed.
import { describe, it, expect, inject } from 'vitest'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'

const port = inject('redisPort')

describe('worker threads', () => {
  it('6 workers with their own instances, then a clean exit without process.exit', () => {
    const started = Date.now()
    const r = spawnSync(process.execPath, [join(__dirname, 'fixtures', 'workers.mjs'), `redis://127.0.0.1:${port}/7`, '6'], {
      encoding: 'utf8',
      timeout: 60_000,
    })
    expect(r.error, 'the process must exit by itself').toBeUndefined()
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/workers ok: 1500,1500,1500,1500,1500,1500/)
    expect(Date.now() - started).toBeLessThan(60_000)
  }, 70_000)

  it("'memory' mode in workers exits cleanly too", () => {
    const r = spawnSync(process.execPath, [join(__dirname, 'fixtures', 'memory-workers.cjs')], { encoding: 'utf8', timeout: 30_000 })
    expect(r.error, 'the process must exit by itself').toBeUndefined()
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/memory workers ok/)
  })
})
