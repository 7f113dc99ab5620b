export { CacheService, cacheService } from '@medianest/native-cache';
