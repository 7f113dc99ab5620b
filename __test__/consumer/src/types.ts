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
