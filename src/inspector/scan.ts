/**
 * `scan corrupt`: a consistency scan of every job document and every list and set that references job
 * ids, and its repairs. Plain data in, plain data out.
 *
 * Memory stays bounded whatever the size of the deployment: no set of ids is ever held in this process.
 * The scan first pages through every list and the scheduled set, recording each id in a temporary hash in
 * Redis (`<prefix>scan:<run>:refs`, id → places; see scan-page-5.lua), then SCANs the job documents and
 * looks each one up in that hash with pipelined HGETs. Findings go to temporary sets under the same run
 * (exact, de-duplicated counts; the repair reads them back), the report keeps a bounded sample of each.
 * The temporary keys have a TTL and are deleted when the run ends. Checking documents against the lists
 * with LPOS instead would cost O(documents × list length): hours for a million jobs and a long backlog.
 * The price is Redis memory for the run (≈ 100 bytes per referenced id), checked against maxmemory first.
 *
 * The scan is not a snapshot: workers keep moving ids while it pages. What a page reports (document
 * missing, lease missing or expired) is true at one instant; findings that movement can fake (an id seen
 * in two places, a document referenced nowhere) are confirmed by a second, atomic look at the end, and
 * documents updated shortly before the scan are never called orphans (their enqueue may be in flight).
 * Every repair is one Lua script that re-checks its precondition when it runs.
 */
import { randomBytes } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { nodeForKey, type RedisClient } from '../core/connection.js';
import {
  decodeJob,
  parseTimestamp,
  quickCheckJob,
  routeOfDocument,
  type DecodeFailureKind,
} from '../core/codec.js';
import { ConflictError, errorMessage, RedisAuthError, UsageError } from '../core/errors.js';
import { sha1Hex } from '../core/hash.js';
import { scanKeys } from '../core/iterate.js';
import { Keys, routeOf } from '../core/keys.js';
import { runScript } from '../core/scripts.js';
import { discoverReadyLists } from './locate.js';
import { returnToQueue } from './processing.js';

/** The scan's fast document check (the codec's, so it cannot drift from decodeJob). */
export { quickCheckJob as quickCheck } from '../core/codec.js';

export const SCAN_CLASSES = [
  'invalid_json',
  'not_a_job',
  'stub',
  'empty_id',
  'missing_document',
  'orphan',
  'expired_lease',
  'missing_lease',
  'duplicate',
] as const;
export type ScanClass = (typeof SCAN_CLASSES)[number];

export const REPAIR_ACTIONS = [
  'remove_reference',
  'dead_letter',
  'return_to_queue',
  'remove_duplicate',
  'requeue',
] as const;
export type RepairAction = (typeof REPAIR_ACTIONS)[number];

export type PlaceKind = 'ready' | 'scheduled' | 'processing' | 'dead';

export const DEFAULT_SAMPLE_SIZE = 20;
/** Documents updated less than this before the scan started are not judged orphans (enqueue in flight). */
export const ORPHAN_GRACE_MS = 5 * 60_000;
const PAGE_SIZE = 1000;
const SCAN_COUNT = 1000;
const CONFIRM_BATCH = 50;
const TEMP_TTL_SECONDS = 15 * 60;
/** Redis memory the run's temporary keys take per referenced id (hash field, value, overhead). */
const TEMP_BYTES_PER_REF = 110;

export interface SampleItem {
  id: string;
  /** Document classes: the job key. */
  key?: string;
  /** What is wrong (parse error, stub text, …). */
  reason?: string;
  /** Every list or set that references the id (as seen by the scan). */
  places?: string[];
  /** Document classes: the document's TTL in ms (null: none). */
  ttl_ms?: number | null;
  /** missing_document: the list or set holding the dangling id. */
  place?: string;
  /** Lease classes. */
  owner?: string | null;
  lease_deadline?: string | null;
  /** Orphans. */
  name?: string;
  status?: string;
  updated_at?: string;
}

export interface ClassReport {
  count: number;
  /** At most `sample_limit` items: the lists can be huge, counts are exact. */
  sample: SampleItem[];
  sample_truncated: boolean;
}

export interface MissingDocumentReport extends ClassReport {
  by_place: Record<PlaceKind, number>;
}

export interface RepairSampleItem {
  id: string;
  /** Where the reference is removed from. */
  from: string[];
  /** Where it goes (null: removed only). */
  to: string | null;
}

export interface RepairActionReport {
  planned: number;
  /** Done (0 in a dry run). */
  applied: number;
  /** Planned, but the state changed before the repair ran: left alone. */
  changed: number;
  sample: RepairSampleItem[];
}

export interface RepairReport {
  dry_run: boolean;
  /** JSON Lines backup of every key the repair changes, written before any change (null in a dry run). */
  backup_file: string | null;
  actions: Record<RepairAction, RepairActionReport>;
  /** Findings the repair leaves as they are, and why. */
  left: Array<{ class: ScanClass; reason: string; count: number }>;
}

export interface ScanReport {
  prefix: string;
  started_at: string;
  duration_ms: number;
  scanned: {
    documents: number;
    ready_lists: number;
    ready_entries: number;
    processing_entries: number;
    dead_entries: number;
    scheduled_entries: number;
  };
  /**
   * Keys the deployment uses that hold another kind of value (a string where a list belongs…). The scan
   * skips them and the repair never touches them: what they hold is for a person to look at.
   */
  wrong_type: WrongTypeKey[];
  /** Sum of the class counts (an id can be in more than one class) and of the wrong-type keys. */
  problems: number;
  clean: boolean;
  sample_limit: number;
  classes: Record<Exclude<ScanClass, 'missing_document'>, ClassReport> & {
    missing_document: MissingDocumentReport;
  };
  repair?: RepairReport;
}

export interface WrongTypeKey {
  key: string;
  /** What Redis says it holds (TYPE). */
  type: string;
  /** What bananas keeps there. */
  expected: 'list' | 'zset' | 'hash';
}

export interface RepairPlanSummary {
  actions: Record<RepairAction, number>;
  total: number;
}

export interface ScanOptions {
  sampleSize?: number;
  repair?: {
    dryRun: boolean;
    /** Backup file to create (default: bananas-scan-backup-<time>.jsonl in the working directory). */
    backupFile?: string;
    /** Called once the plan is known and before anything changes; throw to cancel. */
    confirm?: (plan: RepairPlanSummary) => Promise<void>;
  };
  onProgress?: (phase: string, done: number, total?: number) => void;
  /** Clock (tests). */
  now?: () => number;
}

