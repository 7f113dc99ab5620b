// Issue 8, defect 6: a pathological glob must not crash the process (the recursive matcher overflowed the stack).
import { describe, it, expect } from 'vitest'
import { CacheService } from '../index.js'

describe("'memory' mode invalidatePattern", () => {
  it('survives a pattern of 300,000 stars against a long key, and still matches by Redis rules', async () => {
    const c = new CacheService({ mode: 'memory' })
    const key = 'a'.repeat(100_000)
    await c.set(key, 1, 60)
    const started = Date.now()
    await c.invalidatePattern('a*'.repeat(300_000) + 'b')
    expect(Date.now() - started).toBeLessThan(1000)
    expect(await c.get(key)).toBe(1)
    await c.invalidatePattern('a*'.repeat(10) + 'a')
    expect(await c.get(key)).toBeNull()
    await c.close()
  })
})
