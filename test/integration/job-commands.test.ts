/**
 * The single-job commands (`job get`, `job fix`, `job requeue`, `job delete`) against the test Redis, on
 * the broken states the runbook describes, seeded raw: dead-lettered jobs with a 7-day TTL, the
 * original's stubs, corrupt bytes, the empty-id cron job, orphaned ids, ids in two places, jobs held by a
 * worker. Every test snapshots all keys under its prefix before and after, and checks that exactly the
 * keys the command is meant to change changed. Main paths run in-process from the sources; exit codes,
 * one-line errors and --json are also checked on the built CLI.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Config } from '@oclif/core';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import JobDelete from '../../src/commands/job/delete.js';
import JobFix from '../../src/commands/job/fix.js';
import JobGet from '../../src/commands/job/get.js';
import JobRequeue from '../../src/commands/job/requeue.js';
import { decodeJob } from '../../src/core/codec.js';
import { ConflictError } from '../../src/core/errors.js';
import { Keys } from '../../src/core/keys.js';
import { runScript } from '../../src/core/scripts.js';
import {
  compactJson,
  editableDocument,
  fixJob,
  parseAssignments,
  prettyJson,
  type DeleteResult,
  type FixResult,
  type JobDetails,
  type RequeueResult,
} from '../../src/inspector/job.js';
import {
  cleanEnv,
  oneErrorLine,
  PROJECT_ROOT,
  runCli,
  snapshotBuild,
  type CliResult,
  type SnapshotBuild,
} from '../helpers/cli.js';
import { freshPrefix, rawClient, testRedisUrl } from '../helpers/context.js';
import { runInProcess, type RunnableCommand } from '../helpers/in-process.js';
import { loadVectors, seedVectors } from '../helpers/seed.js';
import { snapshot, type KeySnapshot } from '../helpers/snapshot.js';

// Ids of the Go vector (test/fixtures/vectors/go-original.json).
const DEAD_JOB = '7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918'; // failed after 3 attempts, TTL 7 d, oldest DLQ entry
const STUB_UNMARSHAL = '6c7d8e9f-0a1b-4c2d-9e3f-4a5b6c7d8e9f'; // corrupted_data stub, in the middle of the DLQ
const STUB_MISSING = '4b5c6d7e-8f90-4a1b-8c2d-3e4f5a6b7c8d'; // "Job data not found" stub
const SCHEDULED = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d'; // retry pending, attempts 1
const IN_PROCESSING = 'c0ffee00-1234-4abc-8def-0123456789ab'; // an original worker's: no lease
const GPU = '5d0c2f8e-7a41-4b6e-9c3d-2e1f0a9b8c7d'; // route:gpu:queue:high
const LOW = '3c2b1a09-8f7e-4d6c-9b5a-4f3e2d1c0b9a'; // queue:low
const COMPLETED = '1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b'; // completed, in no queue, result hash
const FRESH = '0b6f1a52-3c1e-4d8a-9f2e-6a7d5c4b3e21'; // pending in queue:normal, after the cron job ''
const DLQ_ORDER = ['8e9f0a1b-2c3d-4e5f-8a6b-7c8d9e0f1a2b', STUB_UNMARSHAL, STUB_MISSING, DEAD_JOB];

/** A Python-SDK-style document whose payload and unknown field must keep their exact bytes. */
const TRICKY_PAYLOAD = '{"n": 12345678901234567890, "s": "caf\\u00e9 \\u003c&\\u003e", "f": 1.0, "z": []}';
const TRICKY_EXTRA = '{"b": 1, "a": [2.50]}';
function trickyDocument(id: string, fields: Record<string, unknown> = {}): string {
  const base = {
    id,
    name: 'charge_card',
    description: '',
    status: 'failed',
    priority: 'normal',
    created_at: '2026-11-28T14:52:29.195893+00:00',
    updated_at: '2026-11-28T14:52:30.000000+00:00',
    attempts: 3,
    max_retries: 3,
    error: 'card declined',
    routing_key: '',
    ...fields,
  };
  const parts = Object.entries(base).map(([k, v]) => `"${k}": ${JSON.stringify(v)}`);
  parts.splice(3, 0, `"payload": ${TRICKY_PAYLOAD}`);
  parts.push(`"trace": ${TRICKY_EXTRA}`);
  return `{${parts.join(', ')}}`;
}

let redis: Redis;
let config: Config;
let prefix: string;
let scratch: string;

beforeAll(async () => {
  redis = rawClient();
  config = await Config.load(PROJECT_ROOT);
  scratch = mkdtempSync(join(tmpdir(), 'bananas-job-commands-'));
});

