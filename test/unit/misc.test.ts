import { describe, expect, it } from 'vitest';
import { Cluster, Redis } from 'ioredis';
import { createRedis, reconnectDelayMs } from '../../src/core/connection.js';
import { UsageError } from '../../src/core/errors.js';
import { assertJobId, Queue, secondsScore } from '../../src/core/queue.js';
import { passwordOf, redactSecrets, redactUrl } from '../../src/core/redact.js';
import { DEFAULT_RETRY, retryDelayMs, type RetryPolicy } from '../../src/core/worker.js';

describe('redactUrl', () => {
  it.each([
    ['redis://:s3cret@localhost:6379', 'redis://:***@localhost:6379'],
    ['redis://admin:s3cret@redis.example.com:6380/2', 'redis://admin:***@redis.example.com:6380/2'],
    ['rediss://default:s3cret@host:6379', 'rediss://default:***@host:6379'],
    ['redis://:p%40ss%3Aw0rd@host:6379', 'redis://:***@host:6379'],
    ['redis://:p@ss@host:6379', 'redis://:***@host:6379'],
  ])('%s → %s', (url, expected) => {
    expect(redactUrl(url)).toBe(expected);
  });

  it('leaves URLs without a password unchanged, user included', () => {
    expect(redactUrl('redis://localhost:6379')).toBe('redis://localhost:6379');
    expect(redactUrl('redis://admin@localhost:6379/0')).toBe('redis://admin@localhost:6379/0');
  });

  it.each([
    ['redis://user:s3cret@host:99999', 'redis://user:***@host:99999'],
    ['redis://:s3cret@[bad-ipv6', 'redis://:***@[bad-ipv6'],
    ['redis://user:p@ss@host:99999/0', 'redis://user:***@host:99999/0'],
  ])('redacts an unparseable URL %s too', (url, expected) => {
    expect(() => new URL(url)).toThrow();
    expect(redactUrl(url)).toBe(expected);
  });

  it('never lets a password through, and keeps the user', () => {
    const cases: Array<[url: string, user: string, password: string]> = [
      ['redis://bob:hunter2@db:6379', 'bob', 'hunter2'],
      ['redis://bob:p%40ss%2Fw%3Ard@db:6379', 'bob', 'p@ss/w:rd'],
      ['redis://:only-password@db', '', 'only-password'],
      ['rediss://svc-user:Zx9!q*~@db.internal:6380/3', 'svc-user', 'Zx9!q*~'],
    ];
    for (const [url, user, password] of cases) {
      const shown = redactUrl(url);
      expect(shown).not.toContain(password);
      expect(shown).not.toContain(encodeURIComponent(password));
      expect(shown).toContain('***');
      if (user) expect(shown).toContain(`//${user}:`);
    }
  });
});

describe('passwordOf', () => {
  it.each([
    ['redis://:s3cret@localhost:6379', 's3cret'],
    ['redis://admin:s3cret@localhost:6379/1', 's3cret'],
    ['redis://admin:p%40ss%3Aw0rd@host', 'p@ss:w0rd'],
    ['redis://:p@ss@host:6379', 'p@ss'],
    ['redis://:50%off@host:6379', '50%off'],
    ['redis://user:s3cret@host:99999', 's3cret'],
    ['redis://user:p@ss@host:99999/0', 'p@ss'],
  ])('%s → %j', (url, password) => {
    expect(passwordOf(url)).toBe(password);
  });

  it.each([[undefined], [''], ['redis://localhost:6379'], ['redis://admin@localhost:6379'], ['not a url']])(
    '%j has no password',
    (url) => {
      expect(passwordOf(url)).toBeUndefined();
    },
  );
});

