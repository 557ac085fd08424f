/**
 * `scan corrupt` at scale: a private redis-server (persistence off) seeded with 1,000,000 job documents
 * (~300 bytes each) in the shape of a busy deployment, with a few hundred broken entries of every class;
 * then the built CLI (`node bin/run.js scan corrupt --json`) runs as a child process. Reports wall time,
 * the child's peak RSS (VmHWM, polled from /proc) and whether every seeded problem was found.
 * Not part of npm test. Needs a build (`npm run build`) and redis-server on PATH.
 *
 *   npx tsx bench/scan-corrupt.ts
 *   BENCH_DOCS=200000 npx tsx bench/scan-corrupt.ts     # smaller run
 *   BENCH_REPAIR=1 npx tsx bench/scan-corrupt.ts        # then time `--repair --yes` on the same data
 *
 * Targets: ≤ 30 s wall time, ≤ 200 MB peak RSS for 1,000,000 documents.
 */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { LocalRedisServer } from '../src/core/local-redis.js';
import { mibToMb, printFiguresLine, printMachine, runMeasured, type MeasuredRun } from './machine.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const BIN = `${ROOT}bin/run.js`;
const TOTAL_DOCS = Number(process.env.BENCH_DOCS ?? 1_000_000);
/** Broken entries seeded per class. */
const BROKEN = 300;
const PREFIX = 'bananas:';
const HOUR = 3600;

if (!existsSync(`${ROOT}dist/commands/scan/corrupt.js`)) {
  console.error('dist/ is missing: run `npm run build` first');
  process.exit(1);
}

const PAYLOAD = JSON.stringify({ to: 'user@example.com', template: 'welcome', locale: 'en-GB', n: 42 });

function doc(
  id: string,
  status: string,
  priority: string,
  updatedAt: string,
  routingKey = 'default',
): string {
  return JSON.stringify({
    id,
    name: 'send_email',
    description: '',
    payload: JSON.parse(PAYLOAD) as unknown,
    status,
    priority,
    created_at: updatedAt,
    updated_at: updatedAt,
    attempts: 0,
    max_retries: 3,
    error: '',
    routing_key: routingKey,
  });
}

function uuidish(n: number): string {
  const hex = n.toString(16).padStart(12, '0');
  return `0b6f1a52-3c1e-4d8a-9f2e-${hex}`;
}

/** Pipelines commands in chunks so the seed never holds more than one chunk in memory. */
class Seeder {
  private pipeline;
  private queued = 0;

  constructor(private readonly redis: Redis) {
    this.pipeline = redis.pipeline();
  }

  get p() {
    return this.pipeline;
  }

  async tick(): Promise<void> {
    if (++this.queued < 5000) return;
    await this.flush();
  }

  async flush(): Promise<void> {
    if (this.queued === 0) return;
    await this.pipeline.exec();
    this.pipeline = this.redis.pipeline();
    this.queued = 0;
  }
}

