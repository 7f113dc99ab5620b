import { defineConfig } from 'vitest/config';

// MediaNest's own settings: one worker thread, no isolation.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'threads',
    poolOptions: { threads: { singleThread: true, isolate: false } },
    isolate: false,
  },
});
