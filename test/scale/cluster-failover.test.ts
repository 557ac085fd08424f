/**
 * Failover in Redis Cluster: two worker processes (the built CLI) work through a backlog; the master that
 * owns the `{bananas}` slot is SIGKILLed mid-run; its replica takes over (cluster-node-timeout 1.5 s); the
 * workers carry on by themselves. Every job enqueued before the kill must complete (replication had
 * long caught up with the enqueues); jobs run twice are counted and reported (a settlement the dead master
 * acknowledged but had not yet streamed to its replica makes its job run again once its lease expires).
 */
import { appendFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectOrThrow, createRedis, nodeForKey, type RedisClient } from '../../src/core/connection.js';
import { Queue } from '../../src/core/queue.js';
import { RunLog, startWorker, tally } from '../faults/harness.js';
import { snapshotBuild, type CliProcess, type SnapshotBuild } from '../helpers/cli.js';
import { waitFor } from '../helpers/context.js';
import { enqueueWork, expectAllDoneAfterFailover, printScaleResults, type ScaleResult } from './harness.js';
import { LocalCluster, until } from './servers.js';

const PREFIX = '{bananas}:';
const JOBS = Number(process.env.SCALE_JOBS ?? 3000);
const results: ScaleResult[] = [];
let cluster: LocalCluster;
let build: SnapshotBuild;
let redis: RedisClient;
let runs: RunLog;
const workers: CliProcess[] = [];

beforeAll(async () => {
  [cluster, build] = await Promise.all([
    LocalCluster.start({ nodeTimeoutMs: 1500, args: ['--appendonly', 'yes', '--appendfsync', 'always'] }),
    snapshotBuild(),
  ]);
  redis = createRedis({ url: cluster.url(), mode: 'resilient' });
  await connectOrThrow(redis, cluster.url());
  runs = new RunLog();
});

afterAll(async () => {
  for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
  await Promise.all(workers.map((w) => w.done.catch(() => undefined)));
  redis?.disconnect();
  await cluster?.destroy();
  build?.remove();
  runs?.remove();
  printScaleResults(results);
});

function runWorker(): CliProcess {
  const worker = startWorker(build.bin, cluster.url(), runs, [
    '--prefix',
    PREFIX,
    '--concurrency',
    '25',
    '--lease',
    '5s',
  ]);
  if (process.env.BANANAS_SCALE_PIDS && worker.child.pid) {
    appendFileSync(process.env.BANANAS_SCALE_PIDS, `${worker.child.pid}\n`);
  }
  workers.push(worker);
  return worker;
}

describe('Redis Cluster failover', () => {
  it('SIGKILL the master of the {bananas} slot mid-run: the replica takes over, workers reconnect, no job lost', async () => {
    const queue = new Queue(redis, { prefix: PREFIX });
    const ids = await enqueueWork(queue, JOBS);
    const victim = await cluster.masterOf(queue.keys.processing);
    const [replica] = await cluster.replicasOf(victim);
    expect(replica, 'the master of the slot has a replica').toBeDefined();
    expect(await cluster.isMaster(replica!)).toBe(false);
    // The enqueues are acknowledged; WAIT until the replica has them too (replication is asynchronous).
    const master = await nodeForKey(redis, queue.keys.processing);
    expect(await master.call('WAIT', 1, 5000)).toBe(1);
    runWorker();
    runWorker();
    await waitFor(() => tally(runs, ids).neverRan < JOBS * 0.7, 60_000, '30 % of the jobs run');
    await victim.kill('SIGKILL');
    const killedAt = Date.now();
    await until(() => cluster.isMaster(replica!), 30_000, 'the replica to become master');
    const failoverMs = Date.now() - killedAt;
    await expectAllDoneAfterFailover(
      {
        scenario: 'cluster: SIGKILL slot master',
        redis,
        keys: queue.keys,
        ids,
        runs,
        workers,
        killedAt,
        failoverMs,
      },
      results,
    );
    // Stop the workers gracefully: they deregister through the new master.
    for (const w of workers) w.child.kill('SIGTERM');
    const stopping = Date.now();
    const exits = await Promise.all(workers.map((w) => w.done));
    expect(exits.map((e) => e.code)).toEqual([0, 0]);
    // Idle workers stop at once; nothing may hang on a connection the failover killed.
    expect(Date.now() - stopping).toBeLessThan(10_000);
    await waitFor(async () => (await redis.zcard(queue.keys.workers)) === 0, 10_000, 'workers deregistered');
  });
});
