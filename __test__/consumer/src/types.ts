// `import type` of every public type, under each moduleResolution the consumer checks.
import type {
  CacheLogger,
  CacheTlsOptions,
  LocalTierOptions,
  CacheSentinelOptions,
  CacheServiceOptions,
  CacheInfo,
  CacheStats,
  ErrorCounts,
  TimeoutCounts,
  GraceStats,
  InvalidationLatency,
  LocalTierStats,
  RedisTierStats,
  CacheErrorCode,
  GetOrSetOptions,
  FactoryContext,
  ManyFactoryContext,
  GetOrSetFactory,
  PromRegistry,
  OtelMeter,
  CacheOperation,
  CacheOperationContext,
  CacheHealth,
  RedisHealth,
  LocalHealth,
  PrimaryHealth,
} from '@medianest/native-cache';
import { CacheService, TimeoutError, CacheClosedError } from '@medianest/native-cache';

export interface Everything {
  logger: CacheLogger;
  tls: CacheTlsOptions;
  local: LocalTierOptions;
  sentinel: CacheSentinelOptions;
  options: CacheServiceOptions;
  info: CacheInfo;
  stats: CacheStats;
  errors: ErrorCounts;
  timeouts: TimeoutCounts;
  grace: GraceStats;
  latency: InvalidationLatency;
  localStats: LocalTierStats;
  redisStats: RedisTierStats;
  code: CacheErrorCode;
  getOrSet: GetOrSetOptions;
  factoryContext: FactoryContext;
  manyFactoryContext: ManyFactoryContext;
  factory: GetOrSetFactory<number>;
  registry: PromRegistry;
  meter: OtelMeter;
  operation: CacheOperation;
  context: CacheOperationContext;
  health: CacheHealth;
  redisHealth: RedisHealth;
  localHealth: LocalHealth;
  primary: PrimaryHealth;
}

export function readiness(cache: CacheService): { ready: boolean; status: CacheHealth['status'] } {
  const h: CacheHealth = cache.health();
  const primaries: PrimaryHealth[] = h.redis.primaries ?? [];
  return { ready: h.status !== 'down' && primaries.every((p) => p.reachable), status: h.status };
}

export const failures: Array<new (...args: never[]) => Error> = [TimeoutError, CacheClosedError];

/** getOrSetMany with a cancellable factory, the options (`signal`, `tags`) as a backend would pass them. */
export async function titles(cache: CacheService, ids: string[], signal: AbortSignal): Promise<Array<string | null>> {
  const load = async (missing: string[], ctx: ManyFactoryContext): Promise<Map<string, string>> => {
    ctx.signal.throwIfAborted();
    return new Map(missing.map((id) => [id, `title ${id}`]));
  };
  const byId: Array<string | null> = await cache.getOrSetMany(ids, load, { ttl: 60, signal, tags: ['titles'] });
  const one: string = await cache.getOrSet('title:1', async ({ key, signal: s }: FactoryContext) => (s.aborted ? '' : key), { signal });
  const plain: number = await cache.getOrSet('n', () => 1, 30);
  return [...byId, one, String(plain)];
}
