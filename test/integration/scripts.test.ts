/**
 * How scripts reach Redis: EVAL with the source on a connection's first use, EVALSHA afterwards, and EVAL
 * again when the server has lost its scripts. A private redis-server: the test flushes its scripts.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalRedisServer } from '../../src/core/local-redis.js';
import { prepareScript, runPrepared, runScript } from '../../src/core/scripts.js';

let server: LocalRedisServer;
let admin: Redis;

beforeAll(async () => {
  server = await LocalRedisServer.start();
  admin = new Redis(server.url);
});

afterAll(async () => {
  admin.disconnect();
  await server.destroy();
});

/** Calls and failed calls of EVAL and EVALSHA since the last reset. */
async function evalStats(): Promise<{ eval: number; evalsha: number; failedEvalsha: number }> {
  const info = await admin.info('commandstats');
  const stat = (name: string, field: string) =>
    Number(new RegExp(`cmdstat_${name}:.*?\\b${field}=(\\d+)`).exec(info)?.[1] ?? 0);
  return {
    eval: stat('eval', 'calls'),
    evalsha: stat('evalsha', 'calls'),
    failedEvalsha: stat('evalsha', 'failed_calls'),
  };
}

describe('running a script', () => {
  it('sends EVAL with the source on the first call on a connection, EVALSHA after, with every argument', async () => {
    const client = new Redis(server.url);
    await admin.set('s:a', 'x', 'PX', 60_000);
    await admin.config('RESETSTAT');
    // 130 arguments: all reach the script, in order.
    const keys = Array.from({ length: 130 }, (_, i) => (i === 0 ? 's:a' : `s:missing:${i}`));
    const first = await runScript<number[]>(client, 'scan-ttls', ['s:a'], keys);
    expect(first).toHaveLength(130);
    expect(first[0]).toBeGreaterThan(50_000);
    expect(first.slice(1).every((ttl) => ttl === -2)).toBe(true);
    expect(await runScript<number[]>(client, 'scan-ttls', ['s:a'], ['s:missing', 's:a'])).toEqual([
      -2,
      expect.any(Number),
    ]);
    expect(await evalStats()).toEqual({ eval: 1, evalsha: 1, failedEvalsha: 0 });
    client.disconnect();
  });

  it.each([
    ['a call', (client: Redis) => runScript<number[]>(client, 'scan-ttls', ['s:a'], ['s:missing'])],
    [
      'a prepared call',
      (client: Redis) => runPrepared<number[]>(client, prepareScript('scan-ttls', ['s:a'], ['s:missing'])),
    ],
  ])(
    'after the server lost its scripts, %s answers NOSCRIPT once and is sent again as EVAL',
    async (_, call) => {
      const client = new Redis(server.url);
      await runScript(client, 'scan-ttls', ['s:a'], ['s:a']);
      await admin.script('FLUSH');
      await admin.config('RESETSTAT');
      expect(await call(client)).toEqual([-2]);
      expect(await call(client)).toEqual([-2]);
      expect(await evalStats()).toEqual({ eval: 1, evalsha: 2, failedEvalsha: 1 });
      client.disconnect();
    },
  );

  it('a client that reconnected sends EVAL again on its new connection, without a NOSCRIPT', async () => {
    const client = new Redis(server.url, { connectionName: 'scripts-reconnect' });
    await runScript(client, 'scan-ttls', ['s:a'], ['s:a']);
    await admin.script('FLUSH'); // as a restarted server would have
    await admin.client('KILL', 'SKIPME', 'yes', 'TYPE', 'normal');
    await new Promise<void>((resolve) => client.once('ready', () => resolve()));
    await admin.config('RESETSTAT');
    expect(await runScript<number[]>(client, 'scan-ttls', ['s:a'], ['s:missing'])).toEqual([-2]);
    expect(await evalStats()).toEqual({ eval: 1, evalsha: 0, failedEvalsha: 0 });
    client.disconnect();
  });

  it('a prepared call carries every argument (text, numbers, Buffers), as EVAL first and EVALSHA after', async () => {
    const client = new Redis(server.url);
    for (const key of ['s:a', '7', 's:é', 's:buffer']) await admin.set(key, 'x', 'PX', 60_000);
    await admin.config('RESETSTAT');
    const missing = Array.from({ length: 126 }, (_, i) => `s:missing:${i}`);
    const args = ['s:a', ...missing, Buffer.from('s:buffer'), 7, 's:é'];
    const prepared = prepareScript('scan-ttls', ['s:a'], args);
    // Each key's TTL, or -2 for a missing one: the keys set above have about 60 s left.
    const expected = ['s:a', ...missing, 's:buffer', '7', 's:é'].map((key) =>
      key.startsWith('s:missing') ? -2 : 'set',
    );
    const shape = (ttls: number[]) => ttls.map((ttl) => (ttl > 50_000 ? 'set' : ttl));
    expect(shape(await runPrepared<number[]>(client, prepared))).toEqual(expected);
    // The same prepared call can be sent again: now as EVALSHA.
    expect(shape(await runPrepared<number[]>(client, prepared))).toEqual(expected);
    expect(await evalStats()).toEqual({ eval: 1, evalsha: 1, failedEvalsha: 0 });
    client.disconnect();
  });

  it('a prepared call sent on a new connection goes as EVAL again, without a NOSCRIPT', async () => {
    await admin.set('s:a', 'x', 'PX', 60_000);
    const client = new Redis(server.url, { connectionName: 'scripts-prepared-reconnect' });
    const prepared = prepareScript('scan-ttls', ['s:a'], ['s:a', 's:missing']);
    await runPrepared(client, prepared);
    await admin.script('FLUSH'); // as a restarted server would have
    await admin.client('KILL', 'SKIPME', 'yes', 'TYPE', 'normal');
    await new Promise<void>((resolve) => client.once('ready', () => resolve()));
    await admin.config('RESETSTAT');
    expect(await runPrepared<number[]>(client, prepared)).toEqual([expect.any(Number), -2]);
    expect(await evalStats()).toEqual({ eval: 1, evalsha: 0, failedEvalsha: 0 });
    client.disconnect();
  });

  it('refuses to prepare a script that does not exist', () => {
    expect(() => prepareScript('no-such-script', [], [])).toThrow(/unknown Lua script no-such-script/);
  });
});
