// `@medianest/native-cache/testing`: what an application's own vitest suite
// needs once the cache is swapped in. An instance per test that never touches
// the network, a `cacheService` stand-in that gives every test its own, and
// the original's behaviour as a suite to run against the swapped service.
import { afterAll, afterEach, beforeAll, beforeEach, describe, it, onTestFinished } from 'vitest'
import { getCurrentTest } from 'vitest/suite'
import main from '../index.js'
import { Harness, memoryOptions } from './contract.mjs'

const { CacheService } = main

export function createTestCache(options) {
  return new CacheService(memoryOptions(options))
}

const METHODS = ['get', 'set', 'del', 'getOrSet', 'getOrSetMany', 'invalidatePattern', 'invalidateTags', 'exists', 'ttl', 'ping', 'mget', 'mset', 'getInfo', 'clear']

export function testCacheService(options) {
  memoryOptions(options)
  /** The instance of each test that used the stand-in; closed and forgotten when the test finishes. */
  const byTest = new Map()
  let logger
  const current = (method) => {
    const test = getCurrentTest()
    if (test === undefined) {
      throw new Error(
        `testCacheService: ${method}() was called outside a test (at import, or in beforeAll/afterAll); ` +
          'each test gets its own instance, so call it from a test or a beforeEach/afterEach hook, or use createTestCache()',
      )
    }
    let cache = byTest.get(test)
    if (cache === undefined) {
      cache = createTestCache(options)
      if (logger !== undefined) cache.setLogger(logger)
      byTest.set(test, cache)
      // Runs after the test's afterEach hooks, which may still use it.
      onTestFinished(() => {
        byTest.delete(test)
        return cache.close()
      })
    }
    return cache
  }
  const standIn = {
    /** Where failures go, for the instances of this and later tests (applications call it at startup). */
    setLogger(next) {
      logger = next
      for (const cache of byTest.values()) cache.setLogger(next)
    },
    close: () => current('close').close(),
    stats: () => current('stats').stats(),
    metrics: () => current('metrics').metrics(),
    registerMetrics: (...args) => current('registerMetrics').registerMetrics(...args),
  }
  for (const method of METHODS) {
    standIn[method] = (...args) => {
      try {
        return current(method)[method](...args)
      } catch (err) {
        return Promise.reject(err)
      }
    }
  }
  return standIn
}

export function testCacheModule(options) {
  memoryOptions(options)
  class TestCacheService extends CacheService {
    constructor(own) {
      // The caller's mode is dropped: code under test that asks for 'redis' still gets no network.
      const { mode: _mode, ...rest } = own ?? {}
      super(memoryOptions({ ...options, ...rest }))
    }
  }
  return { CacheService: TestCacheService, cacheService: testCacheService(options) }
}

export function describeCacheContract(Service, options = {}) {
  const harness = new Harness(Service, options)
  describe(options.name ?? harness.title, () => {
    beforeAll(() => harness.open())
    afterAll(() => harness.close())
    beforeEach(() => harness.start())
    afterEach(() => harness.finish())
    for (const check of harness.checks()) {
      ;(check.skipped ? it.skip : it)(check.name, () => check.run(harness.context()))
    }
  })
}