const server = await LocalRedisServer.start({ args: ['--save', '', '--appendonly', 'no'] });
// Stopped from outside (npm run bench gives up on a run with SIGINT): the server goes too.
process.once('SIGINT', () => void server.destroy().finally(() => process.exit(130)));
const redis = new Redis(server.url);
try {
  printMachine();
  const old = '2025-11-10T04:16:33.123Z';
  const k = (s: string) => `${PREFIX}${s}`;
  const seeder = new Seeder(redis);
  const started = Date.now();
  let docs = 0;
  let n = 0;
  const next = () => uuidish(n++);

  // Broken state, BROKEN of each class.
  const expected: Record<string, number> = {
    invalid_json: BROKEN,
    not_a_job: BROKEN,
    stub: BROKEN,
    empty_id: 1,
    missing_document: 2 * BROKEN,
    orphan: BROKEN,
    expired_lease: BROKEN,
    missing_lease: BROKEN,
    duplicate: BROKEN,
  };
  for (let i = 0; i < BROKEN; i++) {
    const bad = next();
    seeder.p
      .set(k(`job:${bad}`), `{"id":"${bad}","name":"send_email","payload":{oops}`)
      .lpush(k('queue:normal'), bad);
    const notJob = next();
    seeder.p.set(k(`job:${notJob}`), `{"id":"${notJob}","payload":{}}`).lpush(k('queue:low'), notJob);
    const stub = next();
    seeder.p
      .set(k(`job:${stub}`), JSON.stringify({ error: 'Job data not found (corrupted reference)', id: stub }))
      .expire(k(`job:${stub}`), 7 * 24 * HOUR)
      .lpush(k('queue:dead'), stub);
    seeder.p.lpush(k('queue:high'), next()).lpush(k('queue:dead'), next()); // ids without document
    const orphan = next();
    seeder.p.set(k(`job:${orphan}`), doc(orphan, 'pending', 'normal', old));
    const expired = next();
    seeder.p
      .set(k(`job:${expired}`), doc(expired, 'pending', 'high', old))
      .lpush(k('queue:processing'), expired)
      .zadd(k('processing:leases'), Date.now() - 60_000, expired)
      .hset(k('processing:owners'), expired, 'gone-worker');
    const unleased = next();
    seeder.p
      .set(k(`job:${unleased}`), doc(unleased, 'pending', 'low', old))
      .lpush(k('queue:processing'), unleased);
    const twice = next();
    seeder.p
      .set(k(`job:${twice}`), doc(twice, 'pending', 'normal', old))
      .lpush(k('queue:normal'), twice, twice);
    docs += 7;
    await seeder.tick();
  }
  seeder.p.set(
    k('job:'),
    '{"id":"","name":"daily_report","payload":null,"status":"","priority":"normal","created_at":"0001-01-01T00:00:00Z","updated_at":"0001-01-01T00:00:00Z","attempts":0,"max_retries":0,"routing_key":""}',
  );
  seeder.p.lpush(k('queue:normal'), '');
  docs += 1;

  // The healthy bulk: 60 % completed (TTL, referenced nowhere), 30 % pending in ready lists, 5 % scheduled,
  // 5 % dead-lettered (TTL 7 days), 1,000 in processing under live leases.
  const lists = ['queue:high', 'queue:normal', 'queue:low', 'route:gpu:queue:normal'];
  const leaseUntil = Date.now() + 3_600_000;
  for (let i = 0; docs < TOTAL_DOCS; i++, docs++) {
    const id = next();
    const bucket = i % 20;
    if (bucket < 12) {
      seeder.p.set(k(`job:${id}`), doc(id, 'completed', 'normal', old), 'EX', 24 * HOUR);
    } else if (bucket < 18) {
      const list = lists[i % lists.length]!;
      seeder.p.set(
        k(`job:${id}`),
        doc(id, 'pending', 'normal', old, list.startsWith('route:') ? 'gpu' : 'default'),
      );
      seeder.p.lpush(k(list), id);
    } else if (bucket === 18) {
      seeder.p.set(k(`job:${id}`), doc(id, 'scheduled', 'normal', old));
      seeder.p.zadd(k('queue:scheduled'), 1893553445 + i, id);
    } else if (i % 40 === 19 && i < 40_000) {
      seeder.p.set(k(`job:${id}`), doc(id, 'pending', 'normal', old));
      seeder.p.lpush(k('queue:processing'), id).zadd(k('processing:leases'), leaseUntil, id);
      seeder.p.hset(k('processing:owners'), id, 'live-worker');
    } else {
      seeder.p.set(k(`job:${id}`), doc(id, 'failed', 'normal', old), 'EX', 7 * 24 * HOUR);
      seeder.p.lpush(k('queue:dead'), id);
    }
    await seeder.tick();
  }
  await seeder.flush();
  const dbsize = await redis.dbsize();
  const memory = /used_memory_human:(\S+)/.exec(await redis.info('memory'))?.[1];
  console.log(
    `seeded ${docs.toLocaleString('en-US')} documents (${dbsize.toLocaleString('en-US')} keys, ${memory}) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );

  const { code, seconds, peak, stdout, stderr } = await runChild([
    'scan',
    'corrupt',
    '--json',
    '--redis-url',
    server.url,
  ]);

  const report = JSON.parse(stdout) as {
    scanned: Record<string, number>;
    classes: Record<string, { count: number }>;
  };
  const leftover = (await redis.scan('0', 'MATCH', `${PREFIX}scan:*`, 'COUNT', 1_000_000))[1];
  console.log('');
  console.log(
    `scan corrupt --json: exit ${code}, ${seconds.toFixed(1)} s wall, peak RSS ${peak.toFixed(0)} MiB = ${mibToMb(peak).toFixed(0)} MB`,
  );
  if (stderr) console.log(`stderr: ${stderr.trim()}`);
  console.log(`scanned: ${JSON.stringify(report.scanned)}`);
  let allFound = true;
  for (const [cls, want] of Object.entries(expected)) {
    const got = report.classes[cls]?.count;
    if (got !== want) allFound = false;
    console.log(
      `  ${cls.padEnd(18)} found ${String(got).padStart(6)}  seeded ${String(want).padStart(6)}${got === want ? '' : '  MISMATCH'}`,
    );
  }
  console.log(`temporary keys left behind: ${leftover.length}`);
  console.log('');
  printFiguresLine(
    'scan-corrupt',
    { seconds, peakMib: peak },
    { documents: docs, exit_code: code, all_seeded_problems_found: allFound },
    { wall_seconds: 30, peak_rss_mb: 200 },
  );
  if (code !== 7 || !allFound || leftover.length > 0) process.exitCode = 1;

  if (process.env.BENCH_REPAIR === '1') {
    // The repair at the same scale: plan, backup (every touched list written out), atomic re-checked steps.
    const dir = mkdtempSync(join(tmpdir(), 'bananas-bench-'));
    try {
      const backup = join(dir, 'backup.jsonl');
      const repair = await runChild([
        'scan',
        'corrupt',
        '--repair',
        '--yes',
        '--json',
        '--backup',
        backup,
        '--redis-url',
        server.url,
      ]);
      const actions = (
        JSON.parse(repair.stdout) as { repair: { actions: Record<string, { applied: number }> } }
      ).repair.actions;
      console.log(
        `scan corrupt --repair --yes: exit ${repair.code}, ${repair.seconds.toFixed(1)} s wall, peak RSS ${repair.peak.toFixed(0)} MiB, backup ${(statSync(backup).size / 2 ** 20).toFixed(1)} MiB`,
      );
      console.log(
        `  applied: ${Object.entries(actions)
          .map(([a, r]) => `${a} ${r.applied}`)
          .join(', ')}`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
} finally {
  redis.disconnect();
  await server.destroy();
}

/** Runs the built CLI as a child, polling its peak RSS (VmHWM) until it exits. */
function runChild(args: string[]): Promise<MeasuredRun> {
  return runMeasured([BIN, ...args], ROOT);
}
