// A deliberately broken service (the `if (cached)` slip: a cached 0, false, ''
// is taken for a miss) must fail the contract: __test__/consumer.test.ts
// expects exactly its getOrSet check to fail here, and everything else to pass.
import type { GetOrSetOptions } from '@medianest/native-cache';
import { describeCacheContract } from '@medianest/native-cache/testing';
import { CacheService } from '../src/services/cache.service.js';

class FalsyMissService extends CacheService {
  override async getOrSet<T>(key: string | number, factory: () => T | Promise<T>, ttl?: number | string | GetOrSetOptions): Promise<T> {
    const cached = await this.get<T>(key);
    if (cached) return cached;
    const value = await factory();
    await this.set(key, value, typeof ttl === 'object' ? ttl.ttl : ttl);
    return value;
  }
}

describeCacheContract(FalsyMissService, { name: 'broken service' });
