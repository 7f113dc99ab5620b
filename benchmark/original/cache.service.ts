// The baseline: MediaNest's original CacheService, re-implemented from
// SPEC.md's description (a thin class over ioredis: GET/SETEX/MGET plus JSON,
// getOrSet as get -> factory -> set, KEYS for patterns, FLUSHALL for clear).
import Redis from 'ioredis';

type Logger = { error: (message: string, meta?: unknown) => void };
const quiet: Logger = { error: () => {} };

export class CacheService {
  private readonly redis: Redis;
  private readonly defaultTTL = 300;

  constructor(url: string, private readonly logger: Logger = quiet) {
    this.redis = new Redis(url, { maxRetriesPerRequest: 3, lazyConnect: true });
    this.redis.on('error', () => {});
  }

  async get<T>(key: string): Promise<T | null> {
    try {
      const value = await this.redis.get(key);
      return value ? (JSON.parse(value) as T) : null;
    } catch (error) {
      this.logger.error('Cache get error', { key, error });
      return null;
    }
  }

  async set(key: string, value: unknown, ttl?: number): Promise<void> {
    try {
      await this.redis.setex(key, ttl || this.defaultTTL, JSON.stringify(value));
    } catch (error) {
      this.logger.error('Cache set error', { key, error });
    }
  }

  async del(keys: string | string[]): Promise<void> {
    try {
      if (Array.isArray(keys)) {
        if (keys.length > 0) await this.redis.del(...keys);
      } else {
        await this.redis.del(keys);
      }
    } catch (error) {
      this.logger.error('Cache del error', { keys, error });
    }
  }

  async getOrSet<T>(key: string, factory: () => Promise<T>, ttl?: number): Promise<T> {
    const cached = await this.get<T>(key);
    if (cached !== null) return cached;
    const value = await factory();
    await this.set(key, value, ttl);
    return value;
  }

  async invalidatePattern(pattern: string): Promise<void> {
    try {
      const keys = await this.redis.keys(pattern);
      if (keys.length > 0) await this.redis.del(...keys);
    } catch (error) {
      this.logger.error('Cache invalidate pattern error', { pattern, error });
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      return (await this.redis.exists(key)) === 1;
    } catch {
      return false;
    }
  }

  async ttl(key: string): Promise<number> {
    try {
      return await this.redis.ttl(key);
    } catch {
      return -1;
    }
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.redis.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  async mget<T>(keys: string[]): Promise<Array<T | null>> {
    try {
      if (keys.length === 0) return [];
      const values = await this.redis.mget(...keys);
      return values.map((v) => (v ? (JSON.parse(v) as T) : null));
    } catch {
      return [];
    }
  }

  async mset(keyValues: Record<string, unknown>, ttl?: number): Promise<void> {
    try {
      const pipeline = this.redis.pipeline();
      for (const [key, value] of Object.entries(keyValues)) {
        pipeline.setex(key, ttl || this.defaultTTL, JSON.stringify(value));
      }
      await pipeline.exec();
    } catch (error) {
      this.logger.error('Cache mset error', { error });
    }
  }

  async getInfo(): Promise<{ keyCount: number; memoryUsage: string }> {
    try {
      const keyCount = await this.redis.dbsize();
      const info = await this.redis.info('memory');
      const match = /used_memory_human:(\S+)/.exec(info);
      return { keyCount, memoryUsage: match ? match[1] : 'unknown' };
    } catch {
      return { keyCount: 0, memoryUsage: 'unknown' };
    }
  }

  async clear(): Promise<void> {
    try {
      await this.redis.flushall();
    } catch (error) {
      this.logger.error('Cache clear error', { error });
    }
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
