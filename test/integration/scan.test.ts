/**
 * `scan corrupt` against a real redis-server: the broken states the runbook describes are seeded as raw
 * keys, and every test checks the JSON report, the exit code and that nothing else in Redis changed (the
 * whole prefix is snapshotted before and after). The main paths run in-process from the sources (the
 * command class, or the inspector when a test must act between two steps); exit codes, one-line errors
 * and --json are also checked end to end on the built CLI.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '@oclif/core';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import ScanCorrupt from '../../src/commands/scan/corrupt.js';
import { decodeJob } from '../../src/core/codec.js';
import { quickCheck, scanCorrupt, type ScanReport } from '../../src/inspector/scan.js';
import { cleanEnv, keysUnder, oneErrorLine, runCli, type SnapshotBuild } from '../helpers/cli.js';
import { freshPrefix, rawClient, testRedisUrl } from '../helpers/context.js';
import { closeTestBed, inProcessRunner, openTestBed } from '../helpers/in-process.js';
import { RedisServer } from '../helpers/redis-server.js';
import { jobDocument, loadVectors, seedVectors, VECTOR_FILES } from '../helpers/seed.js';
import { changedKeys, snapshot } from '../helpers/snapshot.js';

const OLD = '2025-11-10T04:16:33.123Z';
/** 2031-01-01T00:00:00Z in Unix seconds. */
const AT_2031 = 1924992000;

let build: SnapshotBuild;
let config: Config;
let redis: Redis;
let scratch: string;

beforeAll(async () => {
  ({ build, config, redis, scratch } = await openTestBed({ scratch: 'bananas-scan-test-' }));
});

afterAll(() => closeTestBed({ build, redis, scratch }));

afterEach(() => {
  // The command sets process.exitCode = 7 when it finds problems; it must not leak into vitest.
  process.exitCode = undefined;
});

const inProcess = inProcessRunner(() => config);

/** Runs `scan corrupt` in this process (from the sources), capturing its output and exit code. */
function scanInProcess(prefix: string, ...args: string[]) {
  return inProcess<ScanReport>(ScanCorrupt, args, { prefix });
}

function cli(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  return runCli(build.bin, ['scan', 'corrupt', ...args], {
    env: cleanEnv({ REDIS_URL: testRedisUrl(), ...options.env }),
    cwd: options.cwd,
    timeoutMs: 20_000,
  });
}

function doc(id: string, fields: Record<string, unknown> = {}): string {
  return jobDocument(id, {
    payload: { to: 'a@example.com', n: 12 },
    created_at: OLD,
    updated_at: OLD,
    ...fields,
  });
}

/**
 * A deployment in the states the runbook describes, every class at least once, next to healthy jobs that
 * must not be reported. Lists are written with RPUSH: index 0 is the newest (left) entry.
 */
async function seedBrokenDeployment(p: string): Promise<void> {
  const now = Date.now();
  const m = redis.multi();
  // Healthy.
  m.set(`${p}job:ok1`, doc('ok1'));
  m.set(`${p}job:ok2`, doc('ok2', { routing_key: 'gpu' }));
  m.set(`${p}job:sched1`, doc('sched1', { status: 'scheduled', scheduled_for: '2030-01-02T03:04:05Z' }));
  m.set(`${p}job:live1`, doc('live1'));
  m.set(`${p}job:done1`, doc('done1', { status: 'completed' }), 'EX', 86400);
  m.set(`${p}job:dead1`, doc('dead1', { status: 'failed', attempts: 3 }), 'EX', 7 * 86400);
  m.set(`${p}job:young1`, doc('young1', { updated_at: new Date(now).toISOString() })); // enqueue in flight
  m.hset(`${p}worker:w-alive`, { id: 'w-alive', host: 'h' });
  // Broken documents.
  m.set(`${p}job:corrupt1`, '{"id":"corrupt1","name":"x","payload":{oops}');
  m.set(`${p}job:corrupt2`, '{"id":"corrupt2",'); // referenced nowhere
  m.set(`${p}job:notjob1`, '{"id":"notjob1","payload":{}}');
  m.set(
    `${p}job:stub1`,
    JSON.stringify({
      corrupted_data: '{"id":"stub1","name":"x","payload":{oops}}',
      error: "Failed to unmarshal job: invalid character 'o' looking for beginning of object key string",
      id: 'stub1',
    }),
    'EX',
    7 * 86400,
  );
  m.set(`${p}job:stub2`, JSON.stringify({ error: 'Job data not found (corrupted reference)', id: 'stub2' }));
  m.set(
    `${p}job:`,
    '{"id":"","name":"daily_report","payload":null,"status":"","priority":"normal","created_at":"0001-01-01T00:00:00Z","updated_at":"0001-01-01T00:00:00Z","attempts":0,"max_retries":0,"routing_key":""}',
  );
  // Orphans: lost between the original's SET and LPUSH; a scheduled one; a finished one without TTL.
  m.set(`${p}job:orphan1`, doc('orphan1', { priority: 'high' }));
  m.set(
    `${p}job:orphan2`,
    doc('orphan2', { status: 'scheduled', scheduled_for: new Date(AT_2031 * 1000).toISOString() }),
  );
  m.set(`${p}job:orphan3`, doc('orphan3', { status: 'completed' }));
  // Processing: a live lease, an expired one (owner gone), an original worker's entries without lease.
  m.set(`${p}job:expired1`, doc('expired1'));
  m.set(`${p}job:dup1`, doc('dup1'));
  m.set(`${p}job:dup2`, doc('dup2', { priority: 'low' }));
  m.set(`${p}job:dup3`, doc('dup3'));
  m.rpush(`${p}queue:normal`, '', 'dup1', 'ok1', 'dup1', 'corrupt1', 'dup3');
  m.rpush(`${p}queue:high`, 'ghost1');
  m.rpush(`${p}queue:low`, 'stub2', 'dup2');
  m.rpush(`${p}route:gpu:queue:normal`, 'ok2');
  m.zadd(`${p}queue:scheduled`, 1893553445, 'sched1', 1893553446, 'ghost2');
  m.rpush(`${p}queue:processing`, 'live1', 'dup2', 'notjob1', 'ghost4', 'expired1');
  m.zadd(`${p}processing:leases`, now + 600_000, 'live1', now + 600_000, 'dup2', now - 60_000, 'expired1');
  m.hset(`${p}processing:owners`, { live1: 'w-alive', dup2: 'w-alive', expired1: 'w-gone' });
  m.rpush(`${p}queue:dead`, 'stub1', 'ghost3', 'dead1', 'dup3');
  await m.exec();
}

