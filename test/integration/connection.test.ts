/**
 * The reply timeout of a connection (`replyTimeoutMs`, ioredis' socketTimeout) against a TCP proxy in front
 * of the test Redis: a connection closed with a call outstanding is made again, and the new connection is
 * not dropped by the timer of the old one.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createRedis, type RedisClient } from '../../src/core/connection.js';
import { onCluster, testRedisUrl, waitFor } from '../helpers/context.js';
import { SilencingProxy } from '../helpers/proxy.js';

let proxy: SilencingProxy | undefined;
let client: RedisClient | undefined;

afterEach(async () => {
  client?.disconnect();
  client = undefined;
  await proxy?.close();
  proxy = undefined;
});

/**
 * A resilient client with this reply timeout, through a new proxy in front of the test Redis; `timeouts`
 * records when it reported a reply timeout.
 */
async function proxiedClient(replyTimeoutMs: number): Promise<{ redis: RedisClient; timeouts: number[] }> {
  const upstream = new URL(testRedisUrl());
  proxy = await SilencingProxy.start(upstream.hostname, Number(upstream.port));
  const timeouts: number[] = [];
  client = createRedis({
    url: `redis://127.0.0.1:${proxy.port}`,
    mode: 'resilient',
    connectionName: 'bananas-reply-timeout-test',
    replyTimeoutMs,
    onReplyTimeout: () => timeouts.push(Date.now()),
  });
  return { redis: client, timeouts };
}

describe.skipIf(onCluster())('reply timeout', () => {
  it('a connection closed with a call outstanding is made again, and the old timer does not drop the new one', async () => {
    const { redis, timeouts } = await proxiedClient(4000);
    let closes = 0;
    redis.on('close', () => closes++);
    expect(await redis.ping()).toBe('PONG');

    // A call goes out and stays unanswered (its reply timer runs), then the connection is closed under it.
    proxy!.hold();
    const sentAt = Date.now();
    const pending = redis.ping('after the reset');
    await new Promise((r) => setTimeout(r, 200));
    proxy!.dropAll();
    proxy!.release();

    // ioredis connects again after 2 s and sends the call again; the new connection answers it.
    expect(await pending).toBe('after the reset');
    expect(Date.now() - sentAt).toBeLessThan(4000);
    // Past the moment the old call's timer would have gone off: the new connection is still up.
    await new Promise((r) => setTimeout(r, Math.max(0, sentAt + 5000 - Date.now())));
    expect(await redis.ping()).toBe('PONG');
    expect(timeouts).toEqual([]);
    expect(closes).toBe(1);
    expect(redis.status).toBe('ready');
  });

  it('a connection that goes silent with a call outstanding is dropped after the timeout and the call answered on the next', async () => {
    const { redis, timeouts } = await proxiedClient(1000);
    expect(await redis.ping()).toBe('PONG');
    expect(proxy!.silence('bananas-reply-timeout-test')).toBe(1);
    const sentAt = Date.now();
    expect(await redis.ping('resent')).toBe('resent');
    expect(timeouts).toHaveLength(1);
    expect(timeouts[0]! - sentAt).toBeGreaterThanOrEqual(1000);
    await waitFor(() => redis.status === 'ready', 5000, 'the new connection');
  });
});
