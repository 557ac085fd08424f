/**
 * `dlq clear`: removes the dead-letter queue's entries and their documents, after backing them up (the
 * runbook's `DEL bananas:queue:dead` kept the documents forever and dropped whatever was dead-lettered
 * while it ran; its "backup" held ids only).
 *
 * Only what was backed up is removed: the entries are read back from the finished backup file and each
 * one leaves the list (and its document is deleted) only if its id is still there and its document is
 * byte for byte the one backed up, in batched Lua scripts. Jobs dead-lettered while it runs, and entries
 * requeued or rewritten meanwhile, are left alone. Without a backup (`--no-backup`) the entries present
 * when it starts are read and removed the same way. Result hashes are never touched; the document of an
 * entry that turns out to be a live job (pending, processing or scheduled: a duplicate id of a requeued
 * job) is kept.
 */
import { resolve } from 'node:path';
import type { RedisClient } from '../core/connection.js';
import { decodeJob } from '../core/codec.js';
import { sha1Hex } from '../core/hash.js';
import { UsageError } from '../core/errors.js';
import { Keys } from '../core/keys.js';
import { runScript } from '../core/scripts.js';
import { assertCanCreate, backupDeadLetters, openBackup, type BackupResult } from './dlq-backup.js';
import { readFromTail, Sample, SeenIds, tombstone } from './dlq-common.js';

export interface ClearOptions {
  /** Back up to this file first (`.gz` compresses). */
  backup?: string;
  /** Clear without a backup (explicit opt-out). */
  noBackup?: boolean;
  /** Overwrite an existing backup file. */
  force?: boolean;
  dryRun?: boolean;
  /** Called once before anything changes (not on a dry run); throw to cancel. */
  confirm?: (question: string) => Promise<void>;
  /** Aborting it stops after the batch in flight (or, during the backup, before anything is removed). */
  signal?: AbortSignal;
  onProgress?: (phase: 'backup' | 'clear', done: number, total: number) => void;
  batchSize?: number;
}

export interface ClearResult {
  dry_run: boolean;
  dead_key: string;
  /** Entries in the dead-letter list when the clear started. */
  dlq_length: number;
  /** The backup written first; null with --no-backup or on a dry run. */
  backup: BackupResult | null;
  /** Entries removed from the dead-letter list (on a dry run: that would be). */
  removed: number;
  /** Job documents deleted with them. */
  documents_deleted: number;
  /** Documents kept because they belong to a live job (a duplicate id of a pending job). */
  documents_kept: number;
  /** Entries removed that had no document. */
  missing_documents: number;
  /** Left in the list: the document changed after the backup (requeued, rewritten, expired). */
  changed: number;
  /** Already gone from the list when the clear got to them. */
  gone: number;
  /** The ids removed, oldest first (the first 1000). */
  ids: string[];
  ids_truncated: boolean;
  interrupted: boolean;
  duration_ms: number;
}

const LIVE_STATUSES = new Set(['pending', 'processing', 'scheduled']);

interface Removal {
  id: string;
  /** sha1 of the document expected; "" when there should be none. */
  sha: string;
  deleteDocument: boolean;
}

function removalOf(id: string, document: Buffer | null): Removal {
  if (document === null) return { id, sha: '', deleteDocument: false };
  const decoded = decodeJob(document);
  const live = decoded.ok && LIVE_STATUSES.has(decoded.job.status);
  return { id, sha: sha1Hex(document), deleteDocument: !live };
}