afterAll(() => {
  redis?.disconnect();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

beforeEach(() => {
  prefix = freshPrefix();
  vi.unstubAllEnvs();
});

const k = (suffix: string) => `${prefix}${suffix}`;

async function seedGo(): Promise<void> {
  await seedVectors(redis, loadVectors('go-original'), prefix);
}

/** Runs a command in this process (from the sources) under the test's prefix, capturing what it writes. */
function run<T>(command: RunnableCommand, ...argv: string[]) {
  return runInProcess<T>(config, command, argv, { prefix });
}

type Snap = Record<string, KeySnapshot>;

/** Asserts that every key except `changed` is identical in both snapshots; returns the changed keys' pairs. */
function expectOnlyChanged(before: Snap, after: Snap, changed: string[]): void {
  const others = (s: Snap) => Object.fromEntries(Object.entries(s).filter(([key]) => !changed.includes(key)));
  expect(others(after)).toEqual(others(before));
  for (const key of changed) expect(after[key], `${key} should have changed`).not.toEqual(before[key]);
}

// ---------------------------------------------------------------------------------------------------
// job get
// ---------------------------------------------------------------------------------------------------

describe('job get', () => {
  it('a dead-lettered job: decoded document, where it is, TTL, result; nothing changes', async () => {
    await seedGo();
    const before = await snapshot(redis, prefix);
    const r = await run<JobDetails>(JobGet, DEAD_JOB, '--json');
    expect(r.exit).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(r.result);
    const d = r.result as JobDetails;
    expect(d).toMatchObject({
      id: DEAD_JOB,
      key: k(`job:${DEAD_JOB}`),
      document_state: 'ok',
      job: {
        name: 'charge_card',
        status: 'failed',
        priority: 'high',
        attempts: 3,
        max_retries: 3,
        error: 'card declined',
        payload: { amount: 1999, currency: 'USD' },
        payload_json: '{"amount":1999,"currency":"USD"}',
        scheduled_for: null,
      },
      places: [{ kind: 'dead', key: k('queue:dead'), position: 0, occurrences: 1 }],
      lease: null,
      result: { status: 'failed', error: 'card declined', duration_ms: '3' },
      warnings: [],
    });
    expect(d.ttl_seconds).toBeGreaterThan(604_700);
    expect(d.ttl_seconds).toBeLessThanOrEqual(604_800);
    expect(d.raw).toBeUndefined();
    expect(await snapshot(redis, prefix)).toEqual(before);
  });

  it('human output: fields, place, result; no warnings for a consistent job', async () => {
    await seedGo();
    const r = await run(JobGet, DEAD_JOB);
    expect(r.exit).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/name\s+charge_card/);
    expect(r.stdout).toMatch(/dead-letter queue .*queue:dead, position 0/);
    expect(r.stdout).toMatch(/result\s+failed at 2025-11-10T04:16:47Z in 3 ms/);
    expect(r.stdout).toMatch(/expires in (7d|6d 23h 59m)\)/);
    expect(r.stdout).not.toMatch(/warning/);
  });

  it('stubs and corrupt bytes are shown raw with the parse error (exit 0), invalid UTF-8 also as base64', async () => {
    await seedGo();
    const corrupt = Buffer.concat([
      Buffer.from('{"id":"bad","name":"x","payload":{oops} '),
      Buffer.from([0xff, 0xfe]),
    ]);
    await redis.set(k('job:bad'), corrupt);
    await redis.lpush(k('queue:dead'), 'bad');
    const stub = await run<JobDetails>(JobGet, STUB_UNMARSHAL, '--json');
    expect(stub.exit).toBe(0);
    expect(stub.result).toMatchObject({
      document_state: 'stub',
      stub: {
        id: STUB_UNMARSHAL,
        error: expect.stringMatching(/^Failed to unmarshal job/),
        corrupted_data: `{"id":"${STUB_UNMARSHAL}","name":"x","payload":{oops}}`,
      },
      raw: await redis.get(k(`job:${STUB_UNMARSHAL}`)),
    });
    const bad = await run<JobDetails>(JobGet, 'bad', '--json');
    expect(bad.exit).toBe(0);
    expect(bad.result).toMatchObject({
      document_state: 'invalid_json',
      parse_error: 'document is not valid UTF-8',
    });
    expect(Buffer.from(bad.result?.raw_base64 as string, 'base64').equals(corrupt)).toBe(true);
    expect(bad.result?.warnings.join('\n')).toMatch(/not a job .*job fix "bad" --requeue/);
    const human = await run(JobGet, STUB_MISSING);
    expect(human.stdout).toMatch(/STUB/);
    expect(human.stdout).toMatch(/stub error\s+Job data not found/);
  });

  it("the cron job's empty id is addressed as '' (key <prefix>job:), with its position", async () => {
    await seedGo();
    const r = await run<JobDetails>(JobGet, '', '--json');
    expect(r.exit).toBe(0);
    expect(r.result).toMatchObject({
      id: '',
      key: k('job:'),
      document_state: 'ok',
      job: { name: 'daily_report', status: '', max_retries: 0 },
      // LPUSHed before FRESH: the consumer takes FRESH first.
      places: [{ kind: 'ready', key: k('queue:normal'), position: 1 }],
    });
  });

  it('a worker holding the job: lease owner, deadline, owner alive', async () => {
    await seedGo();
    const deadline = Date.now() + 30_000;
    await redis.zadd(k('processing:leases'), deadline, IN_PROCESSING);
    await redis.hset(k('processing:owners'), IN_PROCESSING, 'host:42:abc');
    await redis.hset(k('worker:host:42:abc'), 'pid', '42');
    const r = await run<JobDetails>(JobGet, IN_PROCESSING, '--json');
    expect(r.result).toMatchObject({
      places: [{ kind: 'processing', key: k('queue:processing') }],
      lease: {
        owner: 'host:42:abc',
        owner_alive: true,
        deadline: new Date(deadline).toISOString(),
        expired: false,
      },
      warnings: [],
    });
  });

  it("flags an original worker's id in processing without a lease, ids in two places and twice in a list", async () => {
    await seedGo();
    const noLease = await run<JobDetails>(JobGet, IN_PROCESSING, '--json');
    expect(noLease.result?.lease).toBeNull();
    expect(noLease.result?.warnings).toEqual([
      expect.stringMatching(/in processing without a bananas lease/),
    ]);

    await redis.lpush(k('queue:dead'), LOW);
    await redis.rpush(k('queue:low'), LOW);
    const twice = await run<JobDetails>(JobGet, LOW, '--json');
    expect(twice.result?.places).toEqual([
      { kind: 'ready', key: k('queue:low'), position: 0, occurrences: 2 },
      { kind: 'dead', key: k('queue:dead'), position: 4, occurrences: 1 },
    ]);
    expect(twice.result?.warnings).toEqual([
      expect.stringMatching(/in 2 places .*exactly one/),
      `the id is 2 times in ${k('queue:low')}`,
    ]);
  });

  it('an orphaned id (in a queue, no document) is found: document_state missing, exit 0', async () => {
    await redis.lpush(k('queue:dead'), 'orphan');
    const r = await run<JobDetails>(JobGet, 'orphan', '--json');
    expect(r.exit).toBe(0);
    expect(r.result).toMatchObject({ document_state: 'missing', size_bytes: null, ttl_seconds: null });
    expect(r.result?.warnings[0]).toMatch(/no document/);
    const raw = await run(JobGet, 'orphan', '--raw');
    expect(raw.exit).toBe(3);
    expect(oneErrorLine(raw)).toMatch(/has no document/);
  });

  it('--raw prints the stored bytes exactly', async () => {
    const doc = trickyDocument('py-1');
    await redis.set(k('job:py-1'), doc);
    const r = await run(JobGet, 'py-1', '--raw');
    expect(r.exit).toBe(0);
    expect(r.stdout).toBe(doc);
  });

  it('glob characters are literal: "x*" does not match x1; an id with * ? [ ] is found; unknown → exit 3', async () => {
    await redis.set(k('job:x1'), trickyDocument('x1'));
    await redis.set(k('job:we*rd?[x]'), trickyDocument('we*rd?[x]'));
    const before = await snapshot(redis, prefix);
    const star = await run(JobGet, 'x*');
    expect(star.exit).toBe(3);
    expect(star.stdout).toBe('');
    expect(oneErrorLine(star)).toBe(
      `job "x*" not found: no document ${k('job:x*')} and the id is in no queue`,
    );
    const literal = await run<JobDetails>(JobGet, 'we*rd?[x]', '--json');
    expect(literal.exit).toBe(0);
    expect(literal.result?.job?.id).toBe('we*rd?[x]');
    const json = await run(JobGet, 'nope', '--json');
    expect(json.exit).toBe(3);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'NOT_FOUND', exitCode: 3 } });
    expect(await snapshot(redis, prefix)).toEqual(before);
  });
});