const counts = (report: ScanReport) =>
  Object.fromEntries(Object.entries(report.classes).map(([cls, c]) => [cls, c.count]));
const sampleIds = (report: ScanReport, cls: keyof ScanReport['classes']) =>
  report.classes[cls].sample.map((s) => s.id).sort();

describe('scan corrupt: the report', () => {
  it.for(VECTOR_FILES)(
    'documents as the original producers write them (%s): exact findings, nothing changed',
    async (file) => {
      const prefix = freshPrefix();
      await seedVectors(redis, loadVectors(file), prefix);
      const before = await snapshot(redis, prefix);
      const run = await scanInProcess(prefix, '--json');
      const report = run.result!;
      if (file === 'go-original') {
        // Three error stubs in the DLQ, the cron job's empty id, the original worker's unleased entry.
        expect(run.exit).toBe(7);
        expect(report.problems).toBe(5);
        expect(counts(report)).toMatchObject({ stub: 3, empty_id: 1, missing_lease: 1, orphan: 0 });
        expect(sampleIds(report, 'stub')).toEqual([
          '4b5c6d7e-8f90-4a1b-8c2d-3e4f5a6b7c8d',
          '6c7d8e9f-0a1b-4c2d-9e3f-4a5b6c7d8e9f',
          '8e9f0a1b-2c3d-4e5f-8a6b-7c8d9e0f1a2b',
        ]);
        expect(report.classes.missing_lease.sample).toEqual([
          { id: 'c0ffee00-1234-4abc-8def-0123456789ab', owner: null, lease_deadline: null },
        ]);
        expect(report.classes.empty_id.sample[0]).toMatchObject({
          id: '',
          places: [`${prefix}queue:normal`],
        });
        expect(report.scanned).toEqual({
          documents: 12,
          ready_lists: 4,
          ready_entries: 4,
          processing_entries: 1,
          dead_entries: 4,
          scheduled_entries: 1,
        });
      } else {
        expect(run.exit).toBe(0);
        expect(report.clean).toBe(true);
        expect(report.problems).toBe(0);
      }
      expect(await snapshot(redis, prefix)).toEqual(before);
    },
  );

  it('finds every class the runbook describes, with exact counts and samples, and changes nothing', async () => {
    const prefix = freshPrefix();
    await seedBrokenDeployment(prefix);
    const before = await snapshot(redis, prefix);
    const run = await scanInProcess(prefix, '--json');
    expect(run.exit).toBe(7);
    expect(run.stderr).toBe('');
    const report = run.result!;
    expect(JSON.parse(run.stdout)).toEqual(JSON.parse(JSON.stringify(report)));
    expect(counts(report)).toEqual({
      invalid_json: 2,
      not_a_job: 1,
      stub: 2,
      empty_id: 1,
      missing_document: 4,
      orphan: 3,
      expired_lease: 1,
      missing_lease: 2,
      duplicate: 3,
    });
    expect(report.problems).toBe(19);
    expect(report.clean).toBe(false);
    expect(sampleIds(report, 'invalid_json')).toEqual(['corrupt1', 'corrupt2']);
    expect(report.classes.invalid_json.sample.find((s) => s.id === 'corrupt1')).toMatchObject({
      key: `${prefix}job:corrupt1`,
      places: [`${prefix}queue:normal`],
      ttl_ms: null,
      reason: expect.stringMatching(/^invalid JSON/),
    });
    expect(report.classes.invalid_json.sample.find((s) => s.id === 'corrupt2')?.places).toEqual([]);
    expect(report.classes.not_a_job.sample).toEqual([
      expect.objectContaining({ id: 'notjob1', places: [`${prefix}queue:processing`] }),
    ]);
    expect(sampleIds(report, 'stub')).toEqual(['stub1', 'stub2']);
    expect(report.classes.stub.sample.find((s) => s.id === 'stub1')).toMatchObject({
      places: [`${prefix}queue:dead`],
      ttl_ms: expect.any(Number),
      reason: expect.stringContaining('Failed to unmarshal job'),
    });
    expect(report.classes.missing_document.by_place).toEqual({
      ready: 1,
      scheduled: 1,
      processing: 1,
      dead: 1,
    });
    expect(
      report.classes.missing_document.sample.map((s) => `${s.id}@${s.place!.slice(prefix.length)}`).sort(),
    ).toEqual([
      'ghost1@queue:high',
      'ghost2@queue:scheduled',
      'ghost3@queue:dead',
      'ghost4@queue:processing',
    ]);
    // young1 (updated now: its enqueue may be in flight), done1 (TTL) and dead1 are not orphans.
    expect(sampleIds(report, 'orphan')).toEqual(['orphan1', 'orphan2', 'orphan3']);
    expect(report.classes.orphan.sample.find((s) => s.id === 'orphan3')).toMatchObject({
      name: 'send_email',
      status: 'completed',
      updated_at: OLD,
    });
    expect(report.classes.expired_lease.sample).toEqual([
      { id: 'expired1', owner: 'w-gone', lease_deadline: expect.any(String) },
    ]);
    expect(sampleIds(report, 'missing_lease')).toEqual(['ghost4', 'notjob1']);
    expect(sampleIds(report, 'duplicate')).toEqual(['dup1', 'dup2', 'dup3']);
    const places = (id: string) =>
      report.classes.duplicate.sample
        .find((s) => s.id === id)!
        .places!.map((k) => k.slice(prefix.length))
        .sort();
    expect(places('dup1')).toEqual(['queue:normal', 'queue:normal']);
    expect(places('dup2')).toEqual(['queue:low', 'queue:processing']);
    expect(places('dup3')).toEqual(['queue:dead', 'queue:normal']);
    expect(report.scanned).toMatchObject({
      ready_lists: 4,
      ready_entries: 10,
      processing_entries: 5,
      dead_entries: 4,
      scheduled_entries: 2,
    });
    expect(report.repair).toBeUndefined();
    // Nothing changed, and the run's temporary keys are gone.
    expect(await snapshot(redis, prefix)).toEqual(before);
  });

  it('human output: a table of classes, samples, the hint to --repair --dry-run; exit 7', async () => {
    const prefix = freshPrefix();
    await seedBrokenDeployment(prefix);
    const run = await scanInProcess(prefix);
    expect(run.exit).toBe(7);
    expect(run.stdout).toMatch(/PROBLEM\s+│\s+COUNT/);
    expect(run.stdout).toMatch(
      /id without document\s+│\s+4\s+│.*\(ready 1, scheduled 1, processing 1, dead 1\)/,
    );
    expect(run.stdout).toContain('ghost1  in ' + `${prefix}queue:high`);
    expect(run.stdout).toContain('Found 19 problems.');
    expect(run.stdout).toContain('bananas scan corrupt --repair --dry-run');
  });

  it('a queue key holding the wrong kind of value is reported, skipped and never touched; the rest is still scanned', async () => {
    const prefix = freshPrefix();
    await redis
      .multi()
      .set(`${prefix}queue:high`, 'not a list')
      .hset(`${prefix}processing:leases`, 'x', '1')
      .lpush(`${prefix}queue:normal`, 'ghost')
      .exec();
    const before = await snapshot(redis, prefix);
    const run = await scanInProcess(prefix, '--json');
    expect(run.exit).toBe(7);
    const report = run.result!;
    expect(report.wrong_type).toEqual([
      { key: `${prefix}queue:high`, type: 'string', expected: 'list' },
      { key: `${prefix}processing:leases`, type: 'hash', expected: 'zset' },
    ]);
    expect(report.classes.missing_document.count).toBe(1);
    expect(report.problems).toBe(3);
    expect(report.clean).toBe(false);

    const human = await scanInProcess(prefix);
    expect(human.stdout).toContain(`${prefix}queue:high  holds a string, expected a list`);

    const repaired = await scanInProcess(
      prefix,
      '--repair',
      '--yes',
      '--json',
      '--backup',
      join(scratch, `${prefix}wt.jsonl`),
    );
    expect(repaired.result!.repair!.actions.remove_reference.applied).toBe(1);
    const after = await snapshot(redis, prefix);
    expect(changedKeys(before, after)).toEqual([`${prefix}queue:normal`]);
    expect(await redis.get(`${prefix}queue:high`)).toBe('not a list');
  });

  it('--sample bounds every sample; the counts stay exact', async () => {
    const prefix = freshPrefix();
    const m = redis.multi();
    for (let i = 0; i < 30; i++) m.set(`${prefix}job:orphan-${i}`, doc(`orphan-${i}`));
    for (let i = 0; i < 25; i++) m.lpush(`${prefix}queue:normal`, `ghost-${i}`);
    await m.exec();
    const report = (await scanInProcess(prefix, '--json', '--sample', '5')).result!;
    expect(report.sample_limit).toBe(5);
    expect(report.classes.orphan).toMatchObject({ count: 30, sample_truncated: true });
    expect(report.classes.orphan.sample).toHaveLength(5);
    expect(report.classes.missing_document).toMatchObject({ count: 25, sample_truncated: true });
    expect(report.classes.missing_document.sample).toHaveLength(5);
  });

  it('pages through lists longer than a page and documents over many SCAN steps', async () => {
    const prefix = freshPrefix();
    const ids = Array.from({ length: 2600 }, (_, i) => `job-${i}`);
    for (let i = 0; i < ids.length; i += 500) {
      const m = redis.multi();
      for (const id of ids.slice(i, i + 500)) m.set(`${prefix}job:${id}`, doc(id));
      await m.exec();
    }
    // index 0 (newest) .. 2602: a ghost at each end, and job-500 twice, in the first and the last page.
    const list = ['ghost-newest', ...ids, 'job-500', 'ghost-oldest'];
    for (let i = 0; i < list.length; i += 1000)
      await redis.rpush(`${prefix}queue:normal`, ...list.slice(i, i + 1000));
    const before = await snapshot(redis, prefix);
    const report = (await scanInProcess(prefix, '--json')).result!;
    expect(report.scanned.documents).toBe(2600);
    expect(report.scanned.ready_entries).toBe(2603);
    expect(counts(report)).toMatchObject({ missing_document: 2, duplicate: 1, orphan: 0 });
    expect(sampleIds(report, 'missing_document')).toEqual(['ghost-newest', 'ghost-oldest']);
    expect(sampleIds(report, 'duplicate')).toEqual(['job-500']);
    expect(await snapshot(redis, prefix)).toEqual(before);
  });

  it('an id a worker moves while the lists are paged is not reported as duplicated or orphaned', async () => {
    const prefix = freshPrefix();
    const m = redis.multi();
    m.set(`${prefix}job:a`, doc('a')).set(`${prefix}job:b`, doc('b'));
    m.rpush(`${prefix}queue:processing`, 'a').zadd(`${prefix}processing:leases`, Date.now() + 60_000, 'a');
    m.hset(`${prefix}processing:owners`, 'a', 'w1');
    m.rpush(`${prefix}queue:normal`, 'b');
    await m.exec();
    const client = rawClient();
    let moved = false;
    try {
      // processing is paged before the ready lists: right after its page, `a` goes back to its queue (lease
      // recovery) and a worker takes `b`. The first pass then sees `a` twice and `b` nowhere.
      const report = await scanCorrupt(client, prefix, {
        onProgress: (phase, done) => {
          if (phase !== 'Reading queues' || done < 1 || moved) return;
          moved = true;
          // Same connection: these run before the scan's next page.
          void client
            .multi()
            .lrem(`${prefix}queue:processing`, 0, 'a')
            .zrem(`${prefix}processing:leases`, 'a')
            .hdel(`${prefix}processing:owners`, 'a')
            .rpush(`${prefix}queue:normal`, 'a')
            .lrem(`${prefix}queue:normal`, 0, 'b')
            .lpush(`${prefix}queue:processing`, 'b')
            .exec();
        },
      });
      expect(moved).toBe(true);
      expect(counts(report)).toMatchObject({ duplicate: 0, orphan: 0 });
      expect(report.problems).toBe(0);
      expect(await redis.lrange(`${prefix}queue:normal`, 0, -1)).toEqual(['a']);
    } finally {
      client.disconnect();
    }
  });

  it('temporary keys live under <prefix>scan:<run>: with a TTL while it runs, and are gone afterwards', async () => {
    const prefix = freshPrefix();
    await seedBrokenDeployment(prefix);
    const client = rawClient();
    let seen: Promise<Array<string | number>> | undefined;
    try {
      await scanCorrupt(client, prefix, {
        onProgress: (phase) => {
          if (phase !== 'Scanning documents' || seen) return;
          // One script, issued on the scan's connection, so it runs while the temporary keys exist.
          seen = client.eval(
            "local r = redis.call('SCAN', '0', 'MATCH', ARGV[1], 'COUNT', 1000000) local out = {} for _, k in ipairs(r[2]) do out[#out + 1] = k out[#out + 1] = redis.call('PTTL', k) end return out",
            // A key of the deployment routes the script to its node on a cluster.
            1,
            `${prefix}scan`,
            `${prefix}scan:*`,
          ) as Promise<Array<string | number>>;
        },
      });
      const found = await seen!;
      const names = found.filter((_, i) => i % 2 === 0) as string[];
      expect(names).toContainEqual(expect.stringMatching(new RegExp(`^${prefix}scan:[0-9a-f]{12}:refs$`)));
      for (let i = 1; i < found.length; i += 2) {
        expect(found[i]).toBeGreaterThan(0);
        expect(found[i]).toBeLessThanOrEqual(15 * 60_000);
      }
      const left = await redis.eval(
        "return redis.call('SCAN', '0', 'MATCH', ARGV[1], 'COUNT', 1000000)[2]",
        0,
        `${prefix}scan:*`,
      );
      expect(left).toEqual([]);
    } finally {
      client.disconnect();
    }
  });

  it('the quick document check never accepts what the codec refuses', () => {
    const docs: string[] = [];
    for (const file of VECTOR_FILES) {
      for (const entry of Object.values(loadVectors(file).keys)) {
        if (entry.type === 'string') docs.push(entry.value);
      }
    }
    const variants = [
      doc('x'),
      doc('x', { name: '' }),
      doc('x', { name: 5 }),
      doc('x', { id: 7 }),
      doc('x', { status: null }),
      doc('x', { priority: 3 }),
      doc('x', { attempts: -1 }),
      doc('x', { attempts: 1.5 }),
      doc('x', { max_retries: '3' }),
      '{"error":"Job data not found (corrupted reference)","id":"x"}',
      '{"error":"boom","id":"x","name":"n"}',
      '[1,2]',
      'null',
      '"text"',
      '{"id":"x","name":"n"',
      '\ufeff{"id":"x","name":"n"}',
      '{"id":"x","name":"n","__proto__":{"a":1}}',
    ];
    const buffers = [...docs, ...variants].map((text) => Buffer.from(text, 'utf8'));
    buffers.push(Buffer.from([0x7b, 0x22, 0x69, 0x64, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d])); // invalid UTF-8
    let accepted = 0;
    for (const bytes of buffers) {
      if (!quickCheck(bytes).ok) continue;
      accepted++;
      expect(decodeJob(bytes).ok, bytes.toString()).toBe(true);
    }
    expect(accepted).toBeGreaterThan(20);
  });
});

