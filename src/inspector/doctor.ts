/**
 * The runbook's Redis checks in one report (memory, clients, eviction, persistence, slowlog, bananas keys
 * and their memory), each finding with the advice the runbook should have given: `noeviction` (never
 * `allkeys-lru`: it evicts queued jobs), AOF with `appendfsync everysec`, and never deleting job keys to
 * free memory. Read-only: INFO, CONFIG GET, SLOWLOG GET, SCAN and MEMORY USAGE on a bounded sample.
 */
import type { Redis } from 'ioredis';
import { isCluster, masterNodes, nodeAddress, nodeForKey, type RedisClient } from '../core/connection.js';
import { errorMessage } from '../core/errors.js';
import { scanKeys } from '../core/iterate.js';
import { escapeGlob, isPriority, isValidRoutingKey, PRIORITIES, type Keys } from '../core/keys.js';
import { formatBytes, memoryLevel, memoryUsage, MEMORY_THRESHOLDS, parseInfo } from './health.js';
import { worstLevel, type Level } from './stats.js';
import { formatAgo } from './workers.js';

export interface DoctorFinding {
  /** memory, clients, eviction, persistence, slowlog, keys, server */
  section: string;
  /** Stable identifier within the section. */
  name: string;
  status: Level;
  value: number | string | null;
  message: string;
  /** What to do about it; null when nothing needs doing. */
  advice: string | null;
  /** Redis Cluster: the master (`host:port`) the finding is about (server-level findings only). */
  node?: string;
}

export interface KeyCategory {
  /** jobs, results, ready_lists, queues, leases, workers, stats, signals, schedules, schedule_locks, other */
  name: string;
  count: number;
  /** Keys whose MEMORY USAGE was read. */
  sampled: number;
  /** Bytes: measured when every key was sampled, otherwise the sample's mean times the count. */
  memory_bytes: number | null;
  estimated: boolean;
}

export interface DoctorReport {
  status: Level;
  checked_at: string;
  prefix: string;
  server: {
    version: string | null;
    mode: string | null;
    role: string | null;
    uptime_seconds: number | null;
  };
  memory: {
    used_bytes: number | null;
    peak_bytes: number | null;
    rss_bytes: number | null;
    maxmemory_bytes: number | null;
    maxmemory_policy: string | null;
    fragmentation_ratio: number | null;
    evicted_keys: number | null;
  };
  clients: {
    connected: number | null;
    blocked: number | null;
    maxclients: number | null;
    rejected_connections: number | null;
  };
  persistence: {
    rdb_save_points: string | null;
    rdb_last_save_at: string | null;
    rdb_changes_since_last_save: number | null;
    rdb_last_bgsave_status: string | null;
    aof_enabled: boolean | null;
    appendfsync: string | null;
    aof_last_write_status: string | null;
    aof_last_bgrewrite_status: string | null;
    aof_rewrite_in_progress: boolean | null;
  };
  slowlog: {
    length: number | null;
    slower_than_us: number | null;
    latest: Array<{ id: number; at: string; duration_us: number; command: string }>;
  };
  keys: {
    scanned: number;
    sample_per_category: number;
    categories: KeyCategory[];
    memory_bytes: number | null;
    memory_note: string;
  };
  findings: DoctorFinding[];
  /**
   * Redis Cluster only: every master's server-level report. The top-level server, memory, clients,
   * persistence and slowlog sections are those of the master holding the prefix's hash slot.
   */
  nodes?: Array<
    Pick<DoctorReport, 'status' | 'server' | 'memory' | 'clients' | 'persistence' | 'slowlog'> & {
      address: string;
      holds_prefix: boolean;
    }
  >;
}

export interface DoctorOptions {
  /** MEMORY USAGE is read on at most this many keys of each category (default 200). */
  samplePerCategory?: number;
  /** Latest slowlog entries to show (default 10). */
  slowlogEntries?: number;
  /** Called with the number of keys scanned so far. */
  onProgress?: (scanned: number) => void;
  now?: number;
}