// ---------------------------------------------------------------------------------------------------
// job fix
// ---------------------------------------------------------------------------------------------------

describe('job fix', () => {
  it('--set rewrites known fields with the codec: payload and unknown fields keep their bytes, TTL kept', async () => {
    await redis.set(k('job:t1'), trickyDocument('t1'), 'EX', 604_800);
    await redis.lpush(k('queue:dead'), 't1');
    const before = await snapshot(redis, prefix);
    const r = await run<FixResult>(
      JobFix,
      't1',
      '--set',
      'max_retries=5',
      '--set',
      'priority=high',
      '--yes',
      '--json',
    );
    expect(r.exit).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(r.result);
    expect(r.result).toMatchObject({ applied: true, dry_run: false, ttl: 'kept', requeue: null });
    expect(r.result?.changes.map((c) => [c.field, c.before, c.after])).toEqual([
      ['priority', '"normal"', '"high"'],
      ['max_retries', '3', '5'],
      ['updated_at', '"2026-11-28T14:52:30.000000+00:00"', expect.stringMatching(/^"20\d\d-.*Z"$/)],
    ]);
    const stored = (await redis.get(k('job:t1'))) as string;
    expect(stored).toBe(r.result?.document_after);
    expect(stored).toContain(`"payload":${TRICKY_PAYLOAD},`);
    expect(stored).toContain(`"trace":${TRICKY_EXTRA}`);
    const decoded = decodeJob(stored);
    expect(decoded.ok && decoded.job).toMatchObject({
      priority: 'high',
      maxRetries: 5,
      attempts: 3,
      status: 'failed',
    });
    expect(await redis.ttl(k('job:t1'))).toBeGreaterThan(604_000);
    expectOnlyChanged(before, await snapshot(redis, prefix), [k('job:t1')]);
  });

  it('--requeue moves THAT id out of the middle of the DLQ (not the oldest), reset, TTL removed', async () => {
    await seedGo();
    const fixed = join(scratch, `${prefix}fixed.json`);
    writeFileSync(
      fixed,
      `{"id":"${STUB_UNMARSHAL}","name":"x","payload":{"oops":true},"status":"failed","priority":"high","created_at":"","updated_at":"","attempts":3,"max_retries":3,"error":"Failed to unmarshal job"}\n`,
    );
    const before = await snapshot(redis, prefix);
    const r = await run<FixResult>(JobFix, STUB_UNMARSHAL, '--from', fixed, '--requeue', '--yes', '--json');
    expect(r.exit).toBe(0);
    expect(r.result).toMatchObject({
      applied: true,
      ttl: 'removed',
      changes: [{ field: 'document' }],
      requeue: {
        to: k('queue:high'),
        priority: 'high',
        moved: true,
        removed: [{ kind: 'dead', key: k('queue:dead'), count: 1 }],
      },
    });
    expect(await redis.lrange(k('queue:dead'), 0, -1)).toEqual(
      DLQ_ORDER.filter((id) => id !== STUB_UNMARSHAL),
    );
    expect(await redis.lrange(k('queue:high'), 0, -1)).toEqual([STUB_UNMARSHAL]);
    expect(await redis.ttl(k(`job:${STUB_UNMARSHAL}`))).toBe(-1);
    const decoded = decodeJob((await redis.get(k(`job:${STUB_UNMARSHAL}`))) as string);
    expect(decoded.ok && decoded.job).toMatchObject({
      status: 'pending',
      attempts: 0,
      payload: '{"oops":true}',
    });
    expectOnlyChanged(before, await snapshot(redis, prefix), [
      k(`job:${STUB_UNMARSHAL}`),
      k('queue:dead'),
      k('queue:high'),
      k('signal'),
    ]);
  });

  it('$EDITOR fixes a corrupt document and --requeue --to low puts it on the low list', async () => {
    await redis.set(k('job:c1'), '{"id":"c1","name":"resize","payload":{w:100},"attempts":1}', 'EX', 604_800);
    await redis.rpush(k('queue:dead'), 'other', 'c1');
    const before = await snapshot(redis, prefix);
    // A corrupt document is edited as stored: the editor repairs the payload in place.
    vi.stubEnv('EDITOR', `sed -i -e 's/{w:100}/{"w":100}/'`);
    vi.stubEnv('VISUAL', '');
    const r = await run<FixResult>(JobFix, 'c1', '--requeue', '--to', 'low', '--yes', '--json');
    expect(r.exit).toBe(0);
    expect(r.result?.requeue).toMatchObject({ to: k('queue:low'), moved: true });
    const decoded = decodeJob((await redis.get(k('job:c1'))) as string);
    expect(decoded.ok && decoded.job).toMatchObject({ payload: '{"w":100}', priority: 'low', attempts: 0 });
    expect(await redis.lrange(k('queue:dead'), 0, -1)).toEqual(['other']);
    expect(await redis.lrange(k('queue:low'), 0, -1)).toEqual(['c1']);
    expectOnlyChanged(before, await snapshot(redis, prefix), [
      k('job:c1'),
      k('queue:dead'),
      k('queue:low'),
      k('signal'),
    ]);
  });

  it('$EDITOR sees one field per line; an untouched payload keeps its bytes after an edit elsewhere', async () => {
    await redis.set(k('job:t2'), trickyDocument('t2'));
    let seen = '';
    const result = await fixJob(redis, prefix, 't2', {
      kind: 'edit',
      edit: async (text) => {
        seen = text;
        return text.replace('"priority": "normal"', '"priority": "low"');
      },
    });
    expect(seen.split('\n').slice(0, 4)).toEqual([
      '{',
      '  "id": "t2",',
      '  "name": "charge_card",',
      '  "description": "",',
    ]);
    expect(seen).toContain('    "n": 12345678901234567890,');
    expect(result.changes.map((c) => c.field)).toEqual(['priority', 'updated_at']);
    const stored = (await redis.get(k('job:t2'))) as string;
    expect(stored).toContain(`"payload":${TRICKY_PAYLOAD},`);
    expect(stored).toContain(`"trace":${TRICKY_EXTRA}`);
  });

  it('$EDITOR: an invalid edit saves nothing and keeps the edit; an unchanged one does nothing; a failing editor exits 2', async () => {
    await redis.set(k('job:t3'), trickyDocument('t3'));
    await redis.lpush(k('queue:normal'), 't3');
    const before = await snapshot(redis, prefix);
    vi.stubEnv('VISUAL', '');
    vi.stubEnv('EDITOR', `sed -i -e 's/"id": "t3"/"id": "t4"/'`);
    const renamed = await run(JobFix, 't3', '--yes');
    expect(renamed.exit).toBe(2);
    const message = oneErrorLine(renamed);
    const kept = /the id must stay "t3" \(got "t4"\); nothing was changed \(your edit is kept in (\S+):/.exec(
      message,
    );
    expect(kept, message).not.toBeNull();
    expect(readFileSync(kept?.[1] as string, 'utf8')).toContain('"id": "t4"');
    rmSync(dirname(kept?.[1] as string), { recursive: true, force: true });

    vi.stubEnv('EDITOR', 'true');
    const unchanged = await run<FixResult>(JobFix, 't3', '--yes', '--json');
    expect(unchanged.exit).toBe(0);
    expect(unchanged.result).toMatchObject({ applied: false, changes: [] });

    vi.stubEnv('EDITOR', 'false');
    const failing = await run(JobFix, 't3', '--yes');
    expect(failing.exit).toBe(2);
    expect(oneErrorLine(failing)).toMatch(/the editor \(false\) failed \(status 1\); nothing was changed/);
    expect(await snapshot(redis, prefix)).toEqual(before);
  });

  it('--dry-run shows the diff and the move, and changes nothing', async () => {
    await seedGo();
    const before = await snapshot(redis, prefix);
    const r = await run<FixResult>(
      JobFix,
      DEAD_JOB,
      '--set',
      'attempts=1',
      '--requeue',
      '--to',
      'low',
      '--dry-run',
      '--json',
    );
    expect(r.exit).toBe(0);
    expect(r.result).toMatchObject({
      dry_run: true,
      applied: false,
      requeue: { to: k('queue:low'), removed: [{ kind: 'dead', key: k('queue:dead'), count: 1 }] },
    });
    // --requeue resets attempts whatever --set said.
    expect(r.result?.changes.map((c) => c.field)).toEqual(['status', 'priority', 'attempts', 'updated_at']);
    const human = await run(JobFix, DEAD_JOB, '--set', 'priority=low', '--dry-run');
    expect(human.stdout).toContain('  - priority: "high"\n  + priority: "low"');
    expect(human.stdout).toMatch(/dry run: nothing was changed/);
    expect(await snapshot(redis, prefix)).toEqual(before);
  });

  it('a job a worker holds is refused (exit 8) unless --force; --force --requeue revokes the lease', async () => {
    await seedGo();
    await redis.zadd(k('processing:leases'), Date.now() + 30_000, IN_PROCESSING);
    await redis.hset(k('processing:owners'), IN_PROCESSING, 'host:1:w');
    const before = await snapshot(redis, prefix);
    const refused = await run(JobFix, IN_PROCESSING, '--set', 'priority=low', '--yes');
    expect(refused.exit).toBe(8);
    expect(oneErrorLine(refused)).toMatch(/held by worker host:1:w, lease until .*use --force/);
    expect(await snapshot(redis, prefix)).toEqual(before);

    const forced = await run<FixResult>(
      JobFix,
      IN_PROCESSING,
      '--set',
      'priority=low',
      '--requeue',
      '--force',
      '--yes',
      '--json',
    );
    expect(forced.exit).toBe(0);
    expect(forced.result?.requeue?.removed).toEqual([
      { kind: 'processing', key: k('queue:processing'), count: 1 },
      { kind: 'lease', key: k('processing:leases'), count: 1 },
      { kind: 'lease_owner', key: k('processing:owners'), count: 1 },
    ]);
    expect(await redis.lrange(k('queue:low'), 0, -1)).toEqual([IN_PROCESSING, LOW]);
    expectOnlyChanged(before, await snapshot(redis, prefix), [
      k(`job:${IN_PROCESSING}`),
      k('queue:processing'),
      k('processing:leases'),
      k('processing:owners'),
      k('queue:low'),
      k('signal'),
    ]);
  });

  it('saves only if nobody changed the document or moved the id meanwhile (exit 8, the other write wins)', async () => {
    await redis.set(k('job:t5'), trickyDocument('t5'));
    await redis.lpush(k('queue:normal'), 't5');
    const concurrent = trickyDocument('t5', { priority: 'high' });
    await expect(
      fixJob(redis, prefix, 't5', {
        kind: 'edit',
        edit: async (text) => {
          await redis.set(k('job:t5'), concurrent);
          return text.replace('"attempts": 3', '"attempts": 0');
        },
      }),
    ).rejects.toThrow(ConflictError);
    expect(await redis.get(k('job:t5'))).toBe(concurrent);

    const before = await snapshot(redis, prefix);
    await expect(
      fixJob(redis, prefix, 't5', {
        kind: 'edit',
        edit: async (text) => {
          // A worker takes the job while the operator edits.
          await redis.lmove(k('queue:normal'), k('queue:processing'), 'RIGHT', 'LEFT');
          return text.replace('"attempts": 3', '"attempts": 0');
        },
      }),
    ).rejects.toThrow(/moved while it was being fixed .*nothing was written/);
    const after = await snapshot(redis, prefix);
    expect(after[k('job:t5')]).toEqual(before[k('job:t5')]);
    expect(after[k('queue:processing')]?.value).toEqual(['t5']);
  });

  it('a priority change without --requeue warns that the id stays where it is', async () => {
    await seedGo();
    const r = await run<FixResult>(JobFix, FRESH, '--set', 'priority=high', '--yes', '--json');
    expect(r.result?.warnings).toEqual([
      `the id stays in ${k('queue:normal')}, but its priority and route now point to ${k('queue:high')}: add --requeue to move it there`,
    ]);
  });

  it.each<[string, number, string[], RegExp]>([
    [
      'unknown --set field',
      2,
      ['t6', '--set', 'colour=red'],
      /--set: unknown field "colour" \(settable: name, /,
    ],
    [
      'bad priority',
      2,
      ['t6', '--set', 'priority=urgent'],
      /--set priority: use high, normal, low \(got "urgent"\)/,
    ],
    ['bad attempts', 2, ['t6', '--set', 'attempts=-1'], /--set attempts: use a whole number/],
    ['payload not JSON', 2, ['t6', '--set', 'payload={oops'], /--set payload: not valid JSON/],
    ['--set without =', 2, ['t6', '--set', 'priority'], /--set expects field=value \(got "priority"\)/],
    ['--to without --requeue', 2, ['t6', '--set', 'priority=low', '--to', 'high'], /--requeue/],
    [
      '--set on a stub',
      2,
      [STUB_MISSING, '--set', 'priority=low'],
      /cannot --set fields of a document that is not a job/,
    ],
    ['unknown id', 3, ['nope', '--set', 'priority=low'], /job "nope" not found/],
    [
      'orphaned id',
      3,
      ['orphan', '--set', 'priority=low'],
      /job "orphan" has no document .*job delete removes the references/,
    ],
    [
      '10 KB id',
      2,
      ['x'.repeat(10_240), '--set', 'priority=low'],
      /job id is too long \(10240 characters; at most 1024\)/,
    ],
  ])('%s: exit %i, one line, nothing changed', async (_what, exit, argv, message) => {
    await seedGo();
    await redis.set(k('job:t6'), trickyDocument('t6'));
    await redis.lpush(k('queue:dead'), 'orphan');
    const before = await snapshot(redis, prefix);
    const r = await run(JobFix, ...argv, '--yes');
    expect(r.exit).toBe(exit);
    expect(oneErrorLine(r)).toMatch(message);
    expect(await snapshot(redis, prefix)).toEqual(before);
  });

  it('--from: a document with another id, or not a job, is refused before Redis is touched (exit 2)', async () => {
    await redis.set(k('job:t7'), trickyDocument('t7'));
    const before = await snapshot(redis, prefix);
    const other = join(scratch, `${prefix}other.json`);
    writeFileSync(other, trickyDocument('t8'));
    const r1 = await run(JobFix, 't7', '--from', other, '--yes');
    expect(r1.exit).toBe(2);
    expect(oneErrorLine(r1)).toMatch(/the id must stay "t7" \(got "t8"\)/);
    const notJob = join(scratch, `${prefix}notjob.json`);
    writeFileSync(notJob, '{"id":"t7","name":"x","payload":{oops}');
    const r2 = await run(JobFix, 't7', '--from', notJob, '--yes');
    expect(r2.exit).toBe(2);
    expect(oneErrorLine(r2)).toMatch(/not a valid job: invalid JSON/);
    const r3 = await run(JobFix, 't7', '--from', join(scratch, 'missing.json'), '--yes');
    expect(r3.exit).toBe(2);
    expect(oneErrorLine(r3)).toMatch(/cannot read it: ENOENT/);
    expect(await snapshot(redis, prefix)).toEqual(before);
  });
});

// ---------------------------------------------------------------------------------------------------
// job requeue
// ---------------------------------------------------------------------------------------------------

describe('job requeue', () => {
  it('from the dead-letter queue: that id only, reset (attempts 0, pending), no TTL', async () => {
    await seedGo();
    await redis.set(k('job:t9'), trickyDocument('t9'), 'EX', 604_800);
    await redis.linsert(k('queue:dead'), 'AFTER', STUB_UNMARSHAL, 't9');
    const before = await snapshot(redis, prefix);
    const r = await run<RequeueResult>(JobRequeue, 't9', '--json');
    expect(r.exit).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(r.result);
    expect(r.result).toMatchObject({
      applied: true,
      from: [{ kind: 'dead', key: k('queue:dead') }],
      to: k('queue:normal'),
      priority: 'normal',
      moved: true,
      removed: [{ kind: 'dead', key: k('queue:dead'), count: 1 }],
    });
    expect(r.result?.changes.map((c) => c.field)).toEqual(['status', 'attempts', 'updated_at']);
    expect(await redis.lrange(k('queue:dead'), 0, -1)).toEqual(DLQ_ORDER);
    expect(await redis.lrange(k('queue:normal'), 0, -1)).toEqual(['t9', '', FRESH]);
    expect(await redis.ttl(k('job:t9'))).toBe(-1);
    const stored = (await redis.get(k('job:t9'))) as string;
    expect(stored).toContain(`"payload":${TRICKY_PAYLOAD},`);
    expect(decodeJob(stored)).toMatchObject({
      ok: true,
      job: { status: 'pending', attempts: 0, error: 'card declined' },
    });
    expectOnlyChanged(before, await snapshot(redis, prefix), [
      k('job:t9'),
      k('queue:dead'),
      k('queue:normal'),
      k('signal'),
    ]);
  });

  it('from the scheduled set to high, and a routed job keeps its route', async () => {
    await seedGo();
    const before = await snapshot(redis, prefix);
    const r = await run<RequeueResult>(JobRequeue, SCHEDULED, '--to', 'high', '--json');
    expect(r.result).toMatchObject({ from: [{ kind: 'scheduled' }], to: k('queue:high'), priority: 'high' });
    expect(r.result?.changes.map((c) => c.field)).toEqual([
      'priority',
      'attempts',
      'updated_at',
      'scheduled_for',
    ]);
    expect(await redis.zscore(k('queue:scheduled'), SCHEDULED)).toBeNull();
    expect(await redis.lrange(k('queue:high'), 0, -1)).toEqual([SCHEDULED]);
    expectOnlyChanged(before, await snapshot(redis, prefix), [
      k(`job:${SCHEDULED}`),
      k('queue:scheduled'),
      k('queue:high'),
      k('signal'),
    ]);

    const gpu = await run<RequeueResult>(JobRequeue, GPU, '--to', 'low', '--json');
    expect(gpu.result).toMatchObject({
      from: [{ key: k('route:gpu:queue:high') }],
      to: k('route:gpu:queue:low'),
    });
    expect(await redis.exists(k('route:gpu:queue:high'))).toBe(0);
    expect(await redis.lrange(k('route:gpu:queue:low'), 0, -1)).toEqual([GPU]);
    expect(await redis.llen(k('route:gpu:signal'))).toBe(1);
  });

  it('already in the target list and nowhere else: keeps its position, nothing written', async () => {
    await seedGo();
    const before = await snapshot(redis, prefix);
    const r = await run<RequeueResult>(JobRequeue, FRESH, '--json');
    expect(r.result).toMatchObject({ applied: false, moved: false, removed: [], changes: [] });
    expect(await snapshot(redis, prefix)).toEqual(before);
    const human = await run(JobRequeue, FRESH);
    expect(human.stdout).toMatch(/already in .*queue:normal and keeps its position/);
  });

  it('--dry-run lists exactly what the real run then does, and changes nothing', async () => {
    await seedGo();
    await redis.lpush(k('queue:high'), LOW, LOW);
    const before = await snapshot(redis, prefix);
    const dry = await run<RequeueResult>(JobRequeue, LOW, '--to', 'normal', '--dry-run', '--json');
    expect(dry.result).toMatchObject({ dry_run: true, applied: false });
    expect(await snapshot(redis, prefix)).toEqual(before);
    const real = await run<RequeueResult>(JobRequeue, LOW, '--to', 'normal', '--json');
    expect(real.result?.removed).toEqual(dry.result?.removed);
    expect(real.result?.removed).toEqual([
      { kind: 'ready', key: k('queue:high'), count: 2 },
      { kind: 'ready', key: k('queue:low'), count: 1 },
    ]);
    expect(await redis.lrange(k('queue:normal'), 0, -1)).toEqual([LOW, '', FRESH]);
  });

  it.each<[string, number, string[], RegExp]>([
    ['in processing', 8, [IN_PROCESSING], /in processing without a bananas lease.*use --force/],
    ['a stub', 8, [STUB_UNMARSHAL], /not a job .*fix it first with job fix ".*" --requeue/],
    ['completed, in no queue', 8, [COMPLETED], /completed and is in no queue.*--force/],
    ['orphaned', 3, ['orphan'], /has no document .*nothing to requeue/],
    ['unknown', 3, ['nope'], /job "nope" not found/],
    ['glob', 3, ['7e6d*'], /job "7e6d\*" not found/],
    ['bad --to', 2, [DEAD_JOB, '--to', 'urgent'], /--to.*urgent|urgent.*--to/],
  ])('%s: exit %i, one line, nothing changed', async (_what, exit, argv, message) => {
    await seedGo();
    await redis.lpush(k('queue:dead'), 'orphan');
    const before = await snapshot(redis, prefix);
    const r = await run(JobRequeue, ...argv);
    expect(r.exit).toBe(exit);
    expect(oneErrorLine(r)).toMatch(message);
    expect(await snapshot(redis, prefix)).toEqual(before);
  });

  it('--force requeues a job held by a worker (its lease is revoked) and re-runs a completed one', async () => {
    await seedGo();
    const forced = await run<RequeueResult>(JobRequeue, IN_PROCESSING, '--force', '--json');
    expect(forced.result).toMatchObject({ applied: true, to: k('queue:high') });
    expect(await redis.lrange(k('queue:processing'), 0, -1)).toEqual([]);
    const completed = await run<RequeueResult>(JobRequeue, COMPLETED, '--force', '--json');
    expect(completed.result).toMatchObject({ applied: true, from: [], to: k('queue:normal') });
    expect(await redis.ttl(k(`job:${COMPLETED}`))).toBe(-1);
  });
});

// ---------------------------------------------------------------------------------------------------
// job delete
// ---------------------------------------------------------------------------------------------------

describe('job delete', () => {
  it('removes the document and every reference atomically; everything else stays', async () => {
    await seedGo();
    const id = DEAD_JOB;
    await redis.rpush(k('queue:normal'), id, id);
    await redis.lpush(k('route:gpu:queue:low'), id);
    await redis.zadd(k('queue:scheduled'), 1_900_000_000, id);
    await redis.lpush(k('queue:processing'), id);
    await redis.zadd(k('processing:leases'), Date.now() + 30_000, id);
    await redis.hset(k('processing:owners'), id, 'host:1:w');
    const before = await snapshot(redis, prefix);
    const dry = await run<DeleteResult>(JobDelete, id, '--dry-run', '--json');
    expect(dry.exit).toBe(0);
    expect(await snapshot(redis, prefix)).toEqual(before);
    const r = await run<DeleteResult>(JobDelete, id, '--yes', '--json');
    expect(r.exit).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(r.result);
    const expected = [
      { kind: 'document', key: k(`job:${id}`), count: 1 },
      { kind: 'result', key: k(`result:${id}`), count: 1 },
      { kind: 'ready', key: k('queue:normal'), count: 2 },
      { kind: 'ready', key: k('route:gpu:queue:low'), count: 1 },
      { kind: 'processing', key: k('queue:processing'), count: 1 },
      { kind: 'dead', key: k('queue:dead'), count: 1 },
      { kind: 'scheduled', key: k('queue:scheduled'), count: 1 },
      { kind: 'lease', key: k('processing:leases'), count: 1 },
      { kind: 'lease_owner', key: k('processing:owners'), count: 1 },
    ];
    expect(dry.result?.removed).toEqual(expected);
    expect(r.result).toMatchObject({ applied: true, removed: expected });
    const after = await snapshot(redis, prefix);
    expect(after[k(`job:${id}`)]).toBeUndefined();
    expect(after[k(`result:${id}`)]).toBeUndefined();
    expect(after[k('route:gpu:queue:low')]).toBeUndefined();
    expect(after[k('processing:leases')]).toBeUndefined();
    expect(after[k('processing:owners')]).toBeUndefined();
    expect(after[k('queue:normal')]?.value).toEqual(['', FRESH]);
    expect(after[k('queue:dead')]?.value).toEqual(DLQ_ORDER.filter((x) => x !== id));
    expect(after[k('queue:processing')]?.value).toEqual([IN_PROCESSING]);
    expect(after[k('queue:scheduled')]?.value).toEqual([SCHEDULED, '1762748196']);
    expectOnlyChanged(
      before,
      after,
      expected.map((e) => e.key),
    );
  });

  it("the cron job '' and an orphaned id: only their own entries go", async () => {
    await seedGo();
    await redis.lpush(k('queue:dead'), 'orphan');
    const before = await snapshot(redis, prefix);
    const cron = await run<DeleteResult>(JobDelete, '', '--yes', '--json');
    expect(cron.result?.removed).toEqual([
      { kind: 'document', key: k('job:'), count: 1 },
      { kind: 'ready', key: k('queue:normal'), count: 1 },
    ]);
    const orphan = await run<DeleteResult>(JobDelete, 'orphan', '--yes', '--json');
    expect(orphan.result?.removed).toEqual([{ kind: 'dead', key: k('queue:dead'), count: 1 }]);
    const after = await snapshot(redis, prefix);
    expect(after[k('queue:normal')]?.value).toEqual([FRESH]);
    expect(after[k('queue:dead')]?.value).toEqual(DLQ_ORDER);
    expectOnlyChanged(before, after, [k('job:'), k('queue:normal'), k('queue:dead')]);
  });

  it('unknown or glob ids exit 3 and delete nothing', async () => {
    await redis.set(k('job:x1'), trickyDocument('x1'));
    await redis.lpush(k('queue:normal'), 'x1');
    const before = await snapshot(redis, prefix);
    for (const id of ['x*', 'x?', '[x]1', 'nope']) {
      const r = await run(JobDelete, id, '--yes');
      expect(r.exit, id).toBe(3);
      oneErrorLine(r);
    }
    expect(await snapshot(redis, prefix)).toEqual(before);
  });
});

// ---------------------------------------------------------------------------------------------------
// The scripts' guards (the window between reading and writing)
// ---------------------------------------------------------------------------------------------------

describe('job scripts refuse when the state changed after it was read', () => {
  it('job-rewrite and job-delete: wrong sha1 → changed, wrong presence → moved, nothing written', async () => {
    await seedGo();
    const keys = new Keys(prefix);
    const before = await snapshot(redis, prefix);
    const ready = [keys.queue('high'), keys.queue('normal'), keys.queue('low')];
    const rewriteKeys = [
      keys.job(DEAD_JOB),
      keys.processing,
      keys.dead,
      keys.scheduled,
      keys.leases,
      keys.leaseOwners,
    ];
    const stored = (await redis.getBuffer(keys.job(DEAD_JOB))) as Buffer;
    const { createHash } = await import('node:crypto');
    const sha = createHash('sha1').update(stored).digest('hex');
    const rewrite = (sha1: string, presence: string) =>
      runScript(redis, 'job-rewrite', rewriteKeys, [
        DEAD_JOB,
        sha1,
        presence,
        '{"id":"x"}',
        'persist',
        keys.queue('high'),
        keys.signal(),
        3,
        ...ready,
      ]);
    // Presence: high normal low processing dead scheduled leases owners.
    expect(await rewrite('0'.repeat(40), '00001000')).toEqual(['changed']);
    expect(await rewrite(sha, '00000000')).toEqual(['moved']);
    const deleteKeys = [
      keys.job(DEAD_JOB),
      keys.result(DEAD_JOB),
      keys.processing,
      keys.dead,
      keys.scheduled,
      keys.leases,
      keys.leaseOwners,
    ];
    const del = (sha1: string, presence: string) =>
      runScript(redis, 'job-delete', deleteKeys, [DEAD_JOB, sha1, presence, 3, ...ready]);
    expect(await del('', '000010001')).toEqual(['changed']);
    expect(await del(sha, '000010000')).toEqual(['moved']);
    expect(await snapshot(redis, prefix)).toEqual(before);
    // The right state is accepted (proves the refusals above were about the state, not the call).
    expect(await del(sha, '000010001')).toEqual([
      'ok',
      keys.job(DEAD_JOB),
      1,
      keys.result(DEAD_JOB),
      1,
      keys.dead,
      1,
    ]);
  });
});

// ---------------------------------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------------------------------

describe('JSON text helpers and --set parsing', () => {
  it('compactJson / prettyJson change whitespace only', () => {
    const text = '{"a": [1, 2.50, {"b": "x, y: {z}"}], "c": {}, "d": [], "e": "\\"q\\" \\u00e9"}';
    expect(compactJson(text)).toBe('{"a":[1,2.50,{"b":"x, y: {z}"}],"c":{},"d":[],"e":"\\"q\\" \\u00e9"}');
    expect(compactJson(prettyJson(text))).toBe(compactJson(text));
    expect(prettyJson('{"a":[1,{"b":2}],"c":{}}')).toBe(
      '{\n  "a": [\n    1,\n    {\n      "b": 2\n    }\n  ],\n  "c": {}\n}',
    );
    expect(editableDocument('{oops')).toBe('{oops');
  });

  it('parseAssignments validates fields and values', () => {
    expect(parseAssignments(['priority=high', 'description=a=b', 'error='])).toEqual([
      { field: 'priority', value: 'high' },
      { field: 'description', value: 'a=b' },
      { field: 'error', value: '' },
    ]);
    expect(() => parseAssignments(['priority=low', 'priority=high'])).toThrow(/given twice/);
    expect(() => parseAssignments(['id=x'])).toThrow(/unknown field "id"/);
    expect(() => parseAssignments(['routing_key=a b'])).toThrow(/--set routing_key/);
    expect(() => parseAssignments(['name='])).toThrow(/non-empty name/);
  });
});

// ---------------------------------------------------------------------------------------------------
// The built CLI, end to end
// ---------------------------------------------------------------------------------------------------

describe('the built CLI', () => {
  let build: SnapshotBuild;
  let cliPrefix: string;

  beforeAll(async () => {
    build = await snapshotBuild();
    cliPrefix = freshPrefix();
    await seedVectors(redis, loadVectors('go-original'), cliPrefix);
  });

  afterAll(() => build?.remove());

  function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
    return runCli(build.bin, ['job', ...args, '--prefix', cliPrefix], {
      env: cleanEnv({ REDIS_URL: testRedisUrl(), ...env }),
      timeoutMs: 20_000,
    });
  }

  it('job get --json, unknown id, 10 KB id, empty id, unreachable Redis: exit codes, one JSON document or one line', async () => {
    const before = await snapshot(redis, cliPrefix);
    const [found, unknown, unknownJson, huge, cron, raw, down] = await Promise.all([
      cli(['get', DEAD_JOB, '--json']),
      cli(['get', 'no-such-job']),
      cli(['get', 'no-such-job', '--json']),
      cli(['get', 'x'.repeat(10_240)]),
      cli(['get', '', '--json']),
      cli(['get', FRESH, '--raw']),
      cli(['get', DEAD_JOB], { REDIS_URL: 'redis://:hunter2@127.0.0.1:1' }),
    ]);
    expect(found.code).toBe(0);
    expect(found.stderr).toBe('');
    expect(JSON.parse(found.stdout)).toMatchObject({ id: DEAD_JOB, document_state: 'ok' });
    expect(unknown.code).toBe(3);
    expect(unknown.stdout).toBe('');
    expect(oneErrorLine(unknown)).toMatch(/job "no-such-job" not found/);
    expect(unknownJson.code).toBe(3);
    expect(JSON.parse(unknownJson.stdout)).toMatchObject({ error: { code: 'NOT_FOUND', exitCode: 3 } });
    expect(huge.code).toBe(2);
    expect(oneErrorLine(huge)).toMatch(/too long/);
    expect(cron.code).toBe(0);
    expect(JSON.parse(cron.stdout)).toMatchObject({ id: '', key: `${cliPrefix}job:` });
    expect(raw.code).toBe(0);
    expect(raw.stdout).toBe(await redis.get(`${cliPrefix}job:${FRESH}`));
    expect(down.code).toBe(4);
    expect(oneErrorLine(down)).not.toContain('hunter2');
    expect(await snapshot(redis, cliPrefix)).toEqual(before);
  });

  it('destructive commands refuse without --yes when stdin is not a terminal (exit 2, nothing changed)', async () => {
    const before = await snapshot(redis, cliPrefix);
    const [del, delJson, fix, requeueHeld, badSet] = await Promise.all([
      cli(['delete', STUB_MISSING]),
      cli(['delete', STUB_MISSING, '--json']),
      cli(['fix', DEAD_JOB, '--set', 'priority=low']),
      cli(['requeue', IN_PROCESSING]),
      cli(['fix', DEAD_JOB, '--set', 'colour=red', '--yes']),
    ]);
    expect(del.code).toBe(2);
    expect(del.stderr).toMatch(
      /^bananas: Delete job ".*" \(the 2 items listed above\): refused without --yes \(stdin is not a terminal\)\n$/,
    );
    expect(delJson.code).toBe(2);
    expect(JSON.parse(delJson.stdout)).toMatchObject({ error: { code: 'USAGE', exitCode: 2 } });
    expect(fix.code).toBe(2);
    expect(oneErrorLine(fix)).toMatch(/refused without --yes/);
    expect(requeueHeld.code).toBe(8);
    expect(oneErrorLine(requeueHeld)).toMatch(/use --force/);
    expect(badSet.code).toBe(2);
    expect(oneErrorLine(badSet)).toMatch(/unknown field "colour"/);
    expect(await snapshot(redis, cliPrefix)).toEqual(before);
  });

  it('fix with $EDITOR, requeue and delete with --yes --json: one JSON document each, exit 0', async () => {
    const editor = join(scratch, 'fix-editor.sh');
    writeFileSync(editor, `#!/bin/sh\nsed -i -e 's/"max_retries": 3/"max_retries": 9/' "$1"\n`, {
      mode: 0o755,
    });
    const fix = await cli(['fix', DEAD_JOB, '--requeue', '--yes', '--json'], {
      EDITOR: editor,
      VISUAL: undefined,
    });
    expect(fix.code).toBe(0);
    expect(fix.stderr).toBe('');
    const fixed = JSON.parse(fix.stdout) as FixResult;
    expect(fixed).toMatchObject({ applied: true, requeue: { to: `${cliPrefix}queue:high` } });
    expect(fixed.changes.map((c) => c.field)).toContain('max_retries');
    const requeue = await cli(['requeue', DEAD_JOB, '--to', 'low', '--json']);
    expect(requeue.code).toBe(0);
    expect(JSON.parse(requeue.stdout)).toMatchObject({ applied: true, to: `${cliPrefix}queue:low` });
    const del = await cli(['delete', DEAD_JOB, '--yes', '--json']);
    expect(del.code).toBe(0);
    expect(JSON.parse(del.stdout)).toMatchObject({ applied: true });
    expect(await redis.exists(`${cliPrefix}job:${DEAD_JOB}`, `${cliPrefix}result:${DEAD_JOB}`)).toBe(0);
    expect(await redis.lrange(`${cliPrefix}queue:low`, 0, -1)).toEqual([LOW]);
  });
});
