import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import {
  assertPrefix,
  assertRoutingKey,
  DEFAULT_PREFIX,
  escapeGlob,
  isPriority,
  isValidRoutingKey,
  Keys,
  normalizePriority,
  normalizeRoutingKey,
  PRIORITIES,
} from '../../src/core/keys.js';

describe('Keys with the default prefix (WIRE §1)', () => {
  const keys = new Keys();

  it('uses bananas: by default', () => {
    expect(DEFAULT_PREFIX).toBe('bananas:');
    expect(keys.prefix).toBe('bananas:');
  });

  it('names the original keys byte for byte', () => {
    expect(keys.job('0b6f1a52-3c1e-4d8a-9f2e-6a7d5c4b3e21')).toBe(
      'bananas:job:0b6f1a52-3c1e-4d8a-9f2e-6a7d5c4b3e21',
    );
    expect(keys.job('')).toBe('bananas:job:');
    expect(keys.processing).toBe('bananas:queue:processing');
    expect(keys.dead).toBe('bananas:queue:dead');
    expect(keys.scheduled).toBe('bananas:queue:scheduled');
    expect(keys.result('abc')).toBe('bananas:result:abc');
    expect(keys.resultNotify('abc')).toBe('bananas:result:notify:abc');
    expect(keys.schedule('daily-report')).toBe('bananas:schedules:daily-report');
    expect(keys.scheduleLock('daily-report')).toBe('bananas:schedule_lock:daily-report');
  });

  it.each(PRIORITIES)('puts default-route %s jobs in bananas:queue:<p>', (priority) => {
    const expected = `bananas:queue:${priority}`;
    expect(keys.queue(priority)).toBe(expected);
    expect(keys.queue(priority, 'default')).toBe(expected);
    expect(keys.queue(priority, '')).toBe(expected);
  });

  it.each(PRIORITIES)('puts routed %s jobs in bananas:route:<rk>:queue:<p>', (priority) => {
    expect(keys.queue(priority, 'gpu')).toBe(`bananas:route:gpu:queue:${priority}`);
    expect(keys.queue(priority, 'eu-west_1')).toBe(`bananas:route:eu-west_1:queue:${priority}`);
  });

  it('is case-sensitive about "default": only the exact word is the default route', () => {
    expect(keys.queue('high', 'Default')).toBe('bananas:route:Default:queue:high');
  });

  it('names the legacy route:default lists some original builds wrote', () => {
    expect(keys.legacyDefaultRouteQueue('high')).toBe('bananas:route:default:queue:high');
    expect(keys.legacyDefaultRouteQueue('normal')).toBe('bananas:route:default:queue:normal');
    expect(keys.legacyDefaultRouteQueue('low')).toBe('bananas:route:default:queue:low');
  });

  it('has a default-route worker drain both the queue and the legacy list; a routed worker only its own', () => {
    expect(keys.queuesServed('high', 'default')).toEqual([
      'bananas:queue:high',
      'bananas:route:default:queue:high',
    ]);
    expect(keys.queuesServed('low', '')).toEqual(['bananas:queue:low', 'bananas:route:default:queue:low']);
    expect(keys.queuesServed('normal', 'gpu')).toEqual(['bananas:route:gpu:queue:normal']);
  });

  it('names the signal lists per route', () => {
    expect(keys.signal()).toBe('bananas:signal');
    expect(keys.signal('default')).toBe('bananas:signal');
    expect(keys.signal('')).toBe('bananas:signal');
    expect(keys.signal('gpu')).toBe('bananas:route:gpu:signal');
  });

  it('keeps the keys bananas adds under the prefix, apart from the original ones', () => {
    const added = [
      keys.leases,
      keys.leaseOwners,
      keys.workers,
      keys.worker('w1'),
      keys.stats,
      keys.statsMinute(29_379_136),
      keys.signal(),
      keys.signal('gpu'),
    ];
    for (const key of added) expect(key.startsWith('bananas:')).toBe(true);
    expect(new Set(added).size).toBe(added.length);
    const original = [
      keys.processing,
      keys.dead,
      keys.scheduled,
      ...PRIORITIES.map((p) => keys.queue(p)),
      ...PRIORITIES.map((p) => keys.queue(p, 'gpu')),
    ];
    for (const key of added) expect(original).not.toContain(key);
    expect(keys.statsMinute(29_379_136)).toBe('bananas:stats:minute:29379136');
    expect(keys.worker('host-1-abc')).toBe('bananas:worker:host-1-abc');
  });

  it('builds a SCAN pattern for job documents', () => {
    expect(keys.jobPattern()).toBe('bananas:job:*');
  });
});

