/**
 * `dlq backup` and `dlq restore`: the dead-letter queue as a JSON Lines file, with the documents (the
 * runbook's "backup" held ids only).
 *
 * Format (version 1), oldest entry first:
 *   {"format":"bananas-dlq-backup","version":1,"created_at":"…","prefix":"bananas:","dead_key":"…","count":N}
 *   {"id":"…","document":"<the stored document, exactly>","ttl_ms":604800000}
 *   {"id":"…","document":null,"ttl_ms":null}                          (no document)
 *   {"id":"…","document":"<base64>","document_encoding":"base64",…}  (a document that is not UTF-8)
 * A name ending in `.gz` is gzip-compressed; restore recognizes gzip by its content.
 *
 * A backup streams with bounded memory (pages of the list, writes with backpressure) into a temporary
 * file next to the target, which is renamed into place only when complete and synced: an interrupted
 * backup never leaves a truncated file that looks complete, and restore checks `count` besides.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { link, open, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip, gzipSync } from 'node:zlib';
import type { RedisClient } from '../core/connection.js';
import { decodeJob, encodeJob, resetForRequeue, utf8Text } from '../core/codec.js';
import { BananasError, ConflictError, UsageError } from '../core/errors.js';
import { Keys, routeOf } from '../core/keys.js';
import { assertJobId } from '../core/queue.js';
import { runScript } from '../core/scripts.js';
import { QueueCounts, readIdsFromTail, SeenIds } from './dlq-common.js';

export const BACKUP_FORMAT = 'bananas-dlq-backup';
export const BACKUP_VERSION = 1;

export interface BackupHeader {
  format: typeof BACKUP_FORMAT;
  version: number;
  created_at: string;
  prefix: string;
  dead_key: string;
  /** Entry lines that follow. */
  count: number;
}

export interface BackupOptions {
  /** File to write; `.gz` compresses it. */
  out: string;
  /** Overwrite an existing file. */
  force?: boolean;
  /** Aborting it stops the backup; nothing is written then. */
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  pageSize?: number;
  now?: Date;
}

export interface BackupResult {
  /** Absolute path of the file written. */
  file: string;
  compressed: boolean;
  created_at: string;
  prefix: string;
  dead_key: string;
  /** Entries in the dead-letter list when the backup started. */
  dlq_length: number;
  /** Entries written (fewer than dlq_length only if others removed entries meanwhile). */
  entries: number;
  documents: number;
  missing_documents: number;
  bytes: number;
  /** Stopped by a signal: no file was written. */
  interrupted: boolean;
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}

