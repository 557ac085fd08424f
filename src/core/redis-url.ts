/**
 * The forms of `--redis-url`: one server (`redis://`, `rediss://`, read by ioredis itself), a Redis Cluster
 * (`redis+cluster://[user:password@]host1:port,host2:port`) and Sentinel
 * (`redis+sentinel://[user:password@]host1:26379,host2:26379/<master-name>[?sentinelPassword=…]`); the
 * `rediss+` forms use TLS. Parsing is pure so it can be tested without a server.
 */
import { UsageError } from './errors.js';

export interface HostPort {
  host: string;
  port: number;
}

export type RedisTopology =
  | { kind: 'single'; url: string }
  | {
      kind: 'cluster';
      tls: boolean;
      nodes: HostPort[];
      username?: string;
      password?: string;
    }
  | {
      kind: 'sentinel';
      tls: boolean;
      sentinels: HostPort[];
      masterName: string;
      username?: string;
      password?: string;
      sentinelUsername?: string;
      sentinelPassword?: string;
      db?: number;
    };

const MULTI_HOST_SCHEME = /^(rediss?)\+(cluster|sentinel):\/\//i;

/**
 * `[userinfo@]hosts[/path][?query]`. The userinfo ends at the last `@` before the hosts (a password may
 * contain a raw `@`, but `/`, `?` and `#` must be percent-encoded, as in any URL); query values must be
 * percent-encoded.
 */
const MULTI_HOST_REST = /^(?:([^/?#]*)@)?([^@/?#]*)(\/[^?@#]*)?(\?[^@#]*)?$/s;

/** True for the `redis+cluster://`, `redis+sentinel://` forms (and their `rediss+` TLS variants). */
export function isMultiHostUrl(url: string): boolean {
  return MULTI_HOST_SCHEME.test(url);
}

/** True for every URL whose connections use TLS (`rediss://`, `rediss+cluster://`, `rediss+sentinel://`). */
export function isTlsUrl(url: string): boolean {
  return /^rediss(\+[a-z]+)?:\/\//i.test(url);
}

/** The raw (still percent-encoded) parts of a multi-host URL, or undefined when it is not one or malformed. */
export function splitMultiHostUrl(
  url: string,
): { scheme: string; userinfo?: string; hosts: string; path?: string; query?: string } | undefined {
  const scheme = MULTI_HOST_SCHEME.exec(url);
  if (!scheme) return undefined;
  const rest = MULTI_HOST_REST.exec(url.slice(scheme[0].length));
  if (!rest) return undefined;
  return {
    scheme: scheme[0],
    userinfo: rest[1],
    hosts: rest[2] ?? '',
    path: rest[3],
    query: rest[4],
  };
}

/** Percent-decodes a URL part; one that is not valid percent-encoding is taken as written. */
export function decodeUrlPart(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** `user:password` (still percent-encoded) split at its first colon; no colon: a user alone. */
export function splitUserinfo(userinfo: string): { user: string; password?: string } {
  const colon = userinfo.indexOf(':');
  return colon < 0
    ? { user: userinfo }
    : { user: userinfo.slice(0, colon), password: userinfo.slice(colon + 1) };
}

function parseHosts(hosts: string, defaultPort: number, url: string): HostPort[] {
  const out: HostPort[] = [];
  for (const part of hosts.split(',')) {
    if (part === '') continue;
    const match = /^(\[[^\]]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(part);
    const port = match?.[2] === undefined ? defaultPort : Number(match[2]);
    if (!match || port < 1 || port > 65535) {
      throw new UsageError(`invalid host ${JSON.stringify(part)} in the Redis URL ${url}`);
    }
    const host = (match[1] as string).replace(/^\[(.*)\]$/, '$1');
    out.push({ host, port });
  }
  if (out.length === 0) throw new UsageError(`the Redis URL ${url} names no host`);
  return out;
}

/**
 * Parses a `--redis-url`. Single-server URLs are passed through (ioredis reads them); the cluster and
 * sentinel forms are taken apart. A malformed multi-host URL is a UsageError whose message shows the URL
 * through `shown` (pass a redacting function: the URL may hold a password).
 */
export function parseRedisUrl(url: string, shown: (url: string) => string = () => 'given'): RedisTopology {
  if (!isMultiHostUrl(url)) return { kind: 'single', url };
  const parts = splitMultiHostUrl(url);
  const where = shown(url);
  if (!parts) {
    throw new UsageError(
      `cannot parse the Redis URL ${where}: expected redis+cluster://[user:password@]host:port,host:port or redis+sentinel://[user:password@]host:port,host:port/<master-name>`,
    );
  }
  const kind = /cluster/i.test(parts.scheme) ? 'cluster' : 'sentinel';
  const tls = /^rediss/i.test(parts.scheme);
  let username: string | undefined;
  let password: string | undefined;
  if (parts.userinfo !== undefined) {
    const { user, password: raw } = splitUserinfo(parts.userinfo);
    username = user === '' ? undefined : decodeUrlPart(user);
    password = raw === undefined || raw === '' ? undefined : decodeUrlPart(raw);
  }
  const params = new URLSearchParams(parts.query ?? '');
  if (kind === 'cluster') {
    if (parts.path !== undefined && parts.path !== '/') {
      throw new UsageError(`a Redis Cluster URL has no path (a cluster has only database 0): ${where}`);
    }
    for (const name of params.keys()) {
      throw new UsageError(`unknown parameter ${JSON.stringify(name)} in the Redis Cluster URL ${where}`);
    }
    return { kind, tls, nodes: parseHosts(parts.hosts, 6379, where), username, password };
  }
  const masterName = decodeUrlPart((parts.path ?? '').replace(/^\//, ''));
  if (masterName === '' || masterName.includes('/')) {
    throw new UsageError(
      `a Sentinel URL ends with the master name: redis+sentinel://host:26379,host:26379/<master-name> (got ${where})`,
    );
  }
  const out: Extract<RedisTopology, { kind: 'sentinel' }> = {
    kind,
    tls,
    sentinels: parseHosts(parts.hosts, 26379, where),
    masterName,
    username,
    password,
  };
  for (const [name, value] of params) {
    if (name === 'sentinelPassword') out.sentinelPassword = value;
    else if (name === 'sentinelUsername') out.sentinelUsername = value;
    else if (name === 'db' && /^\d{1,2}$/.test(value)) out.db = Number(value);
    else throw new UsageError(`unknown parameter ${JSON.stringify(name)} in the Sentinel URL ${where}`);
  }
  return out;
}
