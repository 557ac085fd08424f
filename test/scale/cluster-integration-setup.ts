/**
 * Global setup that runs the integration suite on a Redis Cluster: a private 3-master/3-replica cluster
 * whose URL (`redis+cluster://…`) the tests get instead of a single server's; `freshPrefix()` then gives
 * hash-tagged prefixes. Every process it starts is recorded for the scale suite's teardown.
 */
import type { TestProject } from 'vitest/node';
import scaleSetup from './scale-setup.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const killLeftovers = scaleSetup();
  // Imported after the pid file is set up: servers.ts records every process it starts there.
  const { LocalCluster } = await import('./servers.js');
  const cluster = await LocalCluster.start();
  project.provide('redisUrl', cluster.url());
  return async () => {
    await cluster.destroy();
    killLeftovers();
  };
}