interface Place {
  code: number;
  key: string;
  kind: PlaceKind;
  type: 'list' | 'zset';
}

type Temp =
  | 'refs'
  | 'planned'
  | 'dups'
  | 'plan'
  | 'dangling'
  | 'expired'
  | 'unleased'
  | 'orphans'
  | 'invalid_json'
  | 'not_a_job'
  | 'stub'
  | 'empty_id';
const TEMPS: Temp[] = [
  'refs',
  'planned',
  'dups',
  'plan',
  'dangling',
  'expired',
  'unleased',
  'orphans',
  'invalid_json',
  'not_a_job',
  'stub',
  'empty_id',
];

type PlanEntry =
  | { a: 'remove_reference'; id: string; key: string; kind: 'list' | 'zset' | 'processing' }
  | {
      a: 'dead_letter';
      id: string;
      sha: string;
      lists: string[];
      scheduled: boolean;
      /** '-' leave processing alone; '' no lease expected; otherwise the expected deadline. */
      lease: string;
    }
  | { a: 'return_to_queue'; id: string; deadline: string; owner: string; to: string }
  | {
      a: 'remove_duplicate';
      id: string;
      keep: string;
      keepKind: 'list' | 'zset';
      lists: string[];
      scheduled: boolean;
    }
  | { a: 'requeue'; id: string; sha: string; to: string; score: string; signal: string };

const DECODE_CLASS: Record<DecodeFailureKind, ScanClass> = {
  'invalid-json': 'invalid_json',
  'not-a-job': 'not_a_job',
  stub: 'stub',
};

/** Runs the scan (and, when asked, the repair). */
export async function scanCorrupt(
  redis: RedisClient,
  prefix: string,
  options: ScanOptions = {},
): Promise<ScanReport> {
  const run = new ScanRun(redis, new Keys(prefix), options);
  try {
    return await run.execute();
  } finally {
    await run.cleanup();
  }
}

