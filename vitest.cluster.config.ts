import { defineConfig } from 'vitest/config';

// Part of `npm run test:scale`: the integration suite again, on a private Redis Cluster.
export default defineConfig({
  test: {
    include: ['test/integration/**/*.test.ts'],
    globalSetup: ['test/scale/cluster-integration-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    fileParallelism: true,
    maxWorkers: 2,
  },
});
