// Shaped like the backend's DashboardController: it imports the `cacheService`
// singleton itself (no injection) and caches loaders' results with getOrSet.
import { cacheService } from './services/cache.service.js';
import { makeStatus, type ServiceStatus } from './status.controller.js';

export interface Res {
  set(headers: Record<string, string>): Res;
  status(code: number): Res;
  json(body: unknown): Res;
}

/** Where statuses come from (the backend's statusService); tests count its calls. */
export const statusService = {
  calls: 0,
  async getAllStatuses(): Promise<ServiceStatus[]> {
    statusService.calls += 1;
    return ['plex', 'overseerr'].map(makeStatus);
  },
};

export class DashboardController {
  async getServiceStatuses(_req: unknown, res: Res): Promise<void> {
    const statuses = await cacheService.getOrSet('service:statuses:all', () => statusService.getAllStatuses(), 300);
    res.set({ 'Cache-Control': 'public, max-age=60' });
    res.json({ success: true, data: statuses, meta: { count: statuses.length } });
  }

  async getCacheStats(_req: unknown, res: Res): Promise<void> {
    const info = await cacheService.getInfo();
    res.json({ success: true, data: { keyCount: info.keyCount, memoryUsage: info.memoryUsage } });
  }

  async refresh(_req: unknown, res: Res): Promise<void> {
    await cacheService.invalidatePattern('service:*');
    res.status(204).json(null);
  }
}
