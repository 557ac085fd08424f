/**
 * The Redis password is never printed: every output of the built CLI (stdout, stderr, `--json`, worker
 * logs at debug level) is searched for it, in its decoded and its percent-encoded form, with a wrong
 * password, with a password in the URL of a host that cannot be reached, and in a worker that loses its
 * Redis and gets it back. The password holds characters that URLs must encode. A private redis-server with
 * `requirepass`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanEnv,
  oneErrorLine,
  runCli,
  snapshotBuild,
  startCli,
  type CliProcess,
  type SnapshotBuild,
} from '../helpers/cli.js';
import { freshPrefix, rawClient, waitFor } from '../helpers/context.js';
import { RedisServer } from '../helpers/redis-server.js';

const PASSWORD = 'pw-S3cr3t@#/x';
const WRONG = 'wrong-S3cr3t@#/y';
const enc = encodeURIComponent;

let build: SnapshotBuild;
let server: RedisServer;
const processes: CliProcess[] = [];

beforeAll(async () => {
  build = await snapshotBuild();
  server = await RedisServer.start({ args: ['--requirepass', PASSWORD] });
}, 60_000);

afterAll(async () => {
  for (const p of processes) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  await server?.destroy();
  build?.remove();
});

function url(password: string, port = server.port, user = ''): string {
  return `redis://${user}:${enc(password)}@127.0.0.1:${port}`;
}

/** Neither password, decoded or percent-encoded, anywhere in `output`. */
function expectNoSecret(output: string): void {
  for (const secret of [PASSWORD, WRONG, enc(PASSWORD), enc(WRONG)]) expect(output).not.toContain(secret);
}

/** One command of each kind: enqueue, a read, a sweep, the scan, and the two that report unreachable Redis. */
const COMMANDS: string[][] = [
  ['job', 'enqueue', 'echo', '--payload', '{"a":1}'],
  ['queue', 'stats'],
  ['dlq', 'requeue', '--all', '--yes'],
  ['scan', 'corrupt'],
  ['health'],
  ['doctor'],
];

// One case at a time (each runs two CLI processes): the 2-core CI machine stays responsive.
describe('no password in any output of a failing command', () => {
  const cases: Array<[string, () => string, string[]]> = [];
  for (const args of COMMANDS) {
    cases.push([`${args.slice(0, 2).join(' ')}, wrong password`, () => url(WRONG), args]);
    if (args[0] === 'job' || args[0] === 'health') {
      cases.push([
        `${args.slice(0, 2).join(' ')}, wrong user and password`,
        () => url(WRONG, server.port, 'ops'),
        args,
      ]);
    }
    cases.push([`${args.slice(0, 2).join(' ')}, unreachable host`, () => url(PASSWORD, 1), args]);
  }
  cases.push(['worker start, wrong password', () => url(WRONG), ['worker', 'start', '--demo-handlers']]);

  it.for(cases)('%s', async ([, target, args]) => {
    const argv = [...args, '--prefix', freshPrefix()];
    const [viaEnv, viaFlag] = await Promise.all([
      runCli(build.bin, [...argv, '--json'], { env: cleanEnv({ REDIS_URL: target() }) }),
      runCli(build.bin, [...argv, '--redis-url', target()], { env: cleanEnv() }),
    ]);
    for (const result of [viaEnv, viaFlag]) {
      expect(result.timedOut).toBe(false);
      expect(result.code).toBe(4);
      // A worker may log before it fails: its error is then the last line.
      const error =
        args[0] === 'worker' ? { stderr: result.stderr.split('\n').slice(-2).join('\n') } : result;
      expect(oneErrorLine(error)).toMatch(/127\.0\.0\.1:\d+/);
      expectNoSecret(result.stdout + result.stderr);
    }
    // --json: the error (or health's "unreachable" report) as JSON on stdout, still without the password.
    expect(JSON.parse(viaEnv.stdout)).toBeTypeOf('object');
  });
});

describe('a worker with a password in its URL', () => {
  it('loses Redis and gets it back: nothing it logs (debug level) contains the password', async () => {
    const prefix = freshPrefix();
    const worker = startCli(
      build.bin,
      [
        'worker',
        'start',
        '--demo-handlers',
        '--prefix',
        prefix,
        '--log-format',
        'json',
        '--log-level',
        'debug',
      ],
      { env: cleanEnv({ REDIS_URL: url(PASSWORD) }), timeoutMs: 120_000 },
    );
    processes.push(worker);
    await worker.waitForOutput('Worker starting');
    await server.stop();
    await worker.waitForOutput('Redis connection error - retrying with backoff', 20_000);
    await server.spawn();
    await worker.waitForOutput('Redis connection recovered', 30_000);
    const redis = rawClient(url(PASSWORD));
    try {
      await redis.lpush(`${prefix}queue:normal`, 'no-such-job');
      // It works again (the id without a document is dead-lettered, which it logs).
      await waitFor(async () => (await redis.llen(`${prefix}queue:dead`)) === 1, 15_000, 'a dequeue');
    } finally {
      redis.disconnect();
    }
    worker.child.kill('SIGTERM');
    const result = await worker.done;
    expect(result.code).toBe(0);
    expect(worker.output()).toContain('127.0.0.1');
    expectNoSecret(worker.output());
  }, 90_000);
});
