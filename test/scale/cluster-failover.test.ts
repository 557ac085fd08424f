/**
 * Failover in Redis Cluster: two worker processes (the built CLI) work through a backlog; the master that
 * owns the `{bananas}` slot is SIGKILLed mid-run; its replica takes over (cluster-node-timeout 1.5 s); the
 * workers carry on by themselves. Every job enqueued before the kill must complete (replication had
 * long caught up with the enqueues); jobs run twice are counted and reported (a settlement the dead master
 * acknowledged but had not yet streamed to its replica makes its job run again once its lease expires).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeForKey } from '../../src/core/connection.js';
import { Queue } from '../../src/core/queue.js';
import { tally } from '../faults/harness.js';
import { snapshotBuild, type SnapshotBuild } from '../helpers/cli.js';
import { waitFor } from '../helpers/context.js';
import { enqueueWork, FailoverRig } from './harness.js';
import { LocalCluster, until } from './servers.js';

const PREFIX = '{bananas}:';
const JOBS = Number(process.env.SCALE_JOBS ?? 3000);
let cluster: LocalCluster;
let build: SnapshotBuild;
let rig: FailoverRig;

beforeAll(async () => {
  [cluster, build] = await Promise.all([
    LocalCluster.start({ nodeTimeoutMs: 1500, args: ['--appendonly', 'yes', '--appendfsync', 'always'] }),
    snapshotBuild(),
  ]);
  rig = await FailoverRig.open(cluster.url(), build);
});

afterAll(async () => {
  await rig?.close();
  await cluster?.destroy();
  build?.remove();
});

function runWorker(): void {
  rig.startWorker(['--prefix', PREFIX, '--concurrency', '25', '--lease', '5s']);
}

describe('Redis Cluster failover', () => {
  it('SIGKILL the master of the {bananas} slot mid-run: the replica takes over, workers reconnect, no job lost', async () => {
    const queue = new Queue(rig.redis, { prefix: PREFIX });
    const ids = await enqueueWork(queue, JOBS);
    const victim = await cluster.masterOf(queue.keys.processing);
    const [replica] = await cluster.replicasOf(victim);
    expect(replica, 'the master of the slot has a replica').toBeDefined();
    expect(await cluster.isMaster(replica!)).toBe(false);
    // The enqueues are acknowledged; WAIT until the replica has them too (replication is asynchronous).
    const master = await nodeForKey(rig.redis, queue.keys.processing);
    expect(await master.call('WAIT', 1, 5000)).toBe(1);
    runWorker();
    runWorker();
    await waitFor(() => tally(rig.runs, ids).neverRan < JOBS * 0.7, 60_000, '30 % of the jobs run');
    await victim.kill('SIGKILL');
    const killedAt = Date.now();
    await until(() => cluster.isMaster(replica!), 30_000, 'the replica to become master');
    const failoverMs = Date.now() - killedAt;
    await rig.expectAllDone({
      scenario: 'cluster: SIGKILL slot master',
      keys: queue.keys,
      ids,
      killedAt,
      failoverMs,
    });
    // Stop the workers gracefully: they deregister through the new master.
    await rig.expectWorkersStop();
    await waitFor(
      async () => (await rig.redis.zcard(queue.keys.workers)) === 0,
      10_000,
      'workers deregistered',
    );
  });
});