const SLOW_COMMAND_US = 100_000;

/**
 * The report. The server-level checks (INFO, CONFIG, SLOWLOG) run on every master of a Redis Cluster, each
 * finding naming its node; the key scan covers every master.
 */
export async function diagnose(
  redis: RedisClient,
  keys: Keys,
  options: DoctorOptions = {},
): Promise<DoctorReport> {
  const now = options.now ?? Date.now();
  const keyReport = await scanBananasKeys(redis, keys, options.samplePerCategory ?? 200, options.onProgress);
  if (!isCluster(redis)) {
    const report = await diagnoseServer(redis, keys, keyReport, options, now);
    report.findings.push(...keyFindings(report));
    report.status = worstLevel(report.findings.map((f) => f.status));
    return report;
  }
  const home = nodeAddress(await nodeForKey(redis, keys.job('')));
  const perNode: Array<{ address: string; report: DoctorReport }> = [];
  for (const node of masterNodes(redis)) {
    perNode.push({
      address: nodeAddress(node),
      report: await diagnoseServer(node, keys, keyReport, options, now),
    });
  }
  perNode.sort((a, b) => a.address.localeCompare(b.address));
  const main = (perNode.find((n) => n.address === home) ?? perNode[0])?.report;
  if (!main) throw new Error('the cluster client knows no master');
  const report: DoctorReport = {
    ...main,
    nodes: perNode.map(({ address, report: r }) => ({
      address,
      holds_prefix: address === home,
      status: r.status,
      server: r.server,
      memory: r.memory,
      clients: r.clients,
      persistence: r.persistence,
      slowlog: r.slowlog,
    })),
    findings: perNode.flatMap(({ address, report: r }) =>
      r.findings.map((f) => ({ ...f, node: address, message: `${address}: ${f.message}` })),
    ),
  };
  // One block per section, every master's findings in it.
  const sections = [...new Set(report.findings.map((f) => f.section))];
  report.findings.sort((a, b) => sections.indexOf(a.section) - sections.indexOf(b.section));
  report.findings.push(...keyFindings(report));
  report.status = worstLevel(report.findings.map((f) => f.status));
  return report;
}

/** The server-level part of the report for one server (status and findings without the key findings). */
async function diagnoseServer(
  redis: Redis,
  keys: Keys,
  keyReport: DoctorReport['keys'],
  options: DoctorOptions,
  now: number,
): Promise<DoctorReport> {
  const info = parseInfo(await redis.info());
  const config = await configGet(redis, ['maxclients', 'appendfsync', 'save', 'slowlog-log-slower-than']);
  const slowlog = await readSlowlog(redis, options.slowlogEntries ?? 10);

  const num = (value: string | undefined): number | null => {
    if (value === undefined || value === '') return null;
    const n = Number(value);
    return Number.isFinite(n) ? n : null;
  };
  const lastSave = num(info.rdb_last_save_time);
  const report: DoctorReport = {
    status: 'ok',
    checked_at: new Date(now).toISOString(),
    prefix: keys.prefix,
    server: {
      version: info.redis_version ?? null,
      mode: info.redis_mode ?? null,
      role: info.role ?? null,
      uptime_seconds: num(info.uptime_in_seconds),
    },
    memory: {
      used_bytes: num(info.used_memory),
      peak_bytes: num(info.used_memory_peak),
      rss_bytes: num(info.used_memory_rss),
      maxmemory_bytes: num(info.maxmemory),
      maxmemory_policy: info.maxmemory_policy ?? null,
      fragmentation_ratio: num(info.mem_fragmentation_ratio),
      evicted_keys: num(info.evicted_keys),
    },
    clients: {
      connected: num(info.connected_clients),
      blocked: num(info.blocked_clients),
      maxclients: num(info.maxclients ?? config.maxclients),
      rejected_connections: num(info.rejected_connections),
    },
    persistence: {
      rdb_save_points: config.save ?? null,
      rdb_last_save_at: lastSave === null ? null : new Date(lastSave * 1000).toISOString(),
      rdb_changes_since_last_save: num(info.rdb_changes_since_last_save),
      rdb_last_bgsave_status: info.rdb_last_bgsave_status ?? null,
      aof_enabled: info.aof_enabled === undefined ? null : info.aof_enabled === '1',
      appendfsync: config.appendfsync ?? null,
      aof_last_write_status: info.aof_last_write_status ?? null,
      aof_last_bgrewrite_status: info.aof_last_bgrewrite_status ?? null,
      aof_rewrite_in_progress:
        info.aof_rewrite_in_progress === undefined ? null : info.aof_rewrite_in_progress === '1',
    },
    slowlog: {
      length: slowlog.length,
      slower_than_us: num(config['slowlog-log-slower-than']),
      latest: slowlog.latest,
    },
    keys: keyReport,
    findings: [],
  };
  report.findings = [
    ...serverFindings(report),
    ...memoryFindings(report, info),
    ...clientFindings(report),
    ...persistenceFindings(report, now),
    ...slowlogFindings(report, now),
  ];
  if (config.unavailable) {
    report.findings.push({
      section: 'server',
      name: 'config_get',
      status: 'ok',
      value: null,
      message: `CONFIG GET is not allowed on this server (${config.unavailable}); settings only CONFIG reports are shown as unknown`,
      advice: null,
    });
  }
  report.status = worstLevel(report.findings.map((f) => f.status));
  return report;
}

