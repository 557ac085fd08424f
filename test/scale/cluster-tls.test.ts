/**
 * `rediss+cluster://`: a TLS-only cluster (client port, cluster bus and replication over TLS) with a
 * throwaway CA. The --tls-* flags reach every node the client discovers, not only the seed nodes.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/core/logger.js';
import { Worker } from '../../src/core/worker.js';
import { cleanEnv, oneErrorLine, runCli, snapshotBuild, type SnapshotBuild } from '../helpers/cli.js';
import { waitFor } from '../helpers/context.js';
import { hasOpenssl, LocalCluster, makeCertificates } from './servers.js';

const opensslAvailable = hasOpenssl();

describe.skipIf(!opensslAvailable)('Redis Cluster over TLS (rediss+cluster://)', () => {
  let dir: string;
  let cluster: LocalCluster;
  let build: SnapshotBuild;
  let url: string;
  const prefix = '{tls}:';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bananas-scale-tls-'));
    makeCertificates(dir);
    [cluster, build] = await Promise.all([
      LocalCluster.start({ masters: 3, replicasPerMaster: 0, tls: { dir } }),
      snapshotBuild(),
    ]);
    // Only the first seed node: the client must reach the other masters over TLS too.
    url = cluster.url({ tls: true }).split(',')[0] as string;
  });

  afterAll(async () => {
    await cluster?.destroy();
    build?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function cli(args: string[], redisUrl = url) {
    return runCli(build.bin, [...args, '--prefix', prefix], {
      env: cleanEnv({ REDIS_URL: redisUrl }),
      timeoutMs: 30_000,
    });
  }

  it('commands work with --tls-ca; without it the server certificate is refused (exit 4)', async () => {
    const ca = join(dir, 'ca.crt');
    const enqueued = await cli(['job', 'enqueue', 'echo', '--payload', '{"x":1}', '--tls-ca', ca, '--json']);
    expect(enqueued.code, enqueued.stderr).toBe(0);
    const { id } = JSON.parse(enqueued.stdout) as { id: string };
    const stats = await cli(['queue', 'stats', '--tls-ca', ca, '--json']);
    expect(stats.code, stats.stderr).toBe(0);
    expect((JSON.parse(stats.stdout) as { ready: { total: number } }).ready.total).toBe(1);
    // doctor talks to every master, not only the seed.
    const doctor = await cli(['doctor', '--tls-ca', ca, '--json']);
    expect((JSON.parse(doctor.stdout) as { nodes: unknown[] }).nodes).toHaveLength(3);

    const untrusted = await cli(['queue', 'stats']);
    expect(untrusted.code).toBe(4);
    oneErrorLine(untrusted);
    const plain = await cli(
      ['queue', 'stats', '--tls-ca', ca],
      url.replace('rediss+cluster', 'redis+cluster'),
    );
    expect(plain.code).toBe(2);
    expect(oneErrorLine(plain)).toMatch(/rediss\+cluster/);

    const worker = new Worker({
      handlers: { echo: (job) => job.data },
      redisUrl: url,
      redisOptions: { tls: { ca: readFileSync(ca) } },
      prefix,
      logger: createLogger({ level: 'silent' }),
    });
    void worker.start();
    try {
      await waitFor(
        async () => {
          const got = await cli(['job', 'get', id, '--tls-ca', ca, '--json']);
          return (JSON.parse(got.stdout) as { job?: { status?: string } }).job?.status === 'completed';
        },
        20_000,
        'the job completed over TLS',
      );
    } finally {
      await worker.stop();
    }
  });
});
