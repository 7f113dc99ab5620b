import { describe, it, expect, afterAll } from 'vitest';
import { CacheService, cacheService } from '../src/services/cache.service.js';
import { everyMethod, makeStatus } from '../src/status.controller.js';

describe('the backend with the native cache swapped in', () => {
  afterAll(async () => {
    await cacheService.close();
  });

  it('the env-configured singleton serves every method', async () => {
    const r = await everyMethod();
    expect(r.one).toEqual(makeStatus('a'));
    expect(r.many).toEqual([makeStatus('a'), null]);
    expect(r.exists).toBe(true);
    expect(r.ttl).toBeGreaterThan(290);
    expect(r.pong).toBe(true);
    expect(r.info.keyCount).toBeGreaterThan(0);
    expect(r.status).toEqual(makeStatus('d'));
  });

  it('a second instance from the class works beside it', async () => {
    const other = new CacheService({ url: process.env.REDIS_URL });
    await other.set('consumer:other', { ok: 1 });
    expect(await cacheService.get('consumer:other')).toEqual({ ok: 1 });
    await other.close();
  });
});
