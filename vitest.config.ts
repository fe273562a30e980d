import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30000,
    hookTimeout: 60000,
    // Process-level tests start real servers; keep files isolated but let
    // them run in parallel across the two cores.
    pool: 'forks',
    fileParallelism: true,
  },
});
