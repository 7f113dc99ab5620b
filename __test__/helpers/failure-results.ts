// Every method of the API with the result it resolves to when Redis fails it
// (the original CacheService's failure results), and the check that a
// failing instance gives each of them within a bound.
import { expect } from 'vitest'
import type { CacheService } from '../../index.js'

export type Call = [string, (c: CacheService) => Promise<unknown>, unknown]

/** The table; `key` names the keys (on a Cluster: keys the failing node holds). */
export function failureResults(key: (name: string) => string = (name) => name): Call[] {
  const [k, j] = [key('k'), key('j')]
  return [
    ['get', (c) => c.get(k), null],
    ['set', (c) => c.set(k, 'must not land'), undefined],
    ['del', (c) => c.del([k, j]), undefined],
    ['getOrSet', (c) => c.getOrSet(k, async () => 'from factory'), 'from factory'],
    ['invalidatePattern', (c) => c.invalidatePattern(`${k}*`), undefined],
    ['exists', (c) => c.exists(k), false],
    ['ttl', (c) => c.ttl(k), -1],
    ['ping', (c) => c.ping(), false],
    ['mget', (c) => c.mget([k, j]), []],
    ['mset', (c) => c.mset({ [k]: 1, [j]: 2 }), undefined],
    ['getInfo', (c) => c.getInfo(), { keyCount: 0, memoryUsage: 'unknown' }],
    ['clear', (c) => c.clear(), undefined],
  ]
}

/** Each call of the table resolves to its failure result within `boundMs`. */
export async function expectFailureResults(cache: CacheService, boundMs: number, key?: (name: string) => string) {
  for (const [name, call, expected] of failureResults(key)) {
    const started = performance.now()
    const value = await call(cache)
    const took = performance.now() - started
    expect(value, name).toEqual(expected)
    expect(took, `${name} took ${took.toFixed(0)} ms`).toBeLessThan(boundMs)
  }
}