async function configGet(
  redis: RedisClient,
  names: string[],
): Promise<Record<string, string | undefined> & { unavailable?: string }> {
  const out: Record<string, string | undefined> & { unavailable?: string } = {};
  for (const name of names) {
    try {
      const reply = (await redis.call('CONFIG', 'GET', name)) as string[];
      if (reply.length >= 2) out[name] = reply[1];
    } catch (err) {
      // Managed services rename or forbid CONFIG; the report says so and carries on.
      out.unavailable = errorMessage(err).replace(/\s+/g, ' ');
      break;
    }
  }
  return out;
}

/** Commands whose arguments may carry secrets: never shown. */
const SECRET_COMMANDS = new Set(['auth', 'hello', 'migrate', 'acl', 'config']);

async function readSlowlog(
  redis: RedisClient,
  entries: number,
): Promise<{ length: number | null; latest: DoctorReport['slowlog']['latest'] }> {
  try {
    const length = (await redis.call('SLOWLOG', 'LEN')) as number;
    const raw = (await redis.call('SLOWLOG', 'GET', entries)) as unknown[][];
    const latest = raw.map((entry) => {
      const args = ((entry[3] as unknown[]) ?? []).map((a) => String(a));
      const name = (args[0] ?? '').toLowerCase();
      const shown = SECRET_COMMANDS.has(name)
        ? [args[0] ?? '', '(arguments hidden)']
        : args.slice(0, 6).map((a) => (a.length > 40 ? `${a.slice(0, 40)}…` : a));
      if (!SECRET_COMMANDS.has(name) && args.length > 6) shown.push(`… (${args.length - 6} more)`);
      return {
        id: Number(entry[0]),
        at: new Date(Number(entry[1]) * 1000).toISOString(),
        duration_us: Number(entry[2]),
        command: shown.join(' ').replace(/[\r\n]+/g, ' '),
      };
    });
    return { length, latest };
  } catch {
    return { length: null, latest: [] };
  }
}