describe('Keys with a custom prefix', () => {
  const keys = new Keys('myapp:');

  it('puts every key under it', () => {
    expect(keys.prefix).toBe('myapp:');
    expect(keys.job('x')).toBe('myapp:job:x');
    expect(keys.queue('high')).toBe('myapp:queue:high');
    expect(keys.queue('low', 'gpu')).toBe('myapp:route:gpu:queue:low');
    expect(keys.legacyDefaultRouteQueue('normal')).toBe('myapp:route:default:queue:normal');
    expect(keys.processing).toBe('myapp:queue:processing');
    expect(keys.dead).toBe('myapp:queue:dead');
    expect(keys.scheduled).toBe('myapp:queue:scheduled');
    expect(keys.result('x')).toBe('myapp:result:x');
    expect(keys.resultNotify('x')).toBe('myapp:result:notify:x');
    expect(keys.signal('gpu')).toBe('myapp:route:gpu:signal');
    expect(keys.schedule('s')).toBe('myapp:schedules:s');
    expect(keys.scheduleLock('s')).toBe('myapp:schedule_lock:s');
    expect(keys.jobPattern()).toBe('myapp:job:*');
  });

  it('uses the prefix exactly as given (nested, no colon added)', () => {
    expect(new Keys('tenant-1:bananas:').queue('high', 'gpu')).toBe('tenant-1:bananas:route:gpu:queue:high');
    expect(new Keys('x').job('1')).toBe('xjob:1');
    expect(new Keys('{app}:').dead).toBe('{app}:queue:dead');
  });

  it('escapes a backslash in the prefix in the SCAN pattern', () => {
    expect(new Keys('a\\b:').jobPattern()).toBe('a\\\\b:job:*');
  });
});

describe('assertPrefix', () => {
  it.each(['', ' ', 'my app:', 'tab\t:', 'new\nline:', 'a*', 'a?', 'a[', 'a]', '[ab]:'])(
    'refuses %j with a UsageError',
    (prefix) => {
      expect(() => assertPrefix(prefix)).toThrow(UsageError);
      expect(() => new Keys(prefix)).toThrow(UsageError);
    },
  );

  it.each(['bananas:', 'x', 'app-1:', 'tenant_a:bananas:', '{app}:', 'ünï:'])('accepts %j', (prefix) => {
    expect(assertPrefix(prefix)).toBe(prefix);
  });

  it('gives a usage error code and a message naming the prefix', () => {
    try {
      assertPrefix('a*');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(UsageError);
      expect((err as UsageError).code).toBe('USAGE');
      expect((err as UsageError).message).toContain('"a*"');
    }
  });
});

describe('priorities', () => {
  it('lists high, normal, low in poll order', () => {
    expect(PRIORITIES).toEqual(['high', 'normal', 'low']);
  });

  it.each([
    ['high', 'high'],
    ['normal', 'normal'],
    ['low', 'low'],
    ['urgent', 'normal'],
    ['HIGH', 'normal'],
    ['high ', 'normal'],
    ['', 'normal'],
    [undefined, 'normal'],
    [null, 'normal'],
    [1, 'normal'],
    [{}, 'normal'],
  ])('normalizePriority(%j) → %s', (value, expected) => {
    expect(normalizePriority(value)).toBe(expected);
  });

  it('isPriority accepts only the three names', () => {
    expect(isPriority('high')).toBe(true);
    expect(isPriority('low')).toBe(true);
    expect(isPriority('critical')).toBe(false);
    expect(isPriority('toString')).toBe(false);
  });
});

describe('routing keys', () => {
  it.each(['gpu', 'default', 'a', 'A-Z_0-9', 'x'.repeat(64), 'eu-west-1'])('accepts %j', (rk) => {
    expect(isValidRoutingKey(rk)).toBe(true);
    expect(assertRoutingKey(rk)).toBe(rk);
  });

  it.each(['', 'x'.repeat(65), 'a b', 'a:b', 'a.b', 'a/b', 'a*', 'gpü', 'gpu\n', ' gpu', 'a{b}'])(
    'refuses %j with a UsageError',
    (rk) => {
      expect(isValidRoutingKey(rk)).toBe(false);
      expect(() => assertRoutingKey(rk)).toThrow(UsageError);
    },
  );

  it('normalizes "", absent and non-strings to default and keeps others', () => {
    expect(normalizeRoutingKey('')).toBe('default');
    expect(normalizeRoutingKey(undefined)).toBe('default');
    expect(normalizeRoutingKey(null)).toBe('default');
    expect(normalizeRoutingKey(5)).toBe('default');
    expect(normalizeRoutingKey('default')).toBe('default');
    expect(normalizeRoutingKey('gpu')).toBe('gpu');
  });
});

describe('escapeGlob', () => {
  it('escapes every SCAN glob metacharacter', () => {
    expect(escapeGlob('a*b?c[d]e\\f')).toBe('a\\*b\\?c\\[d\\]e\\\\f');
    expect(escapeGlob('***')).toBe('\\*\\*\\*');
  });

  it('leaves ordinary text alone', () => {
    expect(escapeGlob('bananas:job:0b6f1a52-3c1e')).toBe('bananas:job:0b6f1a52-3c1e');
    expect(escapeGlob('')).toBe('');
    expect(escapeGlob('{a}^!-:')).toBe('{a}^!-:');
  });

  it('is undone by dropping each escaping backslash', () => {
    for (const text of ['a*b', '[x]', 'p\\q', '?*[]\\', 'plain']) {
      expect(escapeGlob(text).replace(/\\(.)/g, '$1')).toBe(text);
    }
  });
});
