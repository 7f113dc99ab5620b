// The original CacheService's behaviour, run against the swapped class: in
// 'memory' mode always, and against Redis when CONTRACT_REDIS_URL names an
// empty database (the contract refuses one that holds keys).
import { describeCacheContract } from '@medianest/native-cache/testing';
import { CacheService } from '../src/cache.service.js';

describeCacheContract(CacheService);
if (process.env.CONTRACT_REDIS_URL) describeCacheContract(CacheService, { redisUrl: process.env.CONTRACT_REDIS_URL });