class ScanRun {
  private readonly runId = randomBytes(6).toString('hex');
  private readonly sampleSize: number;
  private readonly now: () => number;
  private readonly startedAt: number;
  private places: Place[] = [];
  private wrongType: WrongTypeKey[] = [];
  private readonly classes: ScanReport['classes'];
  private readonly scanned: ScanReport['scanned'] = {
    documents: 0,
    ready_lists: 0,
    ready_entries: 0,
    processing_entries: 0,
    dead_entries: 0,
    scheduled_entries: 0,
  };
  private lastTouch = 0;
  private usedTemp = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly options: ScanOptions,
  ) {
    this.sampleSize = options.sampleSize ?? DEFAULT_SAMPLE_SIZE;
    if (!Number.isSafeInteger(this.sampleSize) || this.sampleSize < 0) {
      throw new UsageError(`invalid sample size ${this.sampleSize}`);
    }
    this.now = options.now ?? Date.now;
    this.startedAt = this.now();
    const empty = (): ClassReport => ({ count: 0, sample: [], sample_truncated: false });
    this.classes = {
      invalid_json: empty(),
      not_a_job: empty(),
      stub: empty(),
      empty_id: empty(),
      missing_document: { ...empty(), by_place: { ready: 0, scheduled: 0, processing: 0, dead: 0 } },
      orphan: empty(),
      expired_lease: empty(),
      missing_lease: empty(),
      duplicate: empty(),
    };
  }

  private temp(part: Temp): string {
    return this.keys.scanTemp(this.runId, part);
  }

  private progress(phase: string, done: number, total?: number): void {
    this.options.onProgress?.(phase, done, total);
  }

  /** Keeps the temporary keys alive during long phases (they expire on their own if the run dies). */
  private async touchTemp(force = false): Promise<void> {
    if (!force && Date.now() - this.lastTouch < 5_000) return;
    this.lastTouch = Date.now();
    const pipeline = this.redis.pipeline();
    for (const part of TEMPS) pipeline.expire(this.temp(part), TEMP_TTL_SECONDS);
    await pipeline.exec();
  }

  async cleanup(): Promise<void> {
    if (!this.usedTemp) return;
    try {
      await this.redis.unlink(...TEMPS.map((part) => this.temp(part)));
    } catch {
      // Redis went away: the keys expire on their own (TEMP_TTL_SECONDS).
    }
  }

  private addSample(cls: ScanClass, item: SampleItem): void {
    const report = this.classes[cls];
    if (report.sample.length >= this.sampleSize) return;
    // SSCAN may return a member twice: keep the sample free of repeats.
    if (report.sample.some((s) => s.id === item.id && s.place === item.place)) return;
    report.sample.push(item);
  }

  async execute(): Promise<ScanReport> {
    await this.discoverPlaces();
    await this.checkMemoryHeadroom();
    this.usedTemp = true;
    try {
      await this.pagePlaces();
    } catch (err) {
      // A read-only ACL user: the first write (the index script) is refused before anything changed.
      if (/^NOPERM\b/.test(errorMessage(err))) {
        throw new RedisAuthError(
          `scan corrupt keeps a temporary index in Redis (${this.keys.prefix}scan:* keys, written by scripts) ` +
            `and needs a user allowed to write them; this one is not (${errorMessage(err)}); nothing was changed`,
          { cause: err },
        );
      }
      throw err;
    }
    await this.scanDocuments();
    await this.confirmDuplicates();
    await this.confirmOrphans();
    for (const cls of SCAN_CLASSES) {
      const report = this.classes[cls];
      report.sample_truncated = report.count > report.sample.length;
    }
    const problems =
      SCAN_CLASSES.reduce((sum, cls) => sum + this.classes[cls].count, 0) + this.wrongType.length;
    const report: ScanReport = {
      prefix: this.keys.prefix,
      started_at: new Date(this.startedAt).toISOString(),
      duration_ms: 0,
      scanned: this.scanned,
      wrong_type: this.wrongType,
      problems,
      clean: problems === 0,
      sample_limit: this.sampleSize,
      classes: this.classes,
    };
    if (this.options.repair) report.repair = await this.repair(this.options.repair);
    report.duration_ms = this.now() - this.startedAt;
    return report;
  }

  // ---------------------------------------------------------------------------------------------
  // Phase 1: every list and the scheduled set, paged, into the reference hash
  // ---------------------------------------------------------------------------------------------

  private async discoverPlaces(): Promise<void> {
    this.progress('Finding queues', 0);
    const ready = await discoverReadyLists(this.redis, this.keys);
    const { keys } = this;
    const fixed: Array<Omit<Place, 'code'>> = [
      { key: keys.scheduled, kind: 'scheduled', type: 'zset' },
      { key: keys.processing, kind: 'processing', type: 'list' },
      { key: keys.dead, kind: 'dead', type: 'list' },
    ];
    const all = [
      ...fixed,
      ...ready.map((r) => ({ key: r.key, kind: 'ready' as const, type: 'list' as const })),
    ];
    // A key holding another kind of value cannot be paged (every read of it would fail with WRONGTYPE):
    // report it and leave it out. Ready lists of other routes are found by SCAN with TYPE list already.
    const expected: Array<{ key: string; type: WrongTypeKey['expected'] }> = [
      ...all.map((p) => ({ key: p.key, type: p.type })),
      { key: keys.leases, type: 'zset' },
      { key: keys.leaseOwners, type: 'hash' },
    ];
    const pipeline = this.redis.pipeline();
    for (const e of expected) pipeline.type(e.key);
    const types = (await pipeline.exec()) ?? [];
    for (const [err] of types) if (err) throw err;
    const wrong = new Set<string>();
    expected.forEach((e, i) => {
      const type = String(types[i]?.[1]);
      if (type !== 'none' && type !== e.type) {
        this.wrongType.push({ key: e.key, type, expected: e.type });
        wrong.add(e.key);
      }
    });
    // The processing list is checked against the lease keys: without them it cannot be judged.
    if (wrong.has(keys.leases) || wrong.has(keys.leaseOwners)) wrong.add(keys.processing);
    this.places = all.filter((p) => !wrong.has(p.key)).map((p, code) => ({ ...p, code }));
    this.scanned.ready_lists = ready.filter((r) => !wrong.has(r.key)).length;
  }

  private async placeLengths(): Promise<number[]> {
    const pipeline = this.redis.pipeline();
    for (const place of this.places) {
      if (place.type === 'zset') pipeline.zcard(place.key);
      else pipeline.llen(place.key);
    }
    const replies = (await pipeline.exec()) ?? [];
    return this.places.map((_, i) => Number(replies[i]?.[1] ?? 0));
  }

  /** Refuses to run when the temporary index could push Redis over maxmemory (evicting or refusing writes). */
  private async checkMemoryHeadroom(): Promise<void> {
    const lengths = await this.placeLengths();
    const refs = lengths.reduce((a, b) => a + b, 0);
    // In Redis Cluster the temporary keys go to the master holding the prefix's slot.
    const info = await (await nodeForKey(this.redis, this.keys.job(''))).info('memory');
    const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? 0);
    const used = field('used_memory');
    const max = field('maxmemory');
    const needed = refs * TEMP_BYTES_PER_REF;
    if (max > 0 && used + needed > max * 0.9) {
      const mb = (bytes: number) => `${Math.ceil(bytes / 2 ** 20)} MB`;
      throw new ConflictError(
        `not enough Redis memory for the scan: it needs about ${mb(needed)} of temporary keys for ${refs} queued ids, ` +
          `but Redis uses ${mb(used)} of its maxmemory ${mb(max)}; nothing was changed`,
      );
    }
  }

  /**
   * Reads every place in pages of PAGE_SIZE from its consumer end, up to the length it had when this pass
   * started: `readPage` handles one page and returns how many entries it read (a short page ends the
   * place). `more` (checked before each page) can end a place early; `afterPlace` runs after each place.
   */
  private async pageEveryPlace(
    phase: string,
    readPage: (place: Place, offset: number) => Promise<number>,
    options: { more?: () => boolean; afterPlace?: () => Promise<void> } = {},
  ): Promise<void> {
    const lengths = await this.placeLengths();
    const total = lengths.reduce((a, b) => a + b, 0);
    let done = 0;
    this.progress(phase, 0, total);
    for (const place of this.places) {
      const length = lengths[place.code] ?? 0;
      let offset = 0;
      while ((options.more?.() ?? true) && offset < length) {
        const count = await readPage(place, offset);
        offset += count;
        done += count;
        this.progress(phase, done, total);
        if (count < PAGE_SIZE) break;
      }
      await options.afterPlace?.();
    }
  }

  private async pagePlaces(): Promise<void> {
    await this.pageEveryPlace('Reading queues', async (place, offset) => {
      const [count, missing, leaseProblems] = await runScript<[number, string[], string[]]>(
        this.redis,
        'scan-page',
        [place.key, this.temp('refs'), this.temp('dups'), this.keys.leases, this.keys.leaseOwners],
        [
          this.keys.job(''),
          place.type,
          offset,
          PAGE_SIZE,
          place.code,
          place.kind === 'processing' ? '1' : '0',
          this.now(),
          TEMP_TTL_SECONDS,
        ],
      );
      this.countEntries(place, count);
      if (missing.length > 0 || leaseProblems.length > 0)
        await this.recordPageFindings(place, missing, leaseProblems);
      return count;
    });
  }

  private countEntries(place: Place, count: number): void {
    const field = {
      ready: 'ready_entries',
      scheduled: 'scheduled_entries',
      processing: 'processing_entries',
      dead: 'dead_entries',
    } as const;
    this.scanned[field[place.kind]] += count;
  }

  private async recordPageFindings(place: Place, missing: string[], leaseProblems: string[]): Promise<void> {
    const pipeline = this.redis.pipeline();
    for (const id of missing) pipeline.sadd(this.temp('dangling'), `${place.code}:${id}`);
    const leases: Array<{ id: string; deadline: string; owner: string }> = [];
    for (let i = 0; i < leaseProblems.length; i += 3) {
      const lease = { id: leaseProblems[i]!, deadline: leaseProblems[i + 1]!, owner: leaseProblems[i + 2]! };
      leases.push(lease);
      pipeline.sadd(this.temp(lease.deadline === '' ? 'unleased' : 'expired'), lease.id);
    }
    // Every temporary key gets its TTL in the step that creates it: a run that dies leaves nothing for good.
    for (const part of ['dangling', 'unleased', 'expired'] as const)
      pipeline.expire(this.temp(part), TEMP_TTL_SECONDS);
    const replies = (await pipeline.exec()) ?? [];
    missing.forEach((id, i) => {
      if (replies[i]?.[1] !== 1) return;
      const report = this.classes.missing_document;
      report.count++;
      report.by_place[place.kind]++;
      this.addSample('missing_document', { id, place: place.key });
    });
    leases.forEach((lease, i) => {
      if (replies[missing.length + i]?.[1] !== 1) return;
      const cls = lease.deadline === '' ? 'missing_lease' : 'expired_lease';
      this.classes[cls].count++;
      this.addSample(cls, {
        id: lease.id,
        owner: lease.owner === '' ? null : lease.owner,
        lease_deadline: lease.deadline === '' ? null : new Date(Number(lease.deadline)).toISOString(),
      });
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Phase 2: every job document (SCAN), classified, looked up in the reference hash
  // ---------------------------------------------------------------------------------------------

  private async scanDocuments(): Promise<void> {
    const jobPrefix = this.keys.job('');
    const pattern = this.keys.jobPattern();
    const refs = this.temp('refs');
    type Batch = {
      keys: string[];
      values: Array<Buffer | null>;
      ttls: number[];
      codes: Array<string | null>;
    };
    // Per SCAN step, three commands for the whole batch (MGET, HMGET of the reference hash, PTTLs in one
    // script) instead of three per key: both Redis and the client do a fraction of the work.
    const fetch = async (keys: string[]): Promise<Batch> => {
      const ids = keys.map((key) => key.slice(jobPrefix.length));
      const [values, codes, ttls] = await Promise.all([
        this.redis.mgetBuffer(...keys),
        this.redis.hmget(refs, ...ids),
        runScript<number[]>(this.redis, 'scan-ttls', [keys[0] as string], keys),
      ]);
      return { keys, values, ttls, codes };
    };
    // A producer runs SCAN ahead of the decoding, up to DEPTH batches, so Redis always has work queued
    // while this process decodes.
    const DEPTH = 4;
    const ready: Array<Promise<Batch>> = [];
    let scanning = true;
    let wake: (() => void) | undefined;
    let scanError: unknown;
    const producer = (async () => {
      try {
        for await (const keys of scanKeys(this.redis, pattern, { count: SCAN_COUNT })) {
          while (ready.length >= DEPTH) await new Promise<void>((resolve) => (wake = resolve));
          const batch = fetch(keys);
          batch.catch(() => undefined); // awaited by the consumer; avoid an unhandled rejection meanwhile
          ready.push(batch);
          wake?.();
        }
      } catch (err) {
        scanError = err;
      } finally {
        scanning = false;
        wake?.();
      }
    })();
    this.progress('Scanning documents', 0);
    for (;;) {
      if (ready.length === 0) {
        if (!scanning) break;
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      const batch = await ready.shift()!;
      wake?.();
      await this.classifyDocuments(batch, jobPrefix);
      this.progress('Scanning documents', this.scanned.documents);
      await this.touchTemp();
    }
    await producer;
    if (scanError) throw scanError;
  }

  private async typesOf(keys: string[]): Promise<Map<string, string>> {
    const pipeline = this.redis.pipeline();
    for (const key of keys) pipeline.type(key);
    const replies = (await pipeline.exec()) ?? [];
    return new Map(keys.map((key, i) => [key, String(replies[i]?.[1] ?? 'none')]));
  }

  private placesOf(codes: string | null): Place[] {
    if (codes === null || codes === '') return [];
    return codes.split(',').map((code) => this.places[Number(code)]!);
  }

  private async classifyDocuments(
    batch: { keys: string[]; values: Array<Buffer | null>; ttls: number[]; codes: Array<string | null> },
    jobPrefix: string,
  ): Promise<void> {
    const { keys, values, ttls, codes: refCodes } = batch;
    // MGET answers nil for a key that is not a string: tell those from keys deleted since SCAN.
    const nils = keys.filter((_, i) => values[i] === null);
    const types = nils.length > 0 ? await this.typesOf(nils) : new Map<string, string>();
    const findings: Array<{ cls: ScanClass; item: SampleItem }> = [];
    const orphans: string[] = [];
    const graceEnd = this.startedAt - ORPHAN_GRACE_MS;
    keys.forEach((key, i) => {
      const value = values[i] ?? null;
      const ttl = ttls[i] ?? -2;
      const codes = refCodes[i] ?? null;
      const type = value === null ? (types.get(key) ?? 'none') : 'string';
      if (type === 'none') return; // deleted since SCAN returned it
      this.scanned.documents++;
      const id = key.slice(jobPrefix.length);
      const referenced = codes !== null;
      const item = (): SampleItem => ({
        id,
        key,
        places: [...new Set(this.placesOf(codes).map((p) => p.key))],
        ttl_ms: ttl >= 0 ? ttl : null,
      });
      if (value === null) {
        const cls = id === '' ? 'empty_id' : 'not_a_job';
        findings.push({ cls, item: { ...item(), reason: `the key is a ${type}, not a string document` } });
        return;
      }
      const quick = quickCheckJob(value);
      if (id === '') {
        const decoded = quick.ok ? undefined : decodeJob(value);
        const reason =
          decoded && !decoded.ok
            ? `key ${key} (empty id); ${decoded.reason}`
            : `key ${key}: the job has an empty id (the original cron scheduler wrote it)`;
        findings.push({ cls: 'empty_id', item: { ...item(), reason } });
        return;
      }
      let updatedAt = quick.updatedAt;
      if (!quick.ok) {
        // decodeJob runs the same checks and says why the document is not a job.
        const decoded = decodeJob(value);
        if (!decoded.ok) {
          findings.push({ cls: DECODE_CLASS[decoded.kind], item: { ...item(), reason: decoded.reason } });
          return;
        }
        updatedAt = decoded.job.updatedAt;
      }
      if (referenced || ttl !== -1) return;
      const updated = parseTimestamp(updatedAt)?.getTime();
      if (updated !== undefined && updated > graceEnd) return;
      orphans.push(id);
    });
    if (findings.length === 0 && orphans.length === 0) return;
    const pipeline = this.redis.pipeline();
    for (const { cls, item } of findings) pipeline.sadd(this.temp(cls as Temp), item.id);
    if (orphans.length > 0) pipeline.sadd(this.temp('orphans'), ...orphans);
    for (const part of new Set([...findings.map((f) => f.cls as Temp), 'orphans' as const])) {
      pipeline.expire(this.temp(part), TEMP_TTL_SECONDS);
    }
    const added = (await pipeline.exec()) ?? [];
    findings.forEach(({ cls, item }, i) => {
      if (added[i]?.[1] !== 1) return; // SCAN returned the key twice
      this.classes[cls].count++;
      this.addSample(cls, item);
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Phase 3: confirm what movement can fake
  // ---------------------------------------------------------------------------------------------

  /** Where an id is now: occurrences per list (capped at 2), whether it is scheduled, its document's PTTL. */
  private async locateNow(
    id: string,
    lists: string[],
  ): Promise<{ counts: Map<string, number>; scheduled: boolean; pttl: number }> {
    const [scheduled, counts, pttl] = await runScript<[number, number[], number]>(
      this.redis,
      'scan-confirm',
      [this.keys.scheduled],
      [this.keys.job(id), id, ...lists],
    );
    return {
      counts: new Map(lists.map((key, i) => [key, counts[i] ?? 0])),
      scheduled: scheduled === 1,
      pttl,
    };
  }

  private async *members(part: Temp): AsyncGenerator<string[]> {
    let cursor = '0';
    do {
      const [next, batch] = await this.redis.sscan(this.temp(part), cursor, 'COUNT', 500);
      cursor = next;
      if (batch.length > 0) yield batch;
    } while (cursor !== '0');
  }

  private async refsOf(ids: string[]): Promise<Place[][]> {
    if (ids.length === 0) return [];
    const codes = await this.redis.hmget(this.temp('refs'), ...ids);
    return codes.map((c) => this.placesOf(c));
  }

  private async confirmDuplicates(): Promise<void> {
    const total = await this.redis.scard(this.temp('dups'));
    if (total === 0) return;
    let done = 0;
    this.progress('Confirming duplicates', 0, total);
    for await (const batch of this.members('dups')) {
      for (let i = 0; i < batch.length; i += CONFIRM_BATCH) {
        const ids = batch.slice(i, i + CONFIRM_BATCH);
        const placesOf = await this.refsOf(ids);
        const results = await Promise.all(
          ids.map((id, j) => {
            const lists = [...new Set(placesOf[j]!.filter((p) => p.type === 'list').map((p) => p.key))];
            return this.locateNow(id, lists);
          }),
        );
        const gone: string[] = [];
        ids.forEach((id, j) => {
          const now = results[j]!;
          const occurrences = [...now.counts.values()].reduce((a, b) => a + b, 0) + (now.scheduled ? 1 : 0);
          if (occurrences < 2) {
            gone.push(id);
            return;
          }
          const places = [...now.counts.entries()].flatMap(([key, n]) => Array<string>(n).fill(key));
          if (now.scheduled) places.push(this.keys.scheduled);
          this.addSample('duplicate', { id, places });
        });
        if (gone.length > 0) await this.redis.srem(this.temp('dups'), ...gone);
        done += ids.length;
        this.progress('Confirming duplicates', done, total);
      }
      await this.touchTemp();
    }
    // Counted once the set holds only the confirmed ids (SSCAN may return a member twice).
    this.classes.duplicate.count = await this.redis.scard(this.temp('dups'));
  }

  private allLists(): string[] {
    return this.places.filter((p) => p.type === 'list').map((p) => p.key);
  }

  /**
   * Orphan candidates were referenced nowhere in the first pass; a job that moved between two lists while
   * they were paged looks the same. A second pass over every list and the scheduled set takes out every
   * candidate it sees (O(entries), unlike an LPOS per candidate), then documents that gained a TTL
   * meanwhile (completed) are dropped. The repair re-checks each one atomically before it touches it.
   */
  private async confirmOrphans(): Promise<void> {
    const candidates = this.temp('orphans');
    let left = await this.redis.scard(candidates);
    if (left === 0) return;
    await this.pageEveryPlace(
      'Confirming orphans',
      async (place, offset) => {
        const [count, remaining] = await runScript<[number, number]>(
          this.redis,
          'scan-unmark',
          [place.key, candidates],
          [place.type, offset, PAGE_SIZE],
        );
        left = remaining;
        return count;
      },
      { more: () => left > 0, afterPlace: () => this.touchTemp() },
    );
    for await (const batch of this.members('orphans')) {
      const pipeline = this.redis.pipeline();
      for (const id of batch) pipeline.pttl(this.keys.job(id)).get(this.keys.job(id));
      const replies = (await pipeline.exec()) ?? [];
      const gone: string[] = [];
      batch.forEach((id, j) => {
        if (replies[2 * j]?.[1] !== -1) {
          gone.push(id);
          return;
        }
        const text = replies[2 * j + 1]?.[1] as string | null;
        const decoded = text ? decodeJob(text) : undefined;
        const job = decoded?.ok ? decoded.job : undefined;
        this.addSample('orphan', {
          id,
          key: this.keys.job(id),
          ...(job ? { name: job.name, status: job.status, updated_at: job.updatedAt } : {}),
        });
      });
      if (gone.length > 0) await this.redis.srem(candidates, ...gone);
    }
    this.classes.orphan.count = await this.redis.scard(candidates);
  }

  // ---------------------------------------------------------------------------------------------
  // Phase 4: repair
  // ---------------------------------------------------------------------------------------------

  private async repair(options: NonNullable<ScanOptions['repair']>): Promise<RepairReport> {
    const plan = new RepairPlanner(
      this.redis,
      this.keys,
      this.places,
      this.temp('plan'),
      this.temp('planned'),
      this.sampleSize,
      this.now,
    );
    await plan.build({
      dangling: this.members('dangling'),
      corrupt: (['invalid_json', 'not_a_job', 'stub'] as const).map((cls) => ({
        cls,
        ids: this.members(cls),
      })),
      expired: this.members('expired'),
      duplicates: this.members('dups'),
      orphans: this.members('orphans'),
      refsOf: (ids) => this.refsOf(ids),
      locateNow: (id, lists) => this.locateNow(id, lists),
      allLists: this.allLists(),
      counts: { missing_lease: this.classes.missing_lease.count, empty_id: this.classes.empty_id.count },
      progress: (done) => this.progress('Planning repairs', done),
    });
    await this.touchTemp(true);
    const report: RepairReport = {
      dry_run: options.dryRun,
      backup_file: null,
      actions: plan.actions,
      left: plan.leftReport(),
    };
    const total = REPAIR_ACTIONS.reduce((sum, a) => sum + plan.actions[a].planned, 0);
    if (options.dryRun || total === 0) return report;
    const summary: RepairPlanSummary = {
      actions: Object.fromEntries(REPAIR_ACTIONS.map((a) => [a, plan.actions[a].planned])) as Record<
        RepairAction,
        number
      >,
      total,
    };
    await options.confirm?.(summary);
    const file = options.backupFile ?? defaultBackupFile(new Date(this.now()));
    await this.touchTemp(true);
    await writeBackup(this.redis, file, plan.touchedKeys(), (done) => this.progress('Writing backup', done));
    report.backup_file = file;
    await plan.apply(this.allLists(), (done) => {
      this.progress('Repairing', done, total);
      return this.touchTemp();
    });
    return report;
  }
}

function defaultBackupFile(now: Date): string {
  return `bananas-scan-backup-${now.toISOString().replace(/[:.]/g, '-')}.jsonl`;
}

interface PlanSources {
  dangling: AsyncGenerator<string[]>;
  corrupt: Array<{ cls: ScanClass; ids: AsyncGenerator<string[]> }>;
  expired: AsyncGenerator<string[]>;
  duplicates: AsyncGenerator<string[]>;
  orphans: AsyncGenerator<string[]>;
  refsOf: (ids: string[]) => Promise<Place[][]>;
  locateNow: (
    id: string,
    lists: string[],
  ) => Promise<{ counts: Map<string, number>; scheduled: boolean; pttl: number }>;
  allLists: string[];
  counts: { missing_lease: number; empty_id: number };
  progress: (done: number) => void;
}

/**
 * Decides, from the current state, what the repair does for each finding; the plan is kept in a
 * temporary Redis list (JSON entries), so a huge plan does not sit in this process.
 */
class RepairPlanner {
  readonly actions: Record<RepairAction, RepairActionReport>;
  private readonly left = new Map<string, { class: ScanClass; reason: string; count: number }>();
  private readonly touched = new Set<string>();
  private buffer: string[] = [];
  private planned = 0;
  /** Planned actions that take an unleased id out of processing (dead-letter, dangling reference). */
  private unleasedHandled = 0;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly places: Place[],
    private readonly planKey: string,
    private readonly plannedKey: string,
    private readonly sampleSize: number,
    private readonly now: () => number,
  ) {
    this.actions = Object.fromEntries(
      REPAIR_ACTIONS.map((a) => [a, { planned: 0, applied: 0, changed: 0, sample: [] }]),
    ) as unknown as Record<RepairAction, RepairActionReport>;
  }

  private leave(cls: ScanClass, reason: string, count = 1): void {
    if (count <= 0) return;
    const key = `${cls}\u0000${reason}`;
    const entry = this.left.get(key) ?? { class: cls, reason, count: 0 };
    entry.count += count;
    this.left.set(key, entry);
  }

  leftReport(): RepairReport['left'] {
    return [...this.left.values()];
  }

  touchedKeys(): string[] {
    return [...this.touched].sort();
  }

  /** The ids of a batch not planned yet (SSCAN may return a member twice; a plan entry must not repeat). */
  private async fresh(action: RepairAction, ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.sadd(this.plannedKey, `${action}:${id}`);
    pipeline.expire(this.plannedKey, TEMP_TTL_SECONDS);
    const replies = (await pipeline.exec()) ?? [];
    return new Set(ids.filter((_, i) => replies[i]?.[1] === 1));
  }

  private async add(entry: PlanEntry, sample: RepairSampleItem, touches: string[]): Promise<void> {
    const report = this.actions[entry.a];
    report.planned++;
    if (report.sample.length < this.sampleSize) report.sample.push(sample);
    for (const key of touches) this.touched.add(key);
    this.buffer.push(JSON.stringify(entry));
    this.planned++;
    if (this.buffer.length >= 500) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.buffer.length === 0) return;
    await this.redis
      .multi()
      .rpush(this.planKey, ...this.buffer)
      .expire(this.planKey, TEMP_TTL_SECONDS)
      .exec();
    this.buffer = [];
  }

  async build(sources: PlanSources): Promise<void> {
    const { keys } = this;
    const processingKeys = [keys.processing, keys.leases, keys.leaseOwners];

    // Dangling references (no document): removed, except under a live lease (its worker writes the document
    // back when it settles the job).
    for await (const raw of sources.dangling) {
      const batch = [...(await this.fresh('remove_reference', raw))];
      const items = batch.map((member) => {
        const colon = member.indexOf(':');
        return { place: this.places[Number(member.slice(0, colon))]!, id: member.slice(colon + 1) };
      });
      const pipeline = this.redis.pipeline();
      for (const { id } of items) pipeline.exists(keys.job(id)).zscore(keys.leases, id);
      const replies = (await pipeline.exec()) ?? [];
      for (const [i, { place, id }] of items.entries()) {
        if (replies[2 * i]?.[1] === 1) continue; // the document exists again
        const lease = replies[2 * i + 1]?.[1] as string | null;
        if (place.kind === 'processing' && lease !== null) {
          // An expired lease is returned to its queue below (where the next dequeue dead-letters it).
          if (Number(lease) <= this.now()) continue;
          this.leave('missing_document', 'in processing under a live lease: its worker settles it');
          continue;
        }
        const kind = place.kind === 'processing' ? 'processing' : place.type;
        if (kind === 'processing') this.unleasedHandled++;
        await this.add(
          { a: 'remove_reference', id, key: place.key, kind },
          { id, from: [place.key], to: null },
          [place.key],
        );
      }
      sources.progress(this.planned);
    }

    // Corrupt documents a worker would take: to the dead-letter queue, document untouched.
    for (const { cls, ids } of sources.corrupt) {
      for await (const raw of ids) {
        const batch = [...(await this.fresh('dead_letter', raw))];
        const placesOf = await sources.refsOf(batch);
        const pipeline = this.redis.pipeline();
        for (const id of batch) pipeline.getBuffer(keys.job(id)).zscore(keys.leases, id);
        const replies = (await pipeline.exec()) ?? [];
        for (const [i, id] of batch.entries()) {
          const [err, doc] = replies[2 * i] ?? [];
          const deadline = (replies[2 * i + 1]?.[1] as string | null) ?? '';
          if (err) {
            this.leave(cls, 'the key is not a string: inspect it by hand');
            continue;
          }
          if (!doc || decodeJob(doc as Buffer).ok) continue; // deleted or fixed since the scan
          const places = placesOf[i]!;
          const lists = [...new Set(places.filter((p) => p.kind === 'ready').map((p) => p.key))];
          const scheduled = places.some((p) => p.kind === 'scheduled');
          const inProcessing = places.some((p) => p.kind === 'processing');
          const leaseLive = deadline !== '' && Number(deadline) > this.now();
          if (inProcessing && leaseLive)
            this.leave(cls, 'in processing under a live lease: its worker dead-letters it');
          const lease = inProcessing && !leaseLive ? deadline : '-';
          if (lists.length === 0 && !scheduled && lease === '-') {
            if (!inProcessing) {
              this.leave(
                cls,
                places.some((p) => p.kind === 'dead')
                  ? 'already in the dead-letter queue'
                  : 'referenced nowhere: no worker will take it (inspect with job get)',
              );
            }
            continue;
          }
          const from = [
            ...lists,
            ...(scheduled ? [keys.scheduled] : []),
            ...(lease !== '-' ? [keys.processing] : []),
          ];
          if (lease === '') this.unleasedHandled++;
          await this.add(
            { a: 'dead_letter', id, sha: sha1Hex(doc as Buffer), lists, scheduled, lease },
            { id, from, to: keys.dead },
            [...from, keys.dead, ...(lease !== '-' ? processingKeys : [])],
          );
        }
        sources.progress(this.planned);
      }
    }

    // Expired leases: back to the head of their queue, as the workers' lease recovery does.
    for await (const raw of sources.expired) {
      const batch = [...(await this.fresh('return_to_queue', raw))];
      const pipeline = this.redis.pipeline();
      for (const id of batch)
        pipeline.zscore(keys.leases, id).hget(keys.leaseOwners, id).getBuffer(keys.job(id));
      const replies = (await pipeline.exec()) ?? [];
      for (const [i, id] of batch.entries()) {
        const deadline = (replies[3 * i]?.[1] as string | null) ?? '';
        const owner = (replies[3 * i + 1]?.[1] as string | null) ?? '';
        const doc = replies[3 * i + 2]?.[0]
          ? 'wrong_type'
          : ((replies[3 * i + 2]?.[1] as Buffer | null) ?? null);
        if (deadline === '' || Number(deadline) > this.now()) continue; // settled or renewed since the scan
        if (doc instanceof Buffer && !decodeJob(doc).ok) continue; // corrupt: dead-lettered above instead
        const { priority, route } = routeOfDocument(doc instanceof Buffer ? doc : null);
        const to = keys.queue(priority, route);
        await this.add(
          { a: 'return_to_queue', id, deadline, owner, to },
          { id, from: [keys.processing], to },
          [...processingKeys, to, keys.signal(route)],
        );
      }
      sources.progress(this.planned);
    }
    // Unleased processing entries are only reported, except those another repair takes out of processing.
    this.leave(
      'missing_lease',
      'ids without a lease are only reported: use processing recover --older-than <age> --include-unleased',
      sources.counts.missing_lease - this.unleasedHandled,
    );
    this.leave(
      'empty_id',
      'a runnable job the original cron scheduler wrote under an empty id; bananas workers run it',
      sources.counts.empty_id,
    );

    // Duplicates: keep the most advanced place (processing, then a ready list, then the scheduled set).
    for await (const raw of sources.duplicates) {
      const batch = [...(await this.fresh('remove_duplicate', raw))];
      const placesOf = await sources.refsOf(batch);
      for (const [i, id] of batch.entries()) {
        const lists = [...new Set(placesOf[i]!.filter((p) => p.type === 'list').map((p) => p.key))];
        const now = await sources.locateNow(id, lists);
        const present = lists.filter((key) => (now.counts.get(key) ?? 0) > 0);
        const readyHere = present.filter((key) => key !== keys.processing && key !== keys.dead);
        let keep: string | undefined;
        let keepKind: 'list' | 'zset' = 'list';
        if (present.includes(keys.processing)) keep = keys.processing;
        else if (readyHere.length > 0) keep = readyHere[0];
        else if (now.scheduled) {
          keep = keys.scheduled;
          keepKind = 'zset';
        }
        const remove = readyHere.filter((key) => key !== keep);
        const fromScheduled = now.scheduled && keep !== keys.scheduled;
        const extraInKeep = keep !== undefined && keepKind === 'list' && (now.counts.get(keep) ?? 0) > 1;
        if (keep === undefined || (remove.length === 0 && !fromScheduled && !extraInKeep)) {
          const occurrences = [...now.counts.values()].reduce((a, b) => a + b, 0) + (now.scheduled ? 1 : 0);
          if (occurrences >= 2) {
            this.leave(
              'duplicate',
              'the extra reference is in the dead-letter queue (history, not work): left',
            );
          }
          continue;
        }
        const from = [...remove, ...(fromScheduled ? [keys.scheduled] : []), ...(extraInKeep ? [keep] : [])];
        await this.add(
          { a: 'remove_duplicate', id, keep, keepKind, lists: remove, scheduled: fromScheduled },
          { id, from, to: keep },
          [keep, ...from],
        );
      }
      sources.progress(this.planned);
    }

    // Orphans: put back in line (they were lost between the original's SET and LPUSH); finished ones left.
    for await (const raw of sources.orphans) {
      const batch = [...(await this.fresh('requeue', raw))];
      const pipeline = this.redis.pipeline();
      for (const id of batch) pipeline.getBuffer(keys.job(id)).pttl(keys.job(id));
      const replies = (await pipeline.exec()) ?? [];
      for (const [i, id] of batch.entries()) {
        const doc = replies[2 * i]?.[1] as Buffer | null;
        const pttl = replies[2 * i + 1]?.[1] as number;
        if (!doc || pttl !== -1) continue;
        const decoded = decodeJob(doc);
        if (!decoded.ok) continue;
        const { job } = decoded;
        if (job.status === 'completed' || job.status === 'failed') {
          this.leave('orphan', `status ${job.status}: a finished job that only lacks a TTL; left as is`);
          continue;
        }
        const route = routeOf(job.routingKey);
        const runAt = parseTimestamp(job.scheduledFor)?.getTime();
        const later = runAt !== undefined && runAt > this.now();
        const to = later ? keys.scheduled : keys.queue(job.priority, route);
        const signal = keys.signal(route);
        await this.add(
          { a: 'requeue', id, sha: sha1Hex(doc), to, score: later ? String(runAt / 1000) : '', signal },
          { id, from: [], to },
          [to, signal],
        );
      }
      sources.progress(this.planned);
    }
    await this.flush();
  }

  /** Applies the plan, entry by entry, each in one script that re-checks its precondition. */
  async apply(allLists: string[], progress: (done: number) => Promise<void>): Promise<void> {
    const { keys } = this;
    let index = 0;
    let done = 0;
    for (;;) {
      const page = await this.redis.lrange(this.planKey, index, index + 199);
      if (page.length === 0) break;
      index += page.length;
      const entries = page.map((text) => JSON.parse(text) as PlanEntry);
      const returns = entries.filter((e) => e.a === 'return_to_queue');
      const others = entries.filter((e) => e.a !== 'return_to_queue');
      const moved = await returnToQueue(
        this.redis,
        keys,
        returns.map((e) => ({ id: e.id, deadline: e.deadline, owner: e.owner, sha: '' })),
      );
      moved.forEach((list) => this.tally('return_to_queue', list !== null));
      const results = await Promise.all(others.map((entry) => this.applyOne(entry, allLists)));
      others.forEach((entry, i) => this.tally(entry.a, results[i]!));
      done += entries.length;
      await progress(done);
      if (page.length < 200) break;
    }
  }

  private tally(action: RepairAction, applied: boolean): void {
    if (applied) this.actions[action].applied++;
    else this.actions[action].changed++;
  }

  private async applyOne(entry: PlanEntry, allLists: string[]): Promise<boolean> {
    const { keys, redis } = this;
    switch (entry.a) {
      case 'remove_reference':
        return (
          (await runScript<number>(
            redis,
            'scan-unlink',
            [entry.key, keys.leases],
            [keys.job(entry.id), entry.id, entry.kind],
          )) > 0
        );
      case 'dead_letter':
        return (
          (await runScript<number>(
            redis,
            'scan-deadletter',
            [keys.processing, keys.leases, keys.leaseOwners, keys.scheduled, keys.dead],
            [
              keys.job(entry.id),
              entry.id,
              entry.sha,
              entry.lease,
              entry.scheduled ? '1' : '0',
              ...entry.lists,
            ],
          )) > 0
        );
      case 'remove_duplicate':
        return (
          (await runScript<number>(
            redis,
            'scan-dedupe',
            [keys.scheduled],
            [entry.id, entry.keep, entry.keepKind, entry.scheduled ? '1' : '0', ...entry.lists],
          )) > 0
        );
      case 'requeue':
        return (
          (await runScript<number>(
            redis,
            'scan-requeue',
            [keys.scheduled],
            [
              keys.job(entry.id),
              entry.id,
              entry.sha,
              entry.to === keys.scheduled ? '' : entry.to,
              entry.score,
              entry.signal,
              ...allLists,
            ],
          )) === 1
        );
      default:
        return false;
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Backup: JSON Lines, one line per key: {"key","type","ttl_ms","value"}, streamed page by page. Lists
// and sorted sets are written in pages, so a million-entry list never sits in memory. A key the repair
// will create is recorded with type "none" (value null).
// ---------------------------------------------------------------------------------------------------

async function writeBackup(
  redis: RedisClient,
  file: string,
  keys: string[],
  progress: (done: number) => void,
): Promise<void> {
  let handle: FileHandle;
  try {
    // 'wx': never overwrite an existing file; 0600: the values are job ids and lease owners of production.
    handle = await open(file, 'wx', 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(
      code === 'EEXIST'
        ? `backup file ${file} already exists: choose another with --backup; nothing was changed`
        : `cannot create backup file ${file}: ${code ?? (err as Error).message}; nothing was changed`,
    );
  }
  try {
    let done = 0;
    for (const key of keys) {
      const [type, pttl] = await Promise.all([redis.type(key), redis.pttl(key)]);
      await handle.write(
        `{"key":${JSON.stringify(key)},"type":${JSON.stringify(type)},"ttl_ms":${pttl},"value":`,
      );
      await writeValue(redis, handle, key, type);
      await handle.write('}\n');
      progress(++done);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function writeValue(redis: RedisClient, handle: FileHandle, key: string, type: string): Promise<void> {
  const PAGE = 1000;
  if (type === 'string') {
    await handle.write(JSON.stringify(await redis.get(key)));
    return;
  }
  if (type === 'list' || type === 'zset') {
    await handle.write('[');
    let first = true;
    for (let start = 0; ; start += PAGE) {
      let items: string[];
      if (type === 'list') {
        items = (await redis.lrange(key, start, start + PAGE - 1)).map((v) => JSON.stringify(v));
      } else {
        const flat = await redis.zrange(key, start, start + PAGE - 1, 'WITHSCORES');
        items = [];
        for (let i = 0; i < flat.length; i += 2) items.push(JSON.stringify([flat[i], flat[i + 1]]));
      }
      if (items.length === 0) break;
      await handle.write(`${first ? '' : ','}${items.join(',')}`);
      first = false;
      if (items.length < PAGE) break;
    }
    await handle.write(']');
    return;
  }
  if (type === 'hash') {
    await handle.write('{');
    let first = true;
    let cursor = '0';
    do {
      const [next, flat] = await redis.hscan(key, cursor, 'COUNT', PAGE);
      cursor = next;
      const parts: string[] = [];
      for (let i = 0; i < flat.length; i += 2)
        parts.push(`${JSON.stringify(flat[i])}:${JSON.stringify(flat[i + 1])}`);
      if (parts.length > 0) {
        await handle.write(`${first ? '' : ','}${parts.join(',')}`);
        first = false;
      }
    } while (cursor !== '0');
    await handle.write('}');
    return;
  }
  // 'none': the key does not exist yet (the repair creates it); restoring means deleting it.
  await handle.write('null');
}