describe('scan corrupt --repair', () => {
  /**
   * Seeds the broken deployment under a fresh prefix, snapshots it, then runs `scan corrupt --json
   * --repair` with `flags` and a --backup file in the scratch directory named after `name` and the prefix.
   */
  async function repairBrokenDeployment(name: string, ...flags: string[]) {
    const prefix = freshPrefix();
    await seedBrokenDeployment(prefix);
    const before = await snapshot(redis, prefix);
    const backup = join(scratch, `${name}-${prefix.slice(0, -1)}.jsonl`);
    const run = await scanInProcess(prefix, '--json', '--repair', ...flags, '--backup', backup);
    return { prefix, before, backup, run };
  }

  it('--dry-run lists exactly what it would do and changes nothing (no backup either)', async () => {
    const { prefix, before, backup, run } = await repairBrokenDeployment('dry', '--dry-run');
    expect(run.exit).toBe(7);
    const repair = run.result!.repair!;
    expect(repair.dry_run).toBe(true);
    expect(repair.backup_file).toBeNull();
    const k = (s: string) => `${prefix}${s}`;
    const planned = Object.fromEntries(Object.entries(repair.actions).map(([a, r]) => [a, r.planned]));
    expect(planned).toEqual({
      remove_reference: 4,
      dead_letter: 3,
      return_to_queue: 1,
      remove_duplicate: 2,
      requeue: 2,
    });
    for (const r of Object.values(repair.actions)) expect([r.applied, r.changed]).toEqual([0, 0]);
    const byId = (action: keyof typeof repair.actions) =>
      Object.fromEntries(repair.actions[action].sample.map((s) => [s.id, { from: s.from, to: s.to }]));
    expect(byId('remove_reference')).toEqual({
      ghost1: { from: [k('queue:high')], to: null },
      ghost2: { from: [k('queue:scheduled')], to: null },
      ghost3: { from: [k('queue:dead')], to: null },
      ghost4: { from: [k('queue:processing')], to: null },
    });
    expect(byId('dead_letter')).toEqual({
      corrupt1: { from: [k('queue:normal')], to: k('queue:dead') },
      notjob1: { from: [k('queue:processing')], to: k('queue:dead') },
      stub2: { from: [k('queue:low')], to: k('queue:dead') },
    });
    expect(byId('return_to_queue')).toEqual({
      expired1: { from: [k('queue:processing')], to: k('queue:normal') },
    });
    expect(byId('remove_duplicate')).toEqual({
      dup1: { from: [k('queue:normal')], to: k('queue:normal') },
      dup2: { from: [k('queue:low')], to: k('queue:processing') },
    });
    expect(byId('requeue')).toEqual({
      orphan1: { from: [], to: k('queue:high') },
      orphan2: { from: [], to: k('queue:scheduled') },
    });
    expect(repair.left.map((l) => `${l.class}:${l.count}`).sort()).toEqual([
      'duplicate:1',
      'empty_id:1',
      'invalid_json:1',
      'orphan:1',
      'stub:1',
    ]);
    expect(existsSync(backup)).toBe(false);
    expect(await snapshot(redis, prefix)).toEqual(before);

    const human = await scanInProcess(prefix, '--repair', '--dry-run');
    expect(human.stdout).toMatch(/REPAIR \(DRY RUN\)/);
    expect(human.stdout).toContain(`orphan1  (nowhere) → ${k('queue:high')}`);
    expect(human.stdout).toContain('Dry run: nothing was changed.');
    expect(await snapshot(redis, prefix)).toEqual(before);
  });

  it('--yes: backup first, then each class repaired the safe way; documents untouched; only planned keys change', async () => {
    const { prefix, before, backup, run } = await repairBrokenDeployment('repair', '--yes');
    const k = (s: string) => `${prefix}${s}`;
    expect(run.exit).toBe(7);
    const repair = run.result!.repair!;
    expect(repair.backup_file).toBe(backup);
    for (const r of Object.values(repair.actions)) {
      expect(r.applied).toBe(r.planned);
      expect(r.changed).toBe(0);
    }
    const after = await snapshot(redis, prefix);
    // Only the lists, sets and hashes the plan names changed; no job document was written or deleted.
    const touched = [
      'processing:leases',
      'processing:owners',
      'queue:dead',
      'queue:high',
      'queue:low',
      'queue:normal',
      'queue:processing',
      'queue:scheduled',
      'signal',
    ].map(k);
    expect(changedKeys(before, after)).toEqual(touched);
    expect(await redis.lrange(k('queue:normal'), 0, -1)).toEqual(['', 'ok1', 'dup1', 'dup3', 'expired1']);
    expect(await redis.lrange(k('queue:high'), 0, -1)).toEqual(['orphan1']);
    expect(await redis.exists(k('queue:low'))).toBe(0);
    expect(await redis.zrange(k('queue:scheduled'), 0, -1, 'WITHSCORES')).toEqual([
      'sched1',
      '1893553445',
      'orphan2',
      String(AT_2031),
    ]);
    expect(await redis.lrange(k('queue:processing'), 0, -1)).toEqual(['live1', 'dup2']);
    expect(await redis.zrange(k('processing:leases'), 0, -1)).toEqual(['dup2', 'live1']);
    expect(await redis.hgetall(k('processing:owners'))).toEqual({ live1: 'w-alive', dup2: 'w-alive' });
    const dead = await redis.lrange(k('queue:dead'), 0, -1);
    expect(dead.slice(3)).toEqual(['stub1', 'dead1', 'dup3']);
    expect(dead.slice(0, 3).sort()).toEqual(['corrupt1', 'notjob1', 'stub2']);
    expect(await redis.lrange(k('signal'), 0, -1)).toEqual(['1']);

    // The backup holds every changed key as it was before (and says which did not exist yet).
    const lines = readFileSync(backup, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.key).sort()).toEqual(touched);
    for (const line of lines) {
      const was = before[line.key as string];
      if (!was) {
        expect(line).toMatchObject({ type: 'none', value: null, ttl_ms: -2 });
        continue;
      }
      expect(line.type).toBe(was.type);
      expect(line.ttl_ms).toBe(-1);
      if (was.type === 'zset') expect((line.value as string[][]).flat()).toEqual(was.value);
      else expect(line.value).toEqual(was.value);
    }

    // What is left is what the repair leaves by design.
    const again = (await scanInProcess(prefix, '--json')).result!;
    expect(counts(again)).toEqual({
      invalid_json: 2, // corrupt1 now in the DLQ, corrupt2 referenced nowhere
      not_a_job: 1, // in the DLQ
      stub: 2, // in the DLQ
      empty_id: 1,
      missing_document: 0,
      orphan: 1, // the completed one without TTL
      expired_lease: 0,
      missing_lease: 0,
      duplicate: 1, // dup3: ready and dead
    });
  });

  it('every repair re-checks its precondition when it runs: what changed after the plan is left alone', async () => {
    const prefix = freshPrefix();
    const k = (s: string) => `${prefix}${s}`;
    await seedBrokenDeployment(prefix);
    const client = rawClient();
    try {
      const report = await scanCorrupt(client, prefix, {
        repair: {
          dryRun: false,
          backupFile: join(scratch, `recheck-${prefix.slice(0, -1)}.jsonl`),
          // Between the plan and the repair, operators and workers act:
          confirm: async () => {
            await redis
              .multi()
              .set(k('job:corrupt1'), doc('corrupt1')) // someone fixed the document
              .set(k('job:ghost1'), doc('ghost1')) // the missing document was restored
              .zadd(k('processing:leases'), Date.now() + 60_000, 'expired1') // the worker renewed its lease
              .lpush(k('queue:high'), 'orphan1') // the orphan was enqueued by hand
              .lrem(k('queue:processing'), 0, 'dup2') // the job holding dup2 finished
              .exec();
          },
        },
      });
      const a = report.repair!.actions;
      expect([a.dead_letter.applied, a.dead_letter.changed]).toEqual([2, 1]);
      expect([a.remove_reference.applied, a.remove_reference.changed]).toEqual([3, 1]);
      expect([a.return_to_queue.applied, a.return_to_queue.changed]).toEqual([0, 1]);
      expect([a.requeue.applied, a.requeue.changed]).toEqual([1, 1]);
      expect([a.remove_duplicate.applied, a.remove_duplicate.changed]).toEqual([1, 1]);
      expect(await redis.lrange(k('queue:high'), 0, -1)).toEqual(['orphan1', 'ghost1']);
      expect(await redis.lrange(k('queue:normal'), 0, -1)).toEqual(['', 'ok1', 'dup1', 'corrupt1', 'dup3']);
      expect(await redis.lrange(k('queue:low'), 0, -1)).toEqual(['dup2']);
      expect(await redis.lrange(k('queue:processing'), 0, -1)).toEqual(['live1', 'expired1']);
      expect(await redis.lpos(k('queue:dead'), 'corrupt1')).toBeNull();
      expect(await redis.hget(k('processing:owners'), 'expired1')).toBe('w-gone');
    } finally {
      client.disconnect();
    }
  });

  it('an id in two classes is repaired once, by the repair that fits it', async () => {
    const prefix = freshPrefix();
    const k = (s: string) => `${prefix}${s}`;
    const expired = Date.now() - 60_000;
    // In processing with an expired lease: a corrupt document (→ dead-letter queue, not back to a queue)
    // and a missing one (→ back to its queue, as lease recovery does; the next dequeue dead-letters it).
    await redis
      .multi()
      .set(k('job:bad'), '{"id":"bad","name":')
      .rpush(k('queue:processing'), 'bad', 'gone')
      .zadd(k('processing:leases'), expired, 'bad', expired, 'gone')
      .hset(k('processing:owners'), { bad: 'w', gone: 'w' })
      .exec();
    const run = await scanInProcess(
      prefix,
      '--json',
      '--repair',
      '--yes',
      '--backup',
      join(scratch, `two-${prefix.slice(0, -1)}.jsonl`),
    );
    expect(counts(run.result!)).toMatchObject({ invalid_json: 1, missing_document: 1, expired_lease: 2 });
    const actions = run.result!.repair!.actions;
    expect(actions.dead_letter.sample).toEqual([
      { id: 'bad', from: [k('queue:processing')], to: k('queue:dead') },
    ]);
    expect(actions.return_to_queue.sample).toEqual([
      { id: 'gone', from: [k('queue:processing')], to: k('queue:normal') },
    ]);
    expect(actions.remove_reference.planned).toBe(0);
    for (const r of Object.values(actions)) expect(r.changed).toBe(0);
    expect(run.result!.repair!.left).toEqual([]);
    expect(await redis.lrange(k('queue:dead'), 0, -1)).toEqual(['bad']);
    expect(await redis.lrange(k('queue:normal'), 0, -1)).toEqual(['gone']);
    expect(await redis.exists(k('queue:processing'), k('processing:leases'), k('processing:owners'))).toBe(0);
  });

  it('refuses when the temporary index would not fit under maxmemory (exit 8); nothing changes', async () => {
    const server = await RedisServer.start({ args: ['--maxmemory', '3mb'] });
    const client = rawClient(server.url);
    try {
      const prefix = freshPrefix();
      const ids = Array.from({ length: 20_000 }, (_, i) => `id-${i}`);
      for (let i = 0; i < ids.length; i += 5000)
        await client.rpush(`${prefix}queue:normal`, ...ids.slice(i, i + 5000));
      const before = await snapshot(client, prefix);
      const result = await cli(['--json', '--prefix', prefix, '--redis-url', server.url]);
      expect(result.code).toBe(8);
      expect(JSON.parse(result.stdout)).toMatchObject({ error: { code: 'CONFLICT', exitCode: 8 } });
      expect(oneErrorLine(result)).toMatch(/not enough Redis memory for the scan: .* 20000 queued ids/);
      expect(await snapshot(client, prefix)).toEqual(before);
    } finally {
      client.disconnect();
      await server.destroy();
    }
  });
});

