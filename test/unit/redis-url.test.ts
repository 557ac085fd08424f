import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import { assertClusterPrefix, hashTagOf } from '../../src/core/keys.js';
import { passwordOf, redactSecrets, redactUrl, secretsOf } from '../../src/core/redact.js';
import { isTlsUrl, parseRedisUrl } from '../../src/core/redis-url.js';

describe('parseRedisUrl', () => {
  it('passes single-server URLs through', () => {
    expect(parseRedisUrl('redis://:pw@host:6380/2')).toEqual({
      kind: 'single',
      url: 'redis://:pw@host:6380/2',
    });
  });

  it('takes a cluster URL apart: nodes, user, decoded password, TLS', () => {
    expect(parseRedisUrl('redis+cluster://app:p%40ss@10.0.0.1:7000,10.0.0.2:7001,node3')).toEqual({
      kind: 'cluster',
      tls: false,
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 7001 },
        { host: 'node3', port: 6379 },
      ],
      username: 'app',
      password: 'p@ss',
    });
    expect(parseRedisUrl('rediss+cluster://[::1]:7000')).toMatchObject({
      kind: 'cluster',
      tls: true,
      nodes: [{ host: '::1', port: 7000 }],
    });
    // A raw `@` in the password: the userinfo ends at the last `@`.
    expect(parseRedisUrl('redis+cluster://:p@ss@h:1')).toMatchObject({
      password: 'p@ss',
      nodes: [{ host: 'h', port: 1 }],
    });
  });

  it('takes a sentinel URL apart: sentinels, master name, sentinel credentials', () => {
    expect(
      parseRedisUrl(
        'redis+sentinel://:pw@s1:26379,s2/mymaster?sentinelPassword=sp%26x&sentinelUsername=sent&db=2',
      ),
    ).toEqual({
      kind: 'sentinel',
      tls: false,
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26379 },
      ],
      masterName: 'mymaster',
      password: 'pw',
      username: undefined,
      sentinelPassword: 'sp&x',
      sentinelUsername: 'sent',
      db: 2,
    });
  });

  it.each([
    ['redis+cluster://h:1/0', /no path/],
    ['redis+cluster://h:1?foo=1', /unknown parameter "foo"/],
    ['redis+cluster://', /names no host/],
    ['redis+cluster://h:99999', /invalid host/],
    ['redis+sentinel://s1:26379', /master name/],
    ['redis+sentinel://s1:26379/m?password=x', /unknown parameter "password"/],
  ])('refuses %s', (url, message) => {
    expect(() => parseRedisUrl(url)).toThrow(UsageError);
    expect(() => parseRedisUrl(url)).toThrow(message);
  });

  it('never puts the password in its error messages when given a redacting function', () => {
    try {
      parseRedisUrl('redis+cluster://:hunter2@h:1/9', redactUrl);
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).not.toContain('hunter2');
      expect((err as Error).message).toContain('redis+cluster://:***@h:1/9');
    }
  });

  it('knows which URLs use TLS', () => {
    expect(['rediss://h', 'rediss+cluster://h', 'rediss+sentinel://h/m'].map(isTlsUrl)).toEqual([
      true,
      true,
      true,
    ]);
    expect(['redis://h', 'redis+cluster://h', 'redis+sentinel://h/m'].map(isTlsUrl)).toEqual([
      false,
      false,
      false,
    ]);
  });
});

describe('redacting cluster and sentinel URLs', () => {
  it.each([
    ['redis+cluster://:s3cret@h1:7000,h2:7001', 'redis+cluster://:***@h1:7000,h2:7001'],
    ['rediss+cluster://app:s3cret@h1:7000', 'rediss+cluster://app:***@h1:7000'],
    ['redis+cluster://app@h1:7000', 'redis+cluster://app@h1:7000'],
    ['redis+cluster://:p@ss@h1:7000', 'redis+cluster://:***@h1:7000'],
    [
      'redis+sentinel://:pw@s1:26379,s2:26379/mymaster?sentinelPassword=sp',
      'redis+sentinel://:***@s1:26379,s2:26379/mymaster?sentinelPassword=***',
    ],
    ['redis+sentinel://s1/m?db=1&sentinelPassword=sp', 'redis+sentinel://s1/m?db=1&sentinelPassword=***'],
    // Not understood (a raw `@` in the query): nothing after the scheme is shown.
    ['redis+sentinel://s1/m?sentinelPassword=a@b', 'redis+sentinel://***'],
  ])('%s → %s', (url, shown) => {
    expect(redactUrl(url)).toBe(shown);
  });

  it('finds every secret of a URL, for redactSecrets', () => {
    expect(secretsOf('redis+sentinel://:pw1@s1/m?sentinelPassword=pw%402')).toEqual(['pw1', 'pw@2']);
    expect(secretsOf('redis+cluster://u:c%2Fx@h:1')).toEqual(['c/x']);
    expect(passwordOf('redis+cluster://u:c%2Fx@h:1')).toBe('c/x');
    expect(secretsOf('redis://:plain@h')).toEqual(['plain']);
    expect(secretsOf(undefined)).toEqual([]);
    expect(
      redactSecrets('WRONGPASS pw1 / pw@2', secretsOf('redis+sentinel://:pw1@s1/m?sentinelPassword=pw%402')),
    ).toBe('WRONGPASS *** / ***');
  });
});

describe('cluster prefixes', () => {
  it.each([
    ['{bananas}:', 'bananas'],
    ['app:{jobs}:', 'jobs'],
    ['{a}{b}:', 'a'],
    ['bananas:', undefined],
    ['{}bananas:', undefined],
    ['{bananas:', undefined],
    ['}{x}:', 'x'],
  ])('hashTagOf(%j) = %j', (prefix, tag) => {
    expect(hashTagOf(prefix)).toBe(tag);
  });

  it('refuses an untagged prefix, saying exactly what to pass', () => {
    expect(assertClusterPrefix('{bananas}:')).toBe('{bananas}:');
    expect(() => assertClusterPrefix('bananas:')).toThrow(`pass --prefix '{bananas}:'`);
    expect(() => assertClusterPrefix('shop:jobs:')).toThrow(`pass --prefix '{shop:jobs}:'`);
    expect(() => assertClusterPrefix('{}x:')).toThrow(UsageError);
  });
});
