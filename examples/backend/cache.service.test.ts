// backend/tests/unit/services/cache.service.test.ts once cache.service.ts is
// `export { CacheService, cacheService } from '@medianest/native-cache';`.
// It replaces cache.service.test.ts and cache.service.simple.test.ts, whose
// mocks of @/config/redis, handleAsync and safeJsonParse the native class never
// calls (docs/migration.md in @medianest/native-cache says test by test).
//
// No command reaches any Redis unless CACHE_CONTRACT_REDIS_URL names one, and
// then only an empty database: the contract refuses one that holds keys.
import { describe, it, expect } from 'vitest';
import { describeCacheContract } from '@medianest/native-cache/testing';
import { CacheService, cacheService } from '@/services/cache.service';

// The original's twelve methods: results, failure results, TTLs and their
// default, argument errors, JSON round trips. A fresh 'memory'-mode instance
// per check, no Redis.
describeCacheContract(CacheService);

// The same on a real Redis, with the bytes and expiries it stores, e.g.
// CACHE_CONTRACT_REDIS_URL=redis://localhost:6380/14 npx vitest run tests/unit/services
const redisUrl = process.env.CACHE_CONTRACT_REDIS_URL;
if (redisUrl) describeCacheContract(CacheService, { redisUrl });

describe('cache.service', () => {
  it('exports the native service and its singleton', async () => {
    const native = await import('@medianest/native-cache');
    expect(CacheService).toBe(native.CacheService);
    // Only looked at: the singleton connects on its first call, which this file never makes.
    expect(cacheService).toBe(native.cacheService);
  });
});