export async function clearDeadLetters(
  redis: RedisClient,
  prefix: string,
  options: ClearOptions,
): Promise<ClearResult> {
  const started = Date.now();
  const keys = new Keys(prefix);
  const batchSize = options.batchSize ?? 1000;
  if (options.backup === undefined && !options.noBackup) {
    throw new UsageError(
      'refusing to clear the dead-letter queue without a backup: give --backup <file> (or --no-backup)',
    );
  }
  if (options.backup !== undefined && options.noBackup) {
    throw new UsageError('--backup and --no-backup exclude each other');
  }
  // A backup that cannot be written is refused before anything else (a dry run included).
  if (options.backup !== undefined) await assertCanCreate(resolve(options.backup), options.force === true);
  const result: ClearResult = {
    dry_run: options.dryRun === true,
    dead_key: keys.dead,
    dlq_length: await redis.llen(keys.dead),
    backup: null,
    removed: 0,
    documents_deleted: 0,
    documents_kept: 0,
    missing_documents: 0,
    changed: 0,
    gone: 0,
    ids: [],
    ids_truncated: false,
    interrupted: false,
    duration_ms: 0,
  };
  const ids = new Sample<string>();
  const finish = () => {
    result.ids = ids.values;
    result.ids_truncated = ids.truncated;
    result.duration_ms = Date.now() - started;
    return result;
  };
  const length = result.dlq_length;

  if (result.dry_run) {
    for (let skip = 0; skip < length;) {
      const batch = await readFromTail(redis, keys, skip, Math.min(batchSize, length - skip));
      if (batch.length === 0) break;
      for (const entry of batch) {
        const removal = removalOf(entry.id, entry.document);
        countRemoved(result, removal, removal.deleteDocument ? 2 : 1);
        ids.push(entry.id);
      }
      skip += batch.length;
      options.onProgress?.('clear', skip, length);
    }
    return finish();
  }

  const backupText =
    options.backup === undefined ? ' WITHOUT a backup' : ` after backing them up to ${options.backup}`;
  await options.confirm?.(`Delete the ${length} entries of ${keys.dead} and their documents${backupText}?`);

  // `kept`: entries at the tail this clear leaves in place; the next entry to remove is expected after them.
  let kept = 0;
  const deleted = new SeenIds();
  const apply = async (planned: Removal[]) => {
    if (planned.length === 0) return;
    // A second entry of an id whose document this clear already deleted: expect no document now.
    const removals = planned.map((r) => (deleted.has(r.id) ? { ...r, sha: '', deleteDocument: false } : r));
    const args: Array<string | number> = [tombstone(), 2 * batchSize, keys.job(''), removals.length];
    removals.forEach((r, i) => {
      args.push(r.id, r.sha, -(kept + i + 1), r.deleteDocument ? '1' : '0');
    });
    const codes = await runScript<number[]>(redis, 'dlq-clear', [keys.dead], args);
    codes.forEach((code, i) => {
      const r = removals[i] as Removal;
      if (code > 0) {
        countRemoved(result, r, code);
        ids.push(r.id);
        if (code === 2) deleted.add(r.id);
      } else if (code === 0) {
        result.changed++;
        kept++;
      } else result.gone++;
    });
    options.onProgress?.('clear', result.removed + result.changed + result.gone, length);
  };

  if (options.backup !== undefined) {
    const backup = await backupDeadLetters(redis, prefix, {
      out: options.backup,
      force: options.force,
      signal: options.signal,
      onProgress: (done, total) => options.onProgress?.('backup', done, total),
    });
    result.backup = backup;
    if (backup.interrupted) {
      result.interrupted = true;
      return finish();
    }
    // Remove exactly what the file holds, as the file holds it.
    const opened = await openBackup(backup.file);
    let batch: Removal[] = [];
    for await (const line of opened.lines()) {
      if (!line.ok)
        throw new Error(`the backup just written has an invalid line ${line.line}: ${line.reason}`);
      batch.push(removalOf(line.entry.id, line.entry.document));
      if (batch.length >= batchSize) {
        await apply(batch);
        batch = [];
        if (options.signal?.aborted) break;
      }
    }
    if (options.signal?.aborted) result.interrupted = true;
    else await apply(batch);
    return finish();
  }

  let examined = 0;
  while (examined < length) {
    if (options.signal?.aborted) {
      result.interrupted = true;
      break;
    }
    const batch = await readFromTail(redis, keys, kept, Math.min(batchSize, length - examined));
    if (batch.length === 0) break;
    examined += batch.length;
    await apply(batch.map((entry) => removalOf(entry.id, entry.document)));
  }
  return finish();
}

function countRemoved(result: ClearResult, removal: Removal, code: number): void {
  result.removed++;
  if (removal.sha === '') result.missing_documents++;
  else if (code === 2) result.documents_deleted++;
  else result.documents_kept++;
}