/** The category of a key under the prefix, decided by comparing with the names Keys builds. */
export function categorize(keys: Keys, key: string): string {
  if ([keys.processing, keys.dead, keys.scheduled].includes(key)) return 'queues';
  if (key === keys.leases || key === keys.leaseOwners) return 'leases';
  if (key === keys.workers || key.startsWith(keys.worker(''))) return 'workers';
  if (key.startsWith(keys.job(''))) return 'jobs';
  if (key.startsWith(keys.result(''))) return 'results';
  if (key.startsWith(keys.scheduleLock(''))) return 'schedule_locks';
  if (key.startsWith(keys.schedule(''))) return 'schedules';
  if (key === keys.stats) return 'stats';
  const minuteBase = keys.statsMinute(0).slice(0, -1);
  if (key.startsWith(minuteBase) && /^\d+$/.test(key.slice(minuteBase.length))) return 'stats';
  if (key === keys.signal()) return 'signals';
  const rest = key.slice(keys.prefix.length);
  const routed = /^route:([^:]+):(queue:([a-z]+)|signal)$/.exec(rest);
  if (routed) {
    const [, rk, , priority] = routed as unknown as [string, string, string, string | undefined];
    if (priority !== undefined && isPriority(priority) && isValidRoutingKey(rk)) {
      if (key === keys.queue(priority, rk) || key === keys.legacyDefaultRouteQueue(priority))
        return 'ready_lists';
    } else if (priority === undefined && key === keys.signal(rk)) return 'signals';
  }
  if (PRIORITIES.some((p) => key === keys.queue(p))) return 'ready_lists';
  return 'other';
}

const CATEGORY_ORDER = [
  'jobs',
  'results',
  'ready_lists',
  'queues',
  'leases',
  'workers',
  'stats',
  'signals',
  'schedules',
  'schedule_locks',
  'other',
];

/**
 * One SCAN over `<prefix>*` counting keys by category, keeping a uniform random sample (reservoir) of at
 * most `sampleSize` keys per category for MEMORY USAGE; totals are extrapolated from the sample's mean.
 */
async function scanBananasKeys(
  redis: RedisClient,
  keys: Keys,
  sampleSize: number,
  onProgress?: (scanned: number) => void,
): Promise<DoctorReport['keys']> {
  const counts = new Map<string, number>();
  const samples = new Map<string, string[]>();
  let scanned = 0;
  for await (const batch of scanKeys(redis, `${escapeGlob(keys.prefix)}*`, { count: 1000 })) {
    for (const key of batch) {
      const category = categorize(keys, key);
      const seen = (counts.get(category) ?? 0) + 1;
      counts.set(category, seen);
      const sample = samples.get(category) ?? [];
      samples.set(category, sample);
      if (sample.length < sampleSize) sample.push(key);
      else {
        const slot = Math.floor(Math.random() * seen);
        if (slot < sampleSize) sample[slot] = key;
      }
    }
    scanned += batch.length;
    onProgress?.(scanned);
  }
  let memoryNote = '';
  let memoryAvailable = true;
  const categories: KeyCategory[] = [];
  for (const name of CATEGORY_ORDER) {
    const total = counts.get(name) ?? 0;
    if (total === 0) continue;
    const sample = samples.get(name) ?? [];
    let bytes: number | null = null;
    if (memoryAvailable) {
      try {
        const pipeline = redis.pipeline();
        for (const key of sample) pipeline.call('MEMORY', 'USAGE', key, 'SAMPLES', '5');
        const replies = (await pipeline.exec()) ?? [];
        const sizes = replies
          .map(([err, value]) => (err || value === null ? undefined : Number(value)))
          .filter((v): v is number => v !== undefined && Number.isFinite(v));
        const errors = replies.find(([err]) => err)?.[0];
        if (errors && sizes.length === 0) throw errors;
        if (sizes.length > 0) {
          const mean = sizes.reduce((a, b) => a + b, 0) / sizes.length;
          bytes = Math.round(mean * total);
        }
      } catch (err) {
        memoryAvailable = false;
        memoryNote = `MEMORY USAGE is not available (${errorMessage(err).replace(/\s+/g, ' ')})`;
      }
    }
    categories.push({
      name,
      count: total,
      sampled: memoryAvailable ? sample.length : 0,
      memory_bytes: memoryAvailable ? bytes : null,
      estimated: memoryAvailable && sample.length < total,
    });
  }
  const known = categories.filter((c) => c.memory_bytes !== null);
  const memoryBytes = known.length > 0 ? known.reduce((sum, c) => sum + (c.memory_bytes ?? 0), 0) : null;
  if (memoryNote === '') {
    memoryNote = categories.some((c) => c.estimated)
      ? `estimated: MEMORY USAGE on up to ${sampleSize} random keys per category, mean × count`
      : 'measured: MEMORY USAGE on every key';
  }
  return {
    scanned,
    sample_per_category: sampleSize,
    categories,
    memory_bytes: memoryBytes,
    memory_note: memoryNote,
  };
}