describe('scan corrupt: the built CLI', () => {
  it('--json prints one JSON document and nothing else: exit 0 when clean, 7 when something is found', async () => {
    const clean = freshPrefix();
    await seedVectors(redis, loadVectors('typescript-sdk'), clean);
    const ok = await cli(['--json', '--prefix', clean]);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toBe('');
    expect(JSON.parse(ok.stdout)).toMatchObject({ clean: true, problems: 0, prefix: clean });

    const broken = freshPrefix();
    await seedBrokenDeployment(broken);
    const before = await snapshot(redis, broken);
    const bad = await cli(['--json', '--prefix', broken]);
    expect(bad.code).toBe(7);
    expect(bad.stderr).toBe('');
    expect(JSON.parse(bad.stdout)).toMatchObject({ clean: false, problems: 19 });
    expect(await snapshot(redis, broken)).toEqual(before);
  });

  it('--repair --yes without --backup writes the default backup file in the working directory', async () => {
    const prefix = freshPrefix();
    await seedBrokenDeployment(prefix);
    const cwd = mkdtempSync(join(scratch, 'cwd-'));
    const result = await cli(['--repair', '--yes', '--json', '--prefix', prefix], { cwd });
    expect(result.code).toBe(7);
    expect(result.stderr).toBe('');
    const report = JSON.parse(result.stdout) as ScanReport;
    expect(report.repair!.backup_file).toMatch(/^bananas-scan-backup-\d{4}-\d{2}-\d{2}T[\d-]+Z\.jsonl$/);
    expect(readdirSync(cwd)).toEqual([report.repair!.backup_file]);
    expect(report.repair!.actions.requeue.applied).toBe(2);
  });

  it('--repair without --yes is refused when stdin is not a terminal: exit 2, one line, nothing changed', async () => {
    const prefix = freshPrefix();
    await seedBrokenDeployment(prefix);
    const before = await snapshot(redis, prefix);
    const result = await cli(['--repair', '--prefix', prefix]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(oneErrorLine(result)).toMatch(/refused without --yes \(stdin is not a terminal\)/);
    expect(await snapshot(redis, prefix)).toEqual(before);
  });

  it('--backup naming an existing file is refused before anything is read or changed', async () => {
    const prefix = freshPrefix();
    await seedBrokenDeployment(prefix);
    const before = await snapshot(redis, prefix);
    const existing = join(scratch, 'existing.jsonl');
    writeFileSync(existing, 'keep me\n');
    const result = await cli(['--repair', '--yes', '--backup', existing, '--prefix', prefix]);
    expect(result.code).toBe(2);
    expect(oneErrorLine(result)).toMatch(/backup file .*existing\.jsonl already exists/);
    expect(readFileSync(existing, 'utf8')).toBe('keep me\n');
    expect(await snapshot(redis, prefix)).toEqual(before);
  });

  describe.concurrent('bad input exits 2 with one line and writes nothing', () => {
    it.for<[string, string[], RegExp]>([
      ['--backup without --repair', ['--backup', 'x.jsonl'], /--repair/],
      ['--sample 0', ['--sample', '0'], /--sample must be a whole number ≥ 1/],
      ['--sample 5000', ['--sample', '5000'], /--sample must be at most 1000/],
      ['--sample abc', ['--sample', 'abc'], /--sample must be a whole number/],
      ['a prefix with a glob character', ['--prefix', 'bad*'], /invalid prefix "bad\*"/],
      ['an unknown flag', ['--bogus'], /Nonexistent flag: --bogus/],
    ])('%s', async ([, args, message], { expect }) => {
      const prefix = freshPrefix();
      const result = await cli([...(args.includes('--prefix') ? [] : ['--prefix', prefix]), ...args]);
      expect(result.code).toBe(2);
      expect(result.stdout).toBe('');
      expect(oneErrorLine(result)).toMatch(message);
      expect(await keysUnder(redis, prefix)).toEqual([]);
    });
  });

  it('unreachable Redis: exit 4 and one line', async () => {
    const result = await cli(['--redis-url', 'redis://127.0.0.1:1', '--json']);
    expect(result.code).toBe(4);
    expect(JSON.parse(result.stdout)).toMatchObject({ error: { code: 'REDIS_UNAVAILABLE', exitCode: 4 } });
    oneErrorLine(result);
  });
});
