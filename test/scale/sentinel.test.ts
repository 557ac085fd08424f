/**
 * Sentinel: one master, one replica, three sentinels (down-after 1 s). Two worker processes find the master
 * through the sentinels; the master is SIGKILLed mid-run; the sentinels promote the replica; the workers
 * follow by themselves. What can be lost is what the old master acknowledged but had not replicated: the
 * enqueues were replicated before the kill (WAIT), so every job must complete; re-runs are counted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from '../../src/core/queue.js';
import { tally } from '../faults/harness.js';
import { cleanEnv, oneErrorLine, runCli, snapshotBuild, type SnapshotBuild } from '../helpers/cli.js';
import { waitFor } from '../helpers/context.js';
import { enqueueWork, FailoverRig } from './harness.js';
import { freeClusterPort, LocalSentinelGroup, until } from './servers.js';

const JOBS = Number(process.env.SCALE_JOBS ?? 3000);
let group: LocalSentinelGroup;
let build: SnapshotBuild;
let rig: FailoverRig;

beforeAll(async () => {
  [group, build] = await Promise.all([LocalSentinelGroup.start(), snapshotBuild()]);
  rig = await FailoverRig.open(group.url(), build);
});

afterAll(async () => {
  await rig?.close();
  await group?.destroy();
  build?.remove();
});

function cli(args: string[], url = group.url()) {
  return runCli(build.bin, args, { env: cleanEnv({ REDIS_URL: url }), timeoutMs: 30_000 });
}

function runWorker(): void {
  rig.startWorker(['--concurrency', '25', '--lease', '5s']);
}

describe('Sentinel', () => {
  it('operator commands reach the master through the sentinels; no sentinel answering exits 4', async () => {
    const ok = await cli(['job', 'enqueue', 'probe', '--payload', '{}', '--prefix', 'probe:', '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    const { id } = JSON.parse(ok.stdout) as { id: string };
    const get = await cli(['job', 'get', id, '--prefix', 'probe:', '--json']);
    expect(get.code).toBe(0);
    const [a, b] = [await freeClusterPort(), await freeClusterPort()];
    const down = await cli(
      ['queue', 'stats'],
      `redis+sentinel://:data-pw@127.0.0.1:${a},127.0.0.1:${b}/${group.masterName}?sentinelPassword=sent-pw`,
    );
    expect(down.code).toBe(4);
    expect(oneErrorLine(down)).toMatch(/sentinels at redis\+sentinel:\/\/:\*\*\*@.*sentinelPassword=\*\*\*/);
    expect(down.stderr + down.stdout).not.toMatch(/data-pw|sent-pw/);
    const noName = await cli(['queue', 'stats'], `redis+sentinel://127.0.0.1:${a}`);
    expect(noName.code).toBe(2);
    expect(oneErrorLine(noName)).toMatch(/master name/);
  });

  it('SIGKILL the master mid-run: the sentinels promote the replica and the workers follow', async () => {
    const queue = new Queue(rig.redis);
    const ids = await enqueueWork(queue, JOBS);
    // Acknowledged and replicated: the limit of what a failover keeps (replication is asynchronous).
    expect(await rig.redis.call('WAIT', 1, 5000)).toBe(1);
    expect(await group.currentMasterPort()).toBe(group.master.port);
    runWorker();
    runWorker();
    await waitFor(() => tally(rig.runs, ids).neverRan < JOBS * 0.7, 60_000, '30 % of the jobs run');
    await group.master.kill('SIGKILL');
    const killedAt = Date.now();
    await until(
      async () => (await group.currentMasterPort()) === group.replica.port,
      30_000,
      'sentinel failover',
    );
    const failoverMs = Date.now() - killedAt;
    await rig.expectAllDone({
      scenario: 'sentinel: SIGKILL master',
      keys: queue.keys,
      ids,
      killedAt,
      failoverMs,
    });
    const stats = await cli(['queue', 'stats', '--json']);
    expect(stats.code).toBe(0);
    expect((JSON.parse(stats.stdout) as { ready: { total: number } }).ready.total).toBe(0);
    await rig.expectWorkersStop();
  });
});
