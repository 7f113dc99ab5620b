// The short soak: 30 s of steady mixed load; fails on growth after warm-up
// (bounds and their reasons in benchmark/soak.mjs and the README).
import { describe, it, expect } from 'vitest'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'

describe('soak', () => {
  it('30 s of load: no RSS, heap or socket growth after warm-up; L1 within its bound', () => {
    const r = spawnSync(process.execPath, ['--expose-gc', join(__dirname, '..', 'benchmark', 'soak.mjs'), '--seconds', '30', '--check'], {
      encoding: 'utf8',
      timeout: 120_000,
    })
    expect(r.error).toBeUndefined()
    expect(r.stdout).toMatch(/soak: no growth after warm-up/)
    expect(r.status, r.stdout + r.stderr).toBe(0)
  }, 130_000)
})
