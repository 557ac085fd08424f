import { defineConfig } from 'vitest/config';

// `npm run test:scale`: Redis Cluster and Sentinel suites, each starting its own servers.
export default defineConfig({
  test: {
    include: ['test/scale/**/*.test.ts'],
    globalSetup: ['test/scale/scale-setup.ts'],
    testTimeout: 180_000,
    hookTimeout: 90_000,
    // Each file starts six or five redis-servers and worker processes: one file at a time on small machines.
    fileParallelism: false,
  },
});