function finding(
  section: string,
  name: string,
  status: Level,
  value: number | string | null,
  message: string,
  advice: string | null = null,
): DoctorFinding {
  return { section, name, status, value, message, advice };
}

function serverFindings(report: DoctorReport): DoctorFinding[] {
  const { server } = report;
  const out: DoctorFinding[] = [];
  const uptime = server.uptime_seconds === null ? '' : `, up ${formatAgo(server.uptime_seconds * 1000)}`;
  out.push(
    finding(
      'server',
      'version',
      'ok',
      server.version,
      `Redis ${server.version ?? '(unknown version)'}, ${server.mode ?? 'unknown'} mode${uptime}`,
    ),
  );
  if (server.role !== null && server.role !== 'master') {
    out.push(
      finding(
        'server',
        'role',
        'warning',
        server.role,
        `connected to a ${server.role}: it is read-only, so workers and commands that change state fail here`,
        'point bananas at the primary',
      ),
    );
  }
  return out;
}

function memoryFindings(report: DoctorReport, info: Record<string, string>): DoctorFinding[] {
  const m = report.memory;
  const out: DoctorFinding[] = [];
  const usage = memoryUsage(info);
  const status = memoryLevel(usage.percent);
  const peak = m.peak_bytes === null ? '' : `, peak ${formatBytes(m.peak_bytes)}`;
  const of =
    usage.limitKind === 'maxmemory'
      ? `of maxmemory ${formatBytes(usage.limit)} (${usage.percent}%)`
      : usage.limitKind === 'host'
        ? `with no maxmemory; the host has ${formatBytes(usage.limit)} (${usage.percent}%)`
        : 'with no maxmemory';
  out.push(
    finding(
      'memory',
      'usage',
      status,
      usage.percent,
      `${formatBytes(usage.used)} used ${of}${peak}`,
      status !== 'ok'
        ? 'raise maxmemory or add memory; completed and failed job documents expire by themselves (24 h / 7 days). Do not delete job keys to make room: pending jobs would be lost'
        : usage.limitKind !== 'maxmemory'
          ? `set maxmemory below the host's memory so Redis refuses writes (noeviction) instead of being killed; warning above ${MEMORY_THRESHOLDS.warning}%, critical above ${MEMORY_THRESHOLDS.critical}%`
          : null,
    ),
  );
  const ratio = m.fragmentation_ratio;
  if (ratio !== null && m.used_bytes !== null && m.rss_bytes !== null) {
    const wasted = m.rss_bytes - m.used_bytes;
    // Small instances always show high ratios (the allocator's baseline dominates): judge by bytes too.
    if (ratio > 1.5 && wasted > 100 * 1024 * 1024) {
      out.push(
        finding(
          'memory',
          'fragmentation',
          'warning',
          ratio,
          `fragmentation ratio ${ratio} (${formatBytes(wasted)} of RSS not holding data)`,
          'enable active defragmentation (CONFIG SET activedefrag yes) or restart a replica and fail over',
        ),
      );
    } else if (ratio < 1 && m.used_bytes > 100 * 1024 * 1024) {
      out.push(
        finding(
          'memory',
          'fragmentation',
          'warning',
          ratio,
          `fragmentation ratio ${ratio}: part of Redis is swapped out, which makes every command slow`,
          'give Redis more memory or lower maxmemory below the host RAM',
        ),
      );
    } else {
      out.push(finding('memory', 'fragmentation', 'ok', ratio, `fragmentation ratio ${ratio}`));
    }
  }
  const policy = m.maxmemory_policy;
  if (policy !== null) {
    out.push(
      policy === 'noeviction'
        ? finding(
            'eviction',
            'maxmemory_policy',
            'ok',
            policy,
            'noeviction: a full Redis refuses writes instead of dropping queued jobs',
          )
        : finding(
            'eviction',
            'maxmemory_policy',
            'warning',
            policy,
            `${policy} evicts keys when memory is full: queued jobs, queue lists and worker heartbeats can disappear without a trace`,
            'CONFIG SET maxmemory-policy noeviction (and set it in redis.conf). The runbook\'s "allkeys-lru" advice is wrong for a queue',
          ),
    );
  }
  if (m.evicted_keys !== null && m.evicted_keys > 0) {
    out.push(
      finding(
        'eviction',
        'evicted_keys',
        'warning',
        m.evicted_keys,
        `${m.evicted_keys.toLocaleString('en-US')} keys were evicted since Redis started: jobs may have been lost`,
        'set maxmemory-policy noeviction; then look for ids whose document is missing (they are dead-lettered as "Job data not found")',
      ),
    );
  }
  return out;
}

