// Shaped like the backend's callers: typed records, getOrSet around a loader,
// pattern invalidation after writes.
import { cacheService, CacheService } from './services/cache.service.js';

export interface ServiceStatus {
  id: string;
  name: string;
  status: 'up' | 'down' | 'degraded';
  uptime: number;
  lastCheckAt: string;
  checks: Array<{ name: string; ok: boolean; latencyMs: number }>;
}

export function makeStatus(id: string): ServiceStatus {
  return {
    id,
    name: `service ${id}`,
    status: 'up',
    uptime: 99.9,
    lastCheckAt: new Date(0).toISOString(),
    checks: Array.from({ length: 3 }, (_, i) => ({ name: `check${i}`, ok: true, latencyMs: i })),
  };
}

export async function getStatus(id: string, cache: CacheService = cacheService): Promise<ServiceStatus> {
  return cache.getOrSet<ServiceStatus>(`status:${id}`, async () => makeStatus(id), 60);
}

export async function everyMethod(cache: CacheService = cacheService) {
  const key: string = 'consumer:key';
  await cache.set(key, makeStatus('a'), 120);
  await cache.set(key, makeStatus('a'));
  const one: ServiceStatus | null = await cache.get<ServiceStatus>(key);
  const many: Array<ServiceStatus | null> = await cache.mget<ServiceStatus>([key, 'consumer:missing']);
  await cache.mset<ServiceStatus>({ 'consumer:b': makeStatus('b'), 'consumer:c': makeStatus('c') }, 30);
  const exists: boolean = await cache.exists(key);
  const ttl: number = await cache.ttl(key);
  const pong: boolean = await cache.ping();
  const info: { keyCount: number; memoryUsage: string } = await cache.getInfo();
  const status: ServiceStatus = await getStatus('d', cache);
  await cache.del(key);
  await cache.del(['consumer:b', 'consumer:c']);
  await cache.invalidatePattern('status:*');
  await cache.clear();
  return { one, many, exists, ttl, pong, info, status };
}

// Tags, type-checked here (every tsconfig of this project); the runtime
// behaviour is the package's own tests' (__test__/tags.test.ts).
export async function invalidateStatusTags(cache: CacheService = cacheService): Promise<number> {
  await cache.set('status:t', makeStatus('t'), 60, { tags: ['status', 'service:t'] });
  const tagged: ServiceStatus = await cache.getOrSet<ServiceStatus>('status:u', async () => makeStatus('u'), { ttl: 60, tags: ['status'] });
  const deleted: number = await cache.invalidateTags(['status', tagged.id]);
  return deleted;
}
