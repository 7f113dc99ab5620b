import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// MediaNest's own settings (backend/vitest.config.ts): one worker thread, no
// isolation, files one after another, mocks reset around every test.
export default defineConfig({
  // The backend's alias, so examples/backend/cache.service.test.ts runs here as written.
  resolve: { alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) } },
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'threads',
    poolOptions: { threads: { singleThread: true, isolate: false } },
    isolate: false,
    fileParallelism: false,
    maxConcurrency: 1,
    mockReset: true,
    clearMocks: true,
    restoreMocks: true,
  },
});