function clientFindings(report: DoctorReport): DoctorFinding[] {
  const c = report.clients;
  const out: DoctorFinding[] = [];
  if (c.connected !== null) {
    const percent = c.maxclients ? Math.round((1000 * c.connected) / c.maxclients) / 10 : null;
    const status: Level =
      percent === null ? 'ok' : percent > 95 ? 'critical' : percent > 80 ? 'warning' : 'ok';
    out.push(
      finding(
        'clients',
        'connections',
        status,
        c.connected,
        `${c.connected} client${c.connected === 1 ? '' : 's'} connected${c.maxclients ? ` of maxclients ${c.maxclients} (${percent}%)` : ''}${c.blocked ? `, ${c.blocked} blocked` : ''}`,
        status === 'ok'
          ? null
          : 'look for connection leaks (CLIENT LIST grouped by name: bananas names its connections), lower worker pool sizes, or raise maxclients',
      ),
    );
  }
  if (c.rejected_connections !== null && c.rejected_connections > 0) {
    out.push(
      finding(
        'clients',
        'rejected_connections',
        'warning',
        c.rejected_connections,
        `${c.rejected_connections} connections were rejected (maxclients reached) since Redis started`,
        'raise maxclients or reduce the clients per worker',
      ),
    );
  }
  return out;
}

function persistenceFindings(report: DoctorReport, now: number): DoctorFinding[] {
  const p = report.persistence;
  const out: DoctorFinding[] = [];
  if (p.rdb_last_bgsave_status === 'err') {
    out.push(
      finding(
        'persistence',
        'rdb_last_bgsave',
        'critical',
        'err',
        'the last RDB save failed: with stop-writes-on-bgsave-error (the default) Redis refuses every write',
        'check the Redis log and disk space, then BGSAVE',
      ),
    );
  }
  if (p.aof_last_write_status === 'err') {
    out.push(
      finding(
        'persistence',
        'aof_last_write',
        'critical',
        'err',
        'the last AOF write failed: Redis refuses writes until it succeeds',
        'check the Redis log and disk space',
      ),
    );
  }
  if (p.aof_last_bgrewrite_status === 'err') {
    out.push(
      finding(
        'persistence',
        'aof_rewrite',
        'warning',
        'err',
        'the last AOF rewrite failed: the AOF keeps growing',
        'check the Redis log and disk space, then BGREWRITEAOF',
      ),
    );
  }
  const everysec =
    'appendonly yes with appendfsync everysec (at most about a second of jobs lost on a crash)';
  const noSavePoints = p.rdb_save_points !== null && p.rdb_save_points.trim() === '';
  if (p.aof_enabled === false) {
    const lastSave =
      p.rdb_last_save_at === null
        ? ''
        : `; last RDB save ${formatAgo(now - Date.parse(p.rdb_last_save_at))} ago, ${p.rdb_changes_since_last_save ?? '?'} changes since`;
    out.push(
      finding(
        'persistence',
        'aof',
        'warning',
        'off',
        noSavePoints
          ? 'no persistence at all (no AOF, no RDB save points): a restart loses every queued job'
          : `AOF is off: a crash loses every job enqueued since the last RDB snapshot${lastSave}`,
        `for a job queue use ${everysec}; keep RDB snapshots for backups`,
      ),
    );
  } else if (p.aof_enabled === true) {
    const fsync = p.appendfsync;
    out.push(
      fsync === 'no'
        ? finding(
            'persistence',
            'aof',
            'warning',
            'appendfsync no',
            'AOF is on but appendfsync no leaves flushing to the OS: up to ~30 s of jobs can be lost',
            `use ${everysec}`,
          )
        : finding(
            'persistence',
            'aof',
            'ok',
            fsync === null ? 'on' : `appendfsync ${fsync}`,
            `AOF is on${fsync ? ` (appendfsync ${fsync})` : ''}${p.aof_rewrite_in_progress ? '; a rewrite is in progress' : ''}`,
            fsync === 'always' ? 'everysec is usually enough for a queue and much faster than always' : null,
          ),
    );
  }
  return out;
}

