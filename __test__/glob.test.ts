// The glob matcher used by 'memory' mode and by L1's purge on invalidatePattern,
// checked against SCAN MATCH on a real server: thousands of generated patterns.
import { describe, it, expect } from 'vitest'
import { CacheService } from '../index.js'
import { ownRedis } from './helpers/own-redis'

// A small seeded generator, so a failure names a reproducible case.
function rng(seed: number) {
  let s = seed >>> 0
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

const KEY_CHARS = ['a', 'b', 'c', 'x', '*', '?', '[', ']', '^', '-', '\\', 'é', ':']
const PATTERN_PARTS = ['a', 'b', 'c', 'x', '*', '**', '?', '[ab]', '[^a]', '[a-c]', '[c-a]', '[\\]]', '\\*', '\\?', '\\[', '\\\\', '[', ']', '^', '-', ':', 'é', '[a', '\\']

const redis = ownRedis()

async function scanMatch(pattern: string): Promise<Set<string>> {
  const found = new Set<string>()
  let cursor = '0'
  do {
    const [next, keys] = await redis.raw.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    keys.forEach((k) => found.add(k))
    cursor = next
  } while (cursor !== '0')
  return found
}

describe('Redis glob semantics', () => {
  it('agrees with SCAN MATCH on 3000 generated patterns', async () => {
    const rand = rng(20261123)
    const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)]
    const keys = new Set<string>([''])
    while (keys.size < 400) {
      const len = 1 + Math.floor(rand() * 6)
      keys.add(Array.from({ length: len }, () => pick(KEY_CHARS)).join(''))
    }
    const keyList = [...keys]
    await redis.raw.flushall()
    await redis.raw.mset(keyList.flatMap((k) => [k, '1']))
    const mem = new CacheService({ mode: 'memory' })
    const record = Object.fromEntries(keyList.map((k) => [k, 1]))
    let checked = 0
    for (let i = 0; i < 3000; i++) {
      const pattern = Array.from({ length: 1 + Math.floor(rand() * 5) }, () => pick(PATTERN_PARTS)).join('')
      const expected = await scanMatch(pattern)
      await mem.mset(record, 60)
      await mem.invalidatePattern(pattern)
      const left = await mem.mget(keyList)
      const deleted = new Set(keyList.filter((_, j) => left[j] === null))
      expect([...deleted].sort(), `pattern ${JSON.stringify(pattern)}`).toEqual([...expected].sort())
      checked += 1
    }
    expect(checked).toBe(3000)
    await mem.close()
  }, 120_000)
})
