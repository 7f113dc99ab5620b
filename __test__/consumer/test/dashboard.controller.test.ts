// A controller test as the backend writes them, with the real cache in place of
// a vi.fn() stub: every test gets its own 'memory'-mode instance (no Redis, no
// state from other tests or files, even with isolate: false).
import { describe, it, expect, vi, beforeEach } from 'vitest';
import { DashboardController, statusService, type Res } from '../src/dashboard.controller.js';
import { cacheService } from '../src/services/cache.service.js';

vi.mock('../src/services/cache.service.js', async () => (await import('@medianest/native-cache/testing')).testCacheModule());

function response() {
  const res = { body: undefined as unknown, code: 200, headers: {} as Record<string, string> } as Res & { body: unknown; code: number; headers: Record<string, string> };
  res.set = (h) => ((res.headers = { ...res.headers, ...h }), res);
  res.status = (c) => ((res.code = c), res);
  res.json = (b) => ((res.body = b), res);
  return res;
}

describe('DashboardController with the cache swapped in', () => {
  const controller = new DashboardController();
  beforeEach(() => {
    statusService.calls = 0;
  });

  it('the first request loads the statuses, the second is served from the cache', async () => {
    const first = response();
    await controller.getServiceStatuses({}, first);
    const second = response();
    await controller.getServiceStatuses({}, second);
    expect(statusService.calls).toBe(1);
    expect(second.body).toEqual(first.body);
    expect(first.body).toMatchObject({ success: true, meta: { count: 2 } });
    expect(await cacheService.ttl('service:statuses:all')).toBe(300);
  });

  it('each test starts from an empty cache: the loader runs again', async () => {
    expect(await cacheService.exists('service:statuses:all')).toBe(false);
    await controller.getServiceStatuses({}, response());
    expect(statusService.calls).toBe(1);
  });

  it('refresh invalidates the statuses; getCacheStats reports the keys', async () => {
    await controller.getServiceStatuses({}, response());
    await cacheService.set('user:1', { id: 1 });
    const stats = response();
    await controller.getCacheStats({}, stats);
    expect(stats.body).toMatchObject({ data: { keyCount: 2, memoryUsage: expect.stringMatching(/^\d+(\.\d+)?[BKMGTP]$/) } });
    const refreshed = response();
    await controller.refresh({}, refreshed);
    expect(refreshed.code).toBe(204);
    expect(await cacheService.mget(['service:statuses:all', 'user:1'])).toEqual([null, { id: 1 }]);
  });

  it('the module is mocked only here: cacheService is the stand-in, not the env-configured singleton', async () => {
    const real = await vi.importActual<typeof import('../src/services/cache.service.js')>('../src/services/cache.service.js');
    expect(cacheService).not.toBe(real.cacheService);
    expect(cacheService.stats().mode).toBe('memory');
  });
});
