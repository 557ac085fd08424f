/**
 * `rediss://` with the --tls-* flags: a private TLS-only redis-server with a throwaway CA made by openssl.
 * The built CLI enqueues with --tls-ca (and with a client certificate), fails with exit 4 and one line
 * without it, fails with exit 2 on a missing file; an in-process worker completes a job over TLS.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tlsOptions } from '../../src/core/connection.js';
import { createLogger } from '../../src/core/logger.js';
import { Worker } from '../../src/core/worker.js';
import { cleanEnv, oneErrorLine, runCli, snapshotBuild, type SnapshotBuild } from '../helpers/cli.js';
import { freshPrefix, waitFor } from '../helpers/context.js';
import { freePort, RedisServer } from '../helpers/redis-server.js';

const hasOpenssl = spawnSync('which', ['openssl'], { stdio: 'ignore' }).status === 0;
if (!hasOpenssl)
  console.warn('tls.test.ts skipped: openssl is not on PATH (needed to make test certificates)');

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A CA, a server certificate for 127.0.0.1/localhost and a client certificate, all signed by the CA. */
function makeCertificates(dir: string): void {
  openssl(
    dir,
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt'].concat([
      '-days',
      '2',
      '-subj',
      '/CN=bananas-test-ca',
    ]),
  );
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const [name, ext] of [
    ['server', ['-extfile', 'server.ext']],
    ['client', []],
  ] as const) {
    openssl(
      dir,
      ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`].concat([
        '-subj',
        `/CN=bananas-test-${name}`,
      ]),
    );
    openssl(
      dir,
      ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key'].concat([
        '-CAcreateserial',
        '-out',
        `${name}.crt`,
        '-days',
        '2',
        ...ext,
      ]),
    );
  }
}

describe.skipIf(!hasOpenssl)('TLS (rediss://)', () => {
  let dir: string;
  let server: RedisServer;
  let build: SnapshotBuild;
  let url: string;
  let redis: Redis;
  const file = (name: string) => join(dir, name);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bananas-tls-'));
    makeCertificates(dir);
    const port = await freePort();
    server = await RedisServer.start({
      tls: { port, caFile: file('ca.crt') },
      args: ['--port', '0', '--tls-port', String(port), '--tls-cert-file', file('server.crt')]
        .concat(['--tls-key-file', file('server.key'), '--tls-ca-cert-file', file('ca.crt')])
        .concat(['--tls-auth-clients', 'optional']),
    });
    url = `rediss://127.0.0.1:${port}`;
    redis = new Redis(url, { tls: { ca: readFileSync(file('ca.crt')) }, maxRetriesPerRequest: 1 });
    build = await snapshotBuild();
  }, 60_000);

  afterAll(async () => {
    redis?.disconnect();
    await server?.destroy();
    build?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function cli(args: string[], env: Record<string, string | undefined> = {}) {
    return runCli(build.bin, args, { env: cleanEnv(env) });
  }

  it('job enqueue succeeds with --tls-ca (and with REDIS_TLS_CA)', async () => {
    const prefix = freshPrefix();
    const flag = await cli([
      'job',
      'enqueue',
      'echo',
      '--redis-url',
      url,
      '--tls-ca',
      file('ca.crt'),
      '--prefix',
      prefix,
    ]);
    expect(flag.stderr).toBe('');
    expect(flag.code).toBe(0);
    const env = await cli(['job', 'enqueue', 'echo', '--prefix', prefix], {
      REDIS_URL: url,
      REDIS_TLS_CA: file('ca.crt'),
    });
    expect(env.code).toBe(0);
    for (const id of [flag.stdout.trim(), env.stdout.trim()]) {
      expect(await redis.exists(`${prefix}job:${id}`)).toBe(1);
    }
  });

  it('a client certificate signed by the CA is accepted (--tls-cert/--tls-key)', async () => {
    const run = await cli(
      ['queue', 'stats', '--json', '--redis-url', url, '--prefix', freshPrefix()].concat([
        '--tls-ca',
        file('ca.crt'),
        '--tls-cert',
        file('client.crt'),
        '--tls-key',
        file('client.key'),
      ]),
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
  });

  it('without --tls-ca the server certificate is refused: exit 4, one line', async () => {
    const run = await cli(['job', 'enqueue', 'echo', '--redis-url', url, '--prefix', freshPrefix()]);
    expect(run.code).toBe(4);
    expect(oneErrorLine(run)).toMatch(/certificate/i);
  });

  it('--tls-insecure connects without verification and warns', async () => {
    const run = await cli([
      'job',
      'enqueue',
      'echo',
      '--redis-url',
      url,
      '--tls-insecure',
      '--prefix',
      freshPrefix(),
    ]);
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/^bananas: warning: --tls-insecure[^\n]*\n$/);
  });

  it('a missing certificate file, or --tls-* with a redis:// URL, is a usage error: exit 2, one line', async () => {
    const missing = await cli(['job', 'enqueue', 'echo', '--redis-url', url, '--tls-ca', file('nope.crt')]);
    expect(missing.code).toBe(2);
    expect(oneErrorLine(missing)).toContain('nope.crt');
    const halfPair = await cli([
      'job',
      'enqueue',
      'echo',
      '--redis-url',
      url,
      '--tls-cert',
      file('client.crt'),
    ]);
    expect(halfPair.code).toBe(2);
    oneErrorLine(halfPair);
    const plain = await cli([
      'job',
      'enqueue',
      'echo',
      '--redis-url',
      'redis://127.0.0.1:1',
      '--tls-ca',
      file('ca.crt'),
    ]);
    expect(plain.code).toBe(2);
    expect(oneErrorLine(plain)).toContain('rediss://');
  });

  it('a worker completes a job over TLS', async () => {
    const prefix = freshPrefix();
    const enqueued = await cli(['job', 'enqueue', 'echo', '--payload', '{"a":1}', '--prefix', prefix], {
      REDIS_URL: url,
      REDIS_TLS_CA: file('ca.crt'),
    });
    expect(enqueued.code).toBe(0);
    const id = enqueued.stdout.trim();
    const worker = new Worker({
      handlers: { echo: async (job) => job.data },
      redisUrl: url,
      redisOptions: { tls: tlsOptions({ ca: file('ca.crt') }) },
      prefix,
      logger: createLogger({ level: 'silent' }),
    });
    await worker.start();
    try {
      await waitFor(
        async () => (await redis.hget(`${prefix}result:${id}`, 'status')) === 'completed',
        10_000,
        'the job to complete',
      );
    } finally {
      await worker.stop();
    }
    expect(worker.stats().completed).toBe(1);
  });
});