function slowlogFindings(report: DoctorReport, now: number): DoctorFinding[] {
  const s = report.slowlog;
  if (s.length === null) {
    return [finding('slowlog', 'slowlog', 'ok', null, 'SLOWLOG is not available on this server')];
  }
  const recent = s.latest.filter((e) => now - Date.parse(e.at) < 3600_000);
  const keys = s.latest.filter((e) => /^keys\b/i.test(e.command));
  const slow = recent.filter((e) => e.duration_us >= SLOW_COMMAND_US);
  const out: DoctorFinding[] = [];
  if (keys.length > 0) {
    out.push(
      finding(
        'slowlog',
        'keys_command',
        'warning',
        keys.length,
        `the slowlog holds ${keys.length} KEYS command(s): KEYS blocks Redis while it walks every key`,
        'use SCAN (redis-cli --scan --pattern …); bananas never uses KEYS',
      ),
    );
  }
  if (slow.length > 0) {
    const worst = slow.reduce((a, b) => (b.duration_us > a.duration_us ? b : a));
    out.push(
      finding(
        'slowlog',
        'slow_commands',
        'warning',
        slow.length,
        `${slow.length} command(s) took ≥ ${SLOW_COMMAND_US / 1000} ms in the last hour; slowest ${Math.round(worst.duration_us / 1000)} ms: ${worst.command}`,
        'find the client issuing them; long commands block every worker',
      ),
    );
  }
  if (out.length === 0) {
    out.push(
      finding(
        'slowlog',
        'slowlog',
        'ok',
        s.length,
        `${s.length} entries in the slowlog${recent.length > 0 ? `, ${recent.length} of the latest ${s.latest.length} in the last hour` : ''}; none slower than ${SLOW_COMMAND_US / 1000} ms recently`,
      ),
    );
  }
  return out;
}

function keyFindings(report: DoctorReport): DoctorFinding[] {
  const k = report.keys;
  const jobs = k.categories.find((c) => c.name === 'jobs');
  const summary = k.categories.map((c) => `${c.name} ${c.count.toLocaleString('en-US')}`).join(', ');
  const memory = k.memory_bytes === null ? '' : `; about ${formatBytes(k.memory_bytes)} (${k.memory_note})`;
  return [
    finding(
      'keys',
      'bananas_keys',
      'ok',
      k.scanned,
      k.scanned === 0
        ? `no keys under ${report.prefix}`
        : `${k.scanned.toLocaleString('en-US')} keys under ${report.prefix}: ${summary}${memory}`,
      jobs
        ? 'do not delete job keys to free memory (a pending job without its document is lost); completed and failed documents expire by themselves'
        : null,
    ),
  ];
}