/** Refuses an existing file (unless `force`) or a directory that does not exist, before any work. */
export async function assertCanCreate(path: string, force: boolean): Promise<void> {
  try {
    const existing = await stat(path);
    if (existing.isDirectory()) throw new UsageError(`${path} is a directory; give a file name`);
    if (!force)
      throw new ConflictError(`${path} already exists; choose another name or pass --force to overwrite it`);
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
  try {
    if (!(await stat(dirname(path))).isDirectory())
      throw new UsageError(`${dirname(path)} is not a directory`);
  } catch (err) {
    if (isMissing(err)) throw new UsageError(`directory ${dirname(path)} does not exist`);
    throw err;
  }
}

function entryLine(id: string, document: Buffer | null, ttl: number): string {
  const text = document === null ? undefined : utf8Text(document);
  const line =
    document === null
      ? { id, document: null }
      : text !== undefined
        ? { id, document: text }
        : { id, document: document.toString('base64'), document_encoding: 'base64' };
  return `${JSON.stringify({ ...line, ttl_ms: ttl >= 0 ? ttl : null })}\n`;
}

/** Writes the dead-letter queue to `options.out` (see the module comment). */
export async function backupDeadLetters(
  redis: RedisClient,
  prefix: string,
  options: BackupOptions,
): Promise<BackupResult> {
  const keys = new Keys(prefix);
  const target = resolve(options.out);
  const compressed = target.endsWith('.gz');
  const pageSize = options.pageSize ?? 1000;
  await assertCanCreate(target, options.force === true);

  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const partial = `${target}.partial-${tag}`;
  const body = `${partial}.body`;
  const createdAt = (options.now ?? new Date()).toISOString();
  const length = await redis.llen(keys.dead);
  const result: BackupResult = {
    file: target,
    compressed,
    created_at: createdAt,
    prefix: keys.prefix,
    dead_key: keys.dead,
    dlq_length: length,
    entries: 0,
    documents: 0,
    missing_documents: 0,
    bytes: 0,
    interrupted: false,
  };

  // Oldest first, addressed from the tail, so jobs dead-lettered meanwhile (at the head) do not shift pages.
  async function* lines(): AsyncGenerator<string> {
    for (let skip = 0; skip < length;) {
      if (options.signal?.aborted) {
        result.interrupted = true;
        return;
      }
      const want = Math.min(pageSize, length - skip);
      const ids = await readIdsFromTail(redis, keys, skip, want);
      if (ids.length === 0) return;
      const read = redis.pipeline();
      read.mgetBuffer(ids.map((id) => keys.job(id)));
      for (const id of ids) read.pttl(keys.job(id));
      const replies = (await read.exec()) ?? [];
      for (const [err] of replies) if (err) throw err;
      const documents = replies[0]?.[1] as Array<Buffer | null>;
      let chunk = '';
      for (let j = ids.length - 1; j >= 0; j--) {
        const document = documents[j] ?? null;
        if (document === null) result.missing_documents++;
        else result.documents++;
        chunk += entryLine(ids[j] as string, document, replies[j + 1]?.[1] as number);
      }
      skip += ids.length;
      result.entries += ids.length;
      options.onProgress?.(result.entries, length);
      yield chunk;
    }
  }

  try {
    // The header comes first but holds the count, known at the end: write the entries aside, then the
    // header followed by them. Compressed files are two gzip members (a valid gzip stream), so the entries
    // are compressed once.
    const source = Readable.from(lines());
    const sink = createWriteStream(body, { flags: 'wx' });
    if (compressed) await pipeline(source, createGzip(), sink);
    else await pipeline(source, sink);
    if (result.interrupted) return result;
    const header: BackupHeader = {
      format: BACKUP_FORMAT,
      version: BACKUP_VERSION,
      created_at: createdAt,
      prefix: keys.prefix,
      dead_key: keys.dead,
      count: result.entries,
    };
    const headerLine = `${JSON.stringify(header)}\n`;
    await writeFile(partial, compressed ? gzipSync(headerLine) : headerLine, { flag: 'wx' });
    await pipeline(createReadStream(body), createWriteStream(partial, { flags: 'a' }));
    await fsync(partial);
    await publish(partial, target, options.force === true);
    await fsync(dirname(target)).catch(() => undefined);
    result.bytes = (await stat(target)).size;
    return result;
  } catch (err) {
    throw fileError(err, target);
  } finally {
    await rm(body, { force: true });
    await rm(partial, { force: true });
  }
}

/** A file system failure (no permission, disk full…) as one clear line; anything else unchanged. */
function fileError(err: unknown, target: string): unknown {
  const errno = err as NodeJS.ErrnoException;
  if (err instanceof BananasError || typeof errno.code !== 'string' || errno.syscall === undefined)
    return err;
  return new UsageError(
    `cannot write ${target}: ${errno.code} (${errno.syscall} failed); nothing was written`,
  );
}

async function fsync(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Moves the finished file into place; without `force`, never over a file created meanwhile. */
async function publish(partial: string, target: string, force: boolean): Promise<void> {
  if (force) return rename(partial, target);
  try {
    await link(partial, target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST')
      throw new ConflictError(`${target} appeared while the backup was written; it was left as is`);
    // Filesystems without hard links: check, then rename (a narrow race, documented).
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EXDEV') throw err;
    await assertCanCreate(target, false);
    return rename(partial, target);
  }
  await unlink(partial);
}

// ---------------------------------------------------------------------------------------------------
// Reading a backup
// ---------------------------------------------------------------------------------------------------

export interface BackupEntry {
  id: string;
  /** Exact bytes to store; null when the entry had no document. */
  document: Buffer | null;
  ttlMs: number | null;
}

export type BackupLine =
  { ok: true; line: number; entry: BackupEntry } | { ok: false; line: number; reason: string };

/** Lines of a backup file, gzip or not (recognized by content), numbered from 1. */
async function* rawLines(path: string): AsyncGenerator<{ line: number; text: string }> {
  let gzip = false;
  try {
    const handle = await open(path, 'r');
    try {
      const magic = Buffer.alloc(2);
      const { bytesRead } = await handle.read(magic, 0, 2, 0);
      gzip = bytesRead === 2 && magic[0] === 0x1f && magic[1] === 0x8b;
    } finally {
      await handle.close();
    }
  } catch (err) {
    if (isMissing(err)) throw new UsageError(`${path}: no such file`);
    throw new UsageError(`${path}: cannot read it: ${(err as Error).message}`);
  }
  const source = createReadStream(path);
  const stream = gzip ? source.pipe(createGunzip()) : source;
  source.on('error', (err) => stream.destroy(err));
  const reader = createInterface({ input: stream, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of reader) {
      line++;
      yield { line, text };
    }
  } catch (err) {
    throw new UsageError(`${path}: cannot read line ${line + 1}: ${(err as Error).message}`);
  } finally {
    reader.close();
    stream.destroy();
  }
}

export function parseHeader(text: string | undefined, path: string): BackupHeader {
  const fail = (why: string) => new UsageError(`${path} is not a bananas dead-letter backup: ${why}`);
  if (text === undefined) throw fail('the file is empty');
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch {
    throw fail('its first line is not JSON');
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header))
    throw fail('its first line is not a header');
  const h = header as Record<string, unknown>;
  if (h.format !== BACKUP_FORMAT) throw fail(`its header has no "format":"${BACKUP_FORMAT}"`);
  if (h.version !== BACKUP_VERSION) {
    throw new UsageError(
      `${path}: backup version ${JSON.stringify(h.version)} is not supported (this bananas reads version ${BACKUP_VERSION})`,
    );
  }
  if (typeof h.prefix !== 'string' || h.prefix === '') throw fail('its header has no prefix');
  if (typeof h.created_at !== 'string') throw fail('its header has no created_at');
  if (typeof h.count !== 'number' || !Number.isSafeInteger(h.count) || h.count < 0)
    throw fail('its header has no valid count');
  return {
    format: BACKUP_FORMAT,
    version: h.version,
    created_at: h.created_at,
    prefix: h.prefix,
    dead_key: typeof h.dead_key === 'string' ? h.dead_key : '',
    count: h.count,
  };
}

export function parseEntryLine(
  text: string,
): { ok: true; entry: BackupEntry } | { ok: false; reason: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    return { ok: false, reason: 'not a JSON object' };
  const v = value as Record<string, unknown>;
  if (typeof v.id !== 'string') return { ok: false, reason: 'no "id" string' };
  try {
    assertJobId(v.id);
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
  let document: Buffer | null;
  if (v.document === null) document = null;
  else if (typeof v.document !== 'string')
    return { ok: false, reason: '"document" must be a string or null' };
  else if (v.document_encoding === undefined) document = Buffer.from(v.document, 'utf8');
  else if (v.document_encoding === 'base64' && /^[A-Za-z0-9+/]*={0,2}$/.test(v.document)) {
    document = Buffer.from(v.document, 'base64');
  } else return { ok: false, reason: 'unknown "document_encoding" or invalid base64' };
  const ttl = v.ttl_ms;
  if (ttl !== undefined && ttl !== null && (typeof ttl !== 'number' || !Number.isFinite(ttl))) {
    return { ok: false, reason: '"ttl_ms" must be a number or null' };
  }
  return { ok: true, entry: { id: v.id, document, ttlMs: typeof ttl === 'number' ? ttl : null } };
}

export interface OpenedBackup {
  path: string;
  header: BackupHeader;
  /** Entry lines found (blank lines are ignored). */
  entries: number;
  /** The entry lines, parsed, in file order (oldest first). Each call reads the file again. */
  lines: () => AsyncGenerator<BackupLine>;
}

/**
 * Opens a backup: checks the header and that the file holds exactly the entries its header announces
 * (a truncated or altered file is refused before anything is restored).
 */
export async function openBackup(file: string): Promise<OpenedBackup> {
  const path = resolve(file);
  let header: BackupHeader | undefined;
  let entries = 0;
  for await (const { line, text } of rawLines(path)) {
    if (line === 1) header = parseHeader(text, path);
    else if (text.trim() !== '') entries++;
  }
  header ??= parseHeader(undefined, path);
  if (entries !== header.count) {
    throw new UsageError(
      `${path} is incomplete or altered: its header announces ${header.count} entries but it holds ${entries}; nothing was done`,
    );
  }
  return {
    path,
    header,
    entries,
    lines: async function* () {
      for await (const { line, text } of rawLines(path)) {
        if (line === 1 || text.trim() === '') continue;
        const parsed = parseEntryLine(text);
        yield parsed.ok
          ? { ok: true, line, entry: parsed.entry }
          : { ok: false, line, reason: parsed.reason };
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Restore
// ---------------------------------------------------------------------------------------------------

export type RestoreTarget = 'dlq' | 'queue';

export interface RestoreOptions {
  in: string;
  /** `dlq` (default): back into the dead-letter queue; `queue`: ready to run, as `dlq requeue` makes them. */
  to?: RestoreTarget;
  dryRun?: boolean;
  /** Restore a backup taken under another prefix. */
  allowOtherPrefix?: boolean;
  /** Called once before anything changes (not on a dry run); throw to cancel. */
  confirm?: (question: string) => Promise<void>;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  batchSize?: number;
  now?: () => Date;
}

export interface RestoreResult {
  file: string;
  to: RestoreTarget;
  dry_run: boolean;
  backup: { created_at: string; prefix: string; count: number };
  /** Entry lines read. */
  entries: number;
  /** Documents written and ids pushed (on a dry run: that would be). */
  restored: number;
  /** A document already exists under the id (restored before, or a newer job): left untouched. */
  skipped_existing: number;
  /** The entry had no document: nothing to restore. */
  skipped_missing_document: number;
  /** `--to queue` only: the document is not a job (stub or corrupt); restore it `--to dlq` instead. */
  not_a_job: number;
  /** Lines that are not valid entries. */
  invalid: number;
  /** The first 20 invalid lines. */
  invalid_lines: Array<{ line: number; reason: string }>;
  /** Where restored ids were pushed. */
  queues: Array<{ queue: string; count: number }>;
  interrupted: boolean;
  duration_ms: number;
}

interface Restorable {
  id: string;
  document: Buffer | string;
  list: string;
  signal: string;
}

/**
 * Restores a backup (see the module comment). Idempotent: an entry is restored only when no document
 * exists under its id (SET NX, then the push, in one script), so restoring twice neither duplicates ids
 * nor overwrites newer documents. `--to dlq` restores documents without their TTL (an operator restored
 * them on purpose; an expiring document would leave an orphan id behind).
 */
export async function restoreDeadLetters(
  redis: RedisClient,
  prefix: string,
  options: RestoreOptions,
): Promise<RestoreResult> {
  const started = Date.now();
  const keys = new Keys(prefix);
  const to = options.to ?? 'dlq';
  const batchSize = options.batchSize ?? 500;
  const now = options.now ?? (() => new Date());
  const backup = await openBackup(options.in);
  if (backup.header.prefix !== keys.prefix && !options.allowOtherPrefix) {
    throw new UsageError(
      `${backup.path} is a backup of prefix ${JSON.stringify(backup.header.prefix)}, not ${JSON.stringify(keys.prefix)}: ` +
        'pass --prefix to match it, or --allow-other-prefix to restore it here',
    );
  }
  const result: RestoreResult = {
    file: backup.path,
    to,
    dry_run: options.dryRun === true,
    backup: {
      created_at: backup.header.created_at,
      prefix: backup.header.prefix,
      count: backup.header.count,
    },
    entries: 0,
    restored: 0,
    skipped_existing: 0,
    skipped_missing_document: 0,
    not_a_job: 0,
    invalid: 0,
    invalid_lines: [],
    queues: [],
    interrupted: false,
    duration_ms: 0,
  };
  if (!result.dry_run) {
    const where = to === 'queue' ? 'as ready jobs (attempts reset)' : `into ${keys.dead}`;
    await options.confirm?.(
      `Restore ${backup.entries} entries of ${backup.path} (taken ${backup.header.created_at}) ${where}?`,
    );
  }
  const queues = new QueueCounts();
  const seen = new SeenIds();
  let batch: Restorable[] = [];

  const flush = async () => {
    if (batch.length === 0) return;
    const current = batch;
    batch = [];
    let codes: number[];
    if (result.dry_run) {
      // What SET NX would say: the document exists, or an earlier line of this file restores the id.
      const pipe = redis.pipeline();
      for (const r of current) pipe.exists(keys.job(r.id));
      const replies = (await pipe.exec()) ?? [];
      codes = current.map((r, i) => (replies[i]?.[1] === 0 && seen.add(r.id) ? 1 : 0));
    } else {
      const args: Array<string | Buffer | number> = [keys.job(''), current.length];
      for (const r of current) args.push(r.id, r.document, r.list, r.signal);
      codes = await runScript<number[]>(redis, 'dlq-restore', [keys.dead], args);
    }
    codes.forEach((code, i) => {
      const r = current[i] as Restorable;
      if (code === 1) {
        result.restored++;
        queues.add(r.list === '' ? keys.dead : r.list);
      } else result.skipped_existing++;
    });
    options.onProgress?.(result.entries, backup.entries);
  };

  for await (const line of backup.lines()) {
    if (options.signal?.aborted) {
      result.interrupted = true;
      break;
    }
    result.entries++;
    if (!line.ok) {
      result.invalid++;
      if (result.invalid_lines.length < 20)
        result.invalid_lines.push({ line: line.line, reason: line.reason });
      continue;
    }
    const { entry } = line;
    if (entry.document === null) {
      result.skipped_missing_document++;
      continue;
    }
    if (to === 'dlq') {
      batch.push({ id: entry.id, document: entry.document, list: '', signal: '' });
    } else {
      const decoded = decodeJob(entry.document);
      if (!decoded.ok) {
        result.not_a_job++;
        continue;
      }
      const job = decoded.job;
      const route = routeOf(job.routingKey);
      batch.push({
        id: entry.id,
        document: encodeJob(resetForRequeue(job, { updatedAt: now().toISOString() })),
        list: keys.queue(job.priority, route),
        signal: keys.signal(route),
      });
    }
    if (batch.length >= batchSize) await flush();
  }
  await flush();
  result.queues = queues.toJSON();
  result.duration_ms = Date.now() - started;
  return result;
}