describe('redactSecrets', () => {
  it('replaces every occurrence of the secret', () => {
    expect(redactSecrets('WRONGPASS s3cret; again s3cret', ['s3cret'])).toBe('WRONGPASS ***; again ***');
  });

  it('replaces the URL-encoded form as well', () => {
    const text = 'connect redis://:p%40ss@host failed (password p@ss)';
    const out = redactSecrets(text, ['p@ss']);
    expect(out).toBe('connect redis://:***@host failed (password ***)');
  });

  it('handles several secrets and skips empty or missing ones', () => {
    expect(redactSecrets('a-one b-two', ['one', undefined, '', 'two'])).toBe('a-*** b-***');
    expect(redactSecrets('nothing to hide', [undefined, ''])).toBe('nothing to hide');
    expect(redactSecrets('nothing to hide', [])).toBe('nothing to hide');
  });

  it('treats regex characters in a secret literally', () => {
    expect(redactSecrets('pw is a.*b and ab', ['a.*b'])).toBe('pw is *** and ab');
  });

  it('with passwordOf, scrubs a password from an error message that quotes the URL both ways', () => {
    for (const url of [
      'redis://admin:hunter2@db:6379',
      'redis://admin:p%40ss%2Fw%3Ard@db:6379',
      'redis://admin:50%off@db:6379',
      'redis://admin:hunter2@db:99999',
    ]) {
      const password = passwordOf(url) as string;
      const message = `AUTH failed for ${url} (user admin, password ${password})`;
      const out = redactSecrets(message, [passwordOf(url)]);
      expect(out).not.toContain(password);
      expect(out).not.toContain(encodeURIComponent(password));
      expect(out).toContain('admin');
    }
  });
});

describe('assertJobId', () => {
  it.each(['0b6f1a52-3c1e-4d8a-9f2e-6a7d5c4b3e21', 'a', 'order:42', 'jöb-☃', 'x'.repeat(256)])(
    'accepts %j and returns it',
    (id) => {
      expect(assertJobId(id)).toBe(id);
    },
  );

  it.each([
    ['empty', ''],
    ['too long', 'x'.repeat(257)],
    ['space', 'a b'],
    ['tab', 'a\tb'],
    ['newline', 'a\n'],
    ['NUL', 'a\u0000'],
    ['escape', '\u001b[31m'],
    ['DEL', 'a\u007f'],
  ])('refuses an id with %s', (_label, id) => {
    expect(() => assertJobId(id)).toThrow(UsageError);
  });
});

describe('secondsScore', () => {
  it('writes Unix seconds with millisecond fractions, integers when whole (as the SDKs do)', () => {
    expect(secondsScore(new Date(1893553445678))).toBe('1893553445.678');
    expect(secondsScore(new Date(1893553445000))).toBe('1893553445');
    expect(secondsScore(new Date(1762748196000))).toBe('1762748196');
    expect(secondsScore(new Date(1893553445500))).toBe('1893553445.5');
    expect(Number(secondsScore(new Date(1762748196123))) * 1000).toBeCloseTo(1762748196123, 3);
  });
});

describe('retryDelayMs', () => {
  const half = (): number => 0.5;

  it('doubles from 2 s with the default policy (no jitter at the midpoint)', () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => retryDelayMs(n, DEFAULT_RETRY, half))).toEqual([
      2000, 4000, 8000, 16_000, 32_000, 64_000,
    ]);
  });

  it('treats attempts below 1 as the first retry', () => {
    expect(retryDelayMs(0, DEFAULT_RETRY, half)).toBe(2000);
    expect(retryDelayMs(-3, DEFAULT_RETRY, half)).toBe(2000);
  });

  it('caps the delay at maxMs (10 min by default)', () => {
    expect(DEFAULT_RETRY.maxMs).toBe(600_000);
    expect(retryDelayMs(9, DEFAULT_RETRY, half)).toBe(512_000);
    expect(retryDelayMs(10, DEFAULT_RETRY, half)).toBe(600_000);
    expect(retryDelayMs(50, DEFAULT_RETRY, half)).toBe(600_000);
    expect(retryDelayMs(5000, DEFAULT_RETRY, half)).toBe(600_000);
  });

  it('spreads by ±jitter around the (capped) exponential delay', () => {
    expect(DEFAULT_RETRY.jitter).toBe(0.2);
    expect(retryDelayMs(1, DEFAULT_RETRY, () => 0)).toBe(1600);
    expect(retryDelayMs(1, DEFAULT_RETRY, () => 0.25)).toBe(1800);
    expect(retryDelayMs(1, DEFAULT_RETRY, () => 0.75)).toBe(2200);
    expect(retryDelayMs(1, DEFAULT_RETRY, () => 1)).toBe(2400);
    expect(retryDelayMs(3, DEFAULT_RETRY, () => 0)).toBe(6400);
    expect(retryDelayMs(20, DEFAULT_RETRY, () => 0)).toBe(480_000);
    // The cap holds after the jitter too: capped delays spread below maxMs only.
    expect(retryDelayMs(20, DEFAULT_RETRY, () => 1)).toBe(600_000);
  });

  it('stays within the jitter bounds for any random value', () => {
    for (let attempts = 1; attempts <= 15; attempts++) {
      const exponential = Math.min(600_000, 2000 * 2 ** (attempts - 1));
      for (const r of [0, 0.001, 0.1, 0.333, 0.5, 0.9, 0.999999]) {
        const delay = retryDelayMs(attempts, DEFAULT_RETRY, () => r);
        expect(delay).toBeGreaterThanOrEqual(Math.floor(exponential * 0.8));
        expect(delay).toBeLessThanOrEqual(Math.min(600_000, Math.ceil(exponential * 1.2)));
        expect(Number.isInteger(delay)).toBe(true);
      }
    }
  });

  it('uses Math.random by default, within bounds and actually spread', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 500; i++) {
      const delay = retryDelayMs(3);
      expect(delay).toBeGreaterThanOrEqual(6400);
      expect(delay).toBeLessThanOrEqual(9600);
      seen.add(delay);
    }
    expect(seen.size).toBeGreaterThan(10);
  });

  it('follows a custom policy, never going negative', () => {
    const policy: RetryPolicy = { baseMs: 100, maxMs: 1000, jitter: 0 };
    expect([1, 2, 3, 4, 5, 6].map((n) => retryDelayMs(n, policy, () => 0.9))).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
    expect(retryDelayMs(1, { baseMs: 1000, maxMs: 10_000, jitter: 1.5 }, () => 0)).toBe(0);
  });
});

describe('reconnectDelayMs', () => {
  it('waits 2, 4, 8, 16, then 30 s at most', () => {
    expect([1, 2, 3, 4, 5, 6].map(reconnectDelayMs)).toEqual([2000, 4000, 8000, 16_000, 30_000, 30_000]);
  });

  it('stays at 30 s for any later attempt and starts at 2 s', () => {
    expect(reconnectDelayMs(0)).toBe(2000);
    expect(reconnectDelayMs(7)).toBe(30_000);
    expect(reconnectDelayMs(100)).toBe(30_000);
    expect(reconnectDelayMs(10_000)).toBe(30_000);
  });
});

describe("ioredis' keyPrefix", () => {
  // Clients connect lazily: nothing here reaches a server.
  it('is refused when bananas creates the client', () => {
    expect(() =>
      createRedis({ url: 'redis://127.0.0.1:1', mode: 'fail-fast', redisOptions: { keyPrefix: 'app:' } }),
    ).toThrow(UsageError);
    expect(() =>
      createRedis({ url: 'redis://127.0.0.1:1', mode: 'fail-fast', redisOptions: { keyPrefix: 'app:' } }),
    ).toThrow(/keyPrefix \("app:"\) is not supported: give the key prefix as bananas' prefix option/);
  });

  it('is refused on a client given to a Queue, a single server or a cluster (whose node options carry it)', () => {
    const plain = new Redis({ lazyConnect: true, keyPrefix: 'app:' });
    expect(() => new Queue(plain)).toThrow(UsageError);
    const cluster = new Cluster([{ host: '127.0.0.1', port: 1 }], {
      lazyConnect: true,
      redisOptions: { keyPrefix: 'app:' },
    });
    expect(() => new Queue(cluster, { prefix: '{app}:' })).toThrow(/keyPrefix/);
    // Without it, both are accepted.
    expect(new Queue(new Redis({ lazyConnect: true })).keys.prefix).toBe('bananas:');
    expect(
      () =>
        new Queue(new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true }), { prefix: '{app}:' }),
    ).not.toThrow();
  });
});
