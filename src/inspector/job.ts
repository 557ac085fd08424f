/**
 * Operator operations on one job: inspect it (`job get`), fix its document (`job fix`), move it to a
 * ready list (`job requeue`) and delete it with every reference (`job delete`). Plain data out, JSON
 * field names in snake_case; rendering, prompts and the editor belong to the commands (they come in as
 * callbacks).
 *
 * Every change follows one pattern: read the document (exact bytes) and every place the id is in,
 * compute the new document in TypeScript with the codec (payload and unknown fields keep their bytes),
 * then apply it with one Lua script that first checks that the document is still those bytes (sha1) and
 * that the id is still exactly where it was seen. A change made meanwhile by a worker or another operator
 * makes the command refuse (ConflictError, exit 8) with nothing written.
 *
 * Ids are looked up literally: they only ever go into key names and LPOS/ZSCORE/HGET arguments, never
 * into a SCAN or KEYS pattern, so `*`, `?` and `[` match themselves. The empty id addresses the key
 * `<prefix>job:` that the original cron scheduler wrote (`bananas job get ''`).
 */
import type { RedisClient } from '../core/connection.js';
import {
  decodeJob,
  encodeJob,
  jsonStringEnd,
  resetForRequeue,
  topLevelRawValues,
  utf8Text,
  type DecodeResult,
  type Job,
} from '../core/codec.js';
import { BananasError, ConflictError, InvalidJobError, NotFoundError, UsageError } from '../core/errors.js';
import { sha1Hex } from '../core/hash.js';
import {
  DEFAULT_ROUTE,
  isPriority,
  isValidRoutingKey,
  Keys,
  normalizeRoutingKey,
  PRIORITIES,
  routeOf,
  type Priority,
} from '../core/keys.js';
import { runScript } from '../core/scripts.js';
import { discoverReadyLists, locateJob, type JobPlace, type PlaceKind, type ReadyList } from './locate.js';

/** Ids longer than this are refused as input (bananas itself writes at most 256 characters). */
export const MAX_LOOKUP_ID_LENGTH = 1024;

/** Validates an id given on the command line. The empty id is the original cron job's. */
export function assertLookupId(id: string): string {
  if (id.length > MAX_LOOKUP_ID_LENGTH) {
    throw new UsageError(
      `job id is too long (${id.length} characters; at most ${MAX_LOOKUP_ID_LENGTH}); nothing was read or changed`,
    );
  }
  return id;
}

/** An id as messages show it: quoted, with control characters escaped. */
export function quoteId(id: string): string {
  return JSON.stringify(id);
}

// ---------------------------------------------------------------------------------------------------
// Plain data returned to the commands
// ---------------------------------------------------------------------------------------------------

export type DocumentState = 'ok' | 'invalid_json' | 'not_a_job' | 'stub' | 'missing';

export interface PlaceView {
  kind: PlaceKind;
  key: string;
  /** Lists: how many entries the consumer takes before this one (0 = next, or the oldest). */
  position?: number;
  /** Lists: how many times the id is in the list (normally 1). */
  occurrences?: number;
  /** Scheduled set: when it becomes ready. */
  run_at?: string;
}

export interface JobDocumentView {
  id: string;
  name: string;
  description: string;
  status: string;
  priority: Priority;
  routing_key: string;
  attempts: number;
  max_retries: number;
  error: string;
  created_at: string;
  updated_at: string;
  scheduled_for: string | null;
  /** The payload parsed (integers beyond 2^53 lose precision here: use payload_json). */
  payload: unknown;
  /** The payload exactly as stored. */
  payload_json: string;
  /** Top-level fields bananas does not know, parsed. */
  extra_fields: Record<string, unknown>;
}

export interface LeaseView {
  /** Worker id holding the lease (null: a lease without an owner entry). */
  owner: string | null;
  /** Whether that worker still sends heartbeats (its registry entry exists). */
  owner_alive: boolean;
  /** Lease deadline (null: an owner entry without a lease). */
  deadline: string | null;
  expired: boolean;
}

export interface JobDetails {
  id: string;
  key: string;
  document_state: DocumentState;
  /** The decoded document (document_state "ok"). */
  job?: JobDocumentView;
  /** Why the document is not a job (invalid_json, not_a_job, stub). */
  parse_error?: string;
  /** What an original-worker stub says. */
  stub?: { id: string; error: string; corrupted_data?: string };
  /** The stored document as text: for documents that are not jobs, and with --raw. */
  raw?: string;
  /** The stored bytes, base64, when they are not valid UTF-8 (raw then has replacement characters). */
  raw_base64?: string;
  size_bytes: number | null;
  /** Seconds until the document expires; null: no expiry (or no document). */
  ttl_seconds: number | null;
  /** Every list or set that references the id; a job normally lives in exactly one. */
  places: PlaceView[];
  lease: LeaseView | null;
  /** The result hash (`<prefix>result:<id>`), if any. */
  result: Record<string, string> | null;
  result_ttl_seconds: number | null;
  /** Inconsistencies worth an operator's attention (multiple places, orphaned reference, …). */
  warnings: string[];
}

/** One field's change; before/after are JSON texts (null: the field is absent). */
export interface FieldChange {
  field: string;
  before: string | null;
  after: string | null;
}

export type RemovalKind =
  'document' | 'result' | 'ready' | 'processing' | 'dead' | 'scheduled' | 'lease' | 'lease_owner';

export interface Removal {
  kind: RemovalKind;
  key: string;
  /** Entries removed (1 for a document, a hash or a set member; lists: every occurrence). */
  count: number;
}

export type RequeueTarget = Priority | 'original';

export interface RequeueMove {
  /** The ready list the id goes to (LPUSH: after the jobs already waiting). */
  to: string;
  priority: Priority;
  routing_key: string;
  /** False when the id already was in that list and nowhere else: it keeps its position. */
  moved: boolean;
  /** What was (dry run: would be) removed so the id is in that list only. */
  removed: Removal[];
}

export interface FixResult {
  id: string;
  key: string;
  dry_run: boolean;
  /** True when Redis was changed. */
  applied: boolean;
  /** Field-level differences between the stored document and the new one (empty: unchanged). */
  changes: FieldChange[];
  /** The stored document (text; invalid UTF-8 shows as replacement characters). */
  document_before: string;
  /** The document that is (dry run: would be) stored. */
  document_after: string;
  /** "kept": the document keeps its TTL; "removed": it no longer expires (requeued jobs). */
  ttl: 'kept' | 'removed';
  requeue: RequeueMove | null;
  /** Things the fix does not do that the operator may expect (e.g. move the id after a priority change). */
  warnings: string[];
}

export interface RequeueResult {
  id: string;
  key: string;
  dry_run: boolean;
  applied: boolean;
  /** Where the id was before. */
  from: PlaceView[];
  to: string;
  priority: Priority;
  routing_key: string;
  moved: boolean;
  removed: Removal[];
  changes: FieldChange[];
  document_before: string;
  document_after: string;
}

export interface DeleteResult {
  id: string;
  key: string;
  dry_run: boolean;
  applied: boolean;
  /** Where the id was before. */
  places: PlaceView[];
  /** What was (dry run: would be) deleted. */
  removed: Removal[];
}

// ---------------------------------------------------------------------------------------------------
// Reading one job's state
// ---------------------------------------------------------------------------------------------------

interface JobState {
  id: string;
  keys: Keys;
  docKey: string;
  raw: Buffer | null;
  /** sha1 (hex) of raw; "" when there is no document. */
  sha1: string;
  ttlMs: number | null;
  decoded?: DecodeResult;
  /** Every ready list checked (deduplicated), in a fixed order. */
  readyLists: string[];
  /** How often the id is in each list that holds it (ready lists, processing, dead). */
  occurrences: Map<string, number>;
  places: JobPlace[];
  leaseDeadlineMs: number | null;
  leaseOwner: string | null;
  ownerAlive: boolean;
  result: Record<string, string> | null;
  resultTtlMs: number | null;
}

function ttlOrNull(pttl: number): number | null {
  return pttl >= 0 ? pttl : null;
}

function replyOf<T>(reply: [Error | null, unknown] | undefined, what: string): T {
  if (!reply) throw new BananasError('REDIS_ERROR', `no reply reading ${what}`);
  const [err, value] = reply;
  if (err) {
    if (/WRONGTYPE/.test(err.message)) {
      throw new ConflictError(`${what} holds the wrong kind of value (${err.message}); nothing was changed`);
    }
    throw err;
  }
  return value as T;
}

async function readState(redis: RedisClient, keys: Keys, id: string): Promise<JobState> {
  const docKey = keys.job(id);
  const resultKey = keys.result(id);
  const first = await redis
    .pipeline()
    .getBuffer(docKey)
    .pttl(docKey)
    .zscore(keys.leases, id)
    .hget(keys.leaseOwners, id)
    .hgetall(resultKey)
    .pttl(resultKey)
    .exec();
  const raw = replyOf<Buffer | null>(first?.[0], docKey);
  const ttl = replyOf<number>(first?.[1], docKey);
  const leaseScore = replyOf<string | null>(first?.[2], keys.leases);
  const leaseOwner = replyOf<string | null>(first?.[3], keys.leaseOwners);
  const result = replyOf<Record<string, string>>(first?.[4], resultKey);
  const resultTtl = replyOf<number>(first?.[5], resultKey);

  const discovered = await discoverReadyLists(redis, keys);
  const lists = discovered.filter((list, i) => discovered.findIndex((l) => l.key === list.key) === i);
  const state: JobState = {
    id,
    keys,
    docKey,
    raw,
    sha1: raw ? sha1Hex(raw) : '',
    ttlMs: raw ? ttlOrNull(ttl) : null,
    ...(raw ? { decoded: decodeJob(raw) } : {}),
    readyLists: lists.map((l) => l.key),
    occurrences: new Map(),
    places: [],
    leaseDeadlineMs: leaseScore === null ? null : Number(leaseScore),
    leaseOwner,
    ownerAlive: false,
    result: Object.keys(result).length > 0 ? result : null,
    resultTtlMs: Object.keys(result).length > 0 ? ttlOrNull(resultTtl) : null,
  };
  await locate(redis, state, lists);
  if (leaseOwner !== null) state.ownerAlive = (await redis.exists(keys.worker(leaseOwner))) === 1;
  return state;
}

/** Fills places and per-list occurrence counts (LPOS … COUNT 0 only on the lists that hold the id). */
async function locate(redis: RedisClient, state: JobState, lists: ReadyList[]): Promise<void> {
  const { keys, id } = state;
  state.places = await locateJob(redis, keys, id, lists);
  const listPlaces = state.places.filter((p) => p.kind !== 'scheduled');
  if (listPlaces.length === 0) return;
  const pipeline = redis.pipeline();
  for (const place of listPlaces) pipeline.lpos(place.key, id, 'COUNT', 0);
  const replies = (await pipeline.exec()) ?? [];
  listPlaces.forEach((place, i) => {
    const positions = replyOf<number[]>(replies[i], place.key);
    state.occurrences.set(place.key, Math.max(1, positions.length));
  });
}

/** Adds `list` to the ready lists checked (a routed list no SCAN found because it does not exist yet). */
async function includeList(redis: RedisClient, state: JobState, list: string): Promise<void> {
  if (state.readyLists.includes(list)) return;
  state.readyLists.push(list);
  const positions = (await redis.call('LPOS', list, state.id, 'COUNT', 0)) as number[];
  if (positions.length > 0) {
    const length = await redis.llen(list);
    state.places.push({ kind: 'ready', key: list, position: length - 1 - (positions[0] as number) });
    state.occurrences.set(list, positions.length);
  }
}

function inPlace(state: JobState, key: string): boolean {
  return state.places.some((p) => p.key === key);
}

/** The presence string the Lua scripts compare (see the headers of job-rewrite-6.lua / job-delete-7.lua). */
function presenceOf(state: JobState, withResult: boolean): string {
  const { keys } = state;
  const bits = state.readyLists.map((key) => (inPlace(state, key) ? '1' : '0'));
  bits.push(inPlace(state, keys.processing) ? '1' : '0');
  bits.push(inPlace(state, keys.dead) ? '1' : '0');
  bits.push(inPlace(state, keys.scheduled) ? '1' : '0');
  bits.push(state.leaseDeadlineMs !== null ? '1' : '0');
  bits.push(state.leaseOwner !== null ? '1' : '0');
  if (withResult) bits.push(state.result !== null ? '1' : '0');
  return bits.join('');
}

function placeViews(state: JobState): PlaceView[] {
  return state.places.map((p) => ({
    kind: p.kind,
    key: p.key,
    ...(p.position !== undefined ? { position: p.position } : {}),
    ...(p.kind !== 'scheduled' ? { occurrences: state.occurrences.get(p.key) ?? 1 } : {}),
    ...(p.runAt !== undefined ? { run_at: p.runAt } : {}),
  }));
}

/** Every reference a move or a delete removes, as the scripts count them. */
function referenceRemovals(state: JobState): Removal[] {
  const out: Removal[] = [];
  for (const p of state.places) {
    out.push({
      kind: p.kind,
      key: p.key,
      count: p.kind === 'scheduled' ? 1 : (state.occurrences.get(p.key) ?? 1),
    });
  }
  if (state.leaseDeadlineMs !== null) out.push({ kind: 'lease', key: state.keys.leases, count: 1 });
  if (state.leaseOwner !== null) out.push({ kind: 'lease_owner', key: state.keys.leaseOwners, count: 1 });
  return out;
}

/** Turns a script's {"ok", key, count, …} reply into removals, naming each key's kind. */
function removalsFromReply(state: JobState, reply: Array<string | number>): Removal[] {
  const { keys } = state;
  const kindOf = (key: string): RemovalKind => {
    if (key === state.docKey) return 'document';
    if (key === keys.result(state.id)) return 'result';
    if (key === keys.processing) return 'processing';
    if (key === keys.dead) return 'dead';
    if (key === keys.scheduled) return 'scheduled';
    if (key === keys.leases) return 'lease';
    if (key === keys.leaseOwners) return 'lease_owner';
    return 'ready';
  };
  const out: Removal[] = [];
  for (let i = 1; i + 1 < reply.length; i += 2) {
    const key = String(reply[i]);
    out.push({ kind: kindOf(key), key, count: Number(reply[i + 1]) });
  }
  return out;
}

function isHeld(state: JobState): boolean {
  return inPlace(state, state.keys.processing) || state.leaseOwner !== null;
}

function heldDescription(state: JobState): string {
  if (state.leaseOwner !== null) {
    const until =
      state.leaseDeadlineMs !== null ? `, lease until ${new Date(state.leaseDeadlineMs).toISOString()}` : '';
    return `held by worker ${state.leaseOwner}${until}`;
  }
  return 'in processing without a bananas lease (an original worker holds it, or a crash stranded it)';
}

function notFound(state: JobState): NotFoundError {
  return new NotFoundError(
    `job ${quoteId(state.id)} not found: no document ${state.docKey} and the id is in no queue`,
  );
}

function hasAnyTrace(state: JobState): boolean {
  return (
    state.raw !== null ||
    state.places.length > 0 ||
    state.result !== null ||
    state.leaseDeadlineMs !== null ||
    state.leaseOwner !== null
  );
}

function whereText(state: JobState): string {
  return state.places.length === 0 ? 'in no queue' : `in ${state.places.map((p) => p.key).join(', ')}`;
}

/** A document read from Redis, or the exact bytes an operator needs to see, as text. */
function bytesAsText(raw: Buffer): { text: string; base64?: string } {
  const text = utf8Text(raw);
  return text !== undefined ? { text } : { text: raw.toString('utf8'), base64: raw.toString('base64') };
}

// ---------------------------------------------------------------------------------------------------
// job get
// ---------------------------------------------------------------------------------------------------

export async function getJob(
  redis: RedisClient,
  prefix: string,
  id: string,
  options: { raw?: boolean } = {},
): Promise<JobDetails> {
  assertLookupId(id);
  const keys = new Keys(prefix);
  const state = await readState(redis, keys, id);
  if (!hasAnyTrace(state)) throw notFound(state);
  if (options.raw && state.raw === null) {
    throw new NotFoundError(
      `job ${quoteId(id)} has no document (${state.docKey} does not exist; the id is ${whereText(state)})`,
    );
  }
  const details: JobDetails = {
    id,
    key: state.docKey,
    document_state: 'missing',
    size_bytes: state.raw ? state.raw.length : null,
    ttl_seconds: state.ttlMs === null ? null : Math.ceil(state.ttlMs / 1000),
    places: placeViews(state),
    lease: leaseView(state),
    result: state.result,
    result_ttl_seconds: state.resultTtlMs === null ? null : Math.ceil(state.resultTtlMs / 1000),
    warnings: [],
  };
  const decoded = state.decoded;
  if (state.raw && decoded) {
    if (decoded.ok) {
      details.document_state = 'ok';
      details.job = documentView(decoded.job);
    } else {
      details.document_state =
        decoded.kind === 'invalid-json' ? 'invalid_json' : decoded.kind === 'stub' ? 'stub' : 'not_a_job';
      details.parse_error = decoded.reason;
      if (decoded.stub) {
        details.stub = {
          id: decoded.stub.id,
          error: decoded.stub.error,
          ...(decoded.stub.corruptedData !== undefined ? { corrupted_data: decoded.stub.corruptedData } : {}),
        };
      }
    }
    if (!decoded.ok || options.raw) {
      const { text, base64 } = bytesAsText(state.raw);
      details.raw = text;
      if (base64 !== undefined) details.raw_base64 = base64;
    }
  }
  details.warnings = warningsFor(state);
  return details;
}

function leaseView(state: JobState): LeaseView | null {
  if (state.leaseDeadlineMs === null && state.leaseOwner === null) return null;
  return {
    owner: state.leaseOwner,
    owner_alive: state.ownerAlive,
    deadline: state.leaseDeadlineMs === null ? null : new Date(state.leaseDeadlineMs).toISOString(),
    expired: state.leaseDeadlineMs !== null && state.leaseDeadlineMs <= Date.now(),
  };
}

function documentView(job: Job): JobDocumentView {
  const extra: Record<string, unknown> = {};
  for (const [key, value] of job.extra) extra[key] = JSON.parse(value);
  return {
    id: job.id,
    name: job.name,
    description: job.description,
    status: job.status,
    priority: job.priority,
    routing_key: job.routingKey,
    attempts: job.attempts,
    max_retries: job.maxRetries,
    error: job.error,
    created_at: job.createdAt,
    updated_at: job.updatedAt,
    scheduled_for: job.scheduledFor ?? null,
    payload: JSON.parse(job.payload),
    payload_json: job.payload,
    extra_fields: extra,
  };
}

function warningsFor(state: JobState): string[] {
  const { keys, id } = state;
  const warnings: string[] = [];
  if (state.places.length > 1) {
    warnings.push(
      `the id is in ${state.places.length} places (a job normally lives in exactly one): ${state.places.map((p) => p.key).join(', ')}`,
    );
  }
  for (const [key, count] of state.occurrences) {
    if (count > 1) warnings.push(`the id is ${count} times in ${key}`);
  }
  if (state.raw === null) {
    if (state.places.length > 0) {
      warnings.push(
        `no document: ${state.docKey} does not exist but the id is referenced (a worker dead-letters it as "Job data not found"); job delete removes the references`,
      );
    } else {
      warnings.push(`no document (${state.docKey} does not exist): only the result or lease is left`);
    }
  } else if (state.decoded && !state.decoded.ok) {
    warnings.push(
      `the document is not a job (${state.decoded.reason}); a worker dead-letters it: fix it with job fix ${quoteId(id)} --requeue`,
    );
  } else if (state.decoded?.ok) {
    const job = state.decoded.job;
    if (job.id !== id) warnings.push(`the document's id ${quoteId(job.id)} differs from the id in its key`);
    const rawPriority = rawStringField(state.raw, 'priority');
    if (rawPriority !== undefined && !isPriority(rawPriority)) {
      warnings.push(`priority ${quoteId(rawPriority)} is not high, normal or low; it is read as normal`);
    }
    const rk = normalizeRoutingKey(job.routingKey);
    if (rk !== DEFAULT_ROUTE && !isValidRoutingKey(rk)) {
      warnings.push(`routing key ${quoteId(rk)} is invalid; it is routed to the default queues`);
    }
    if (
      state.places.length === 0 &&
      (job.status === 'pending' || job.status === 'scheduled' || job.status === '')
    ) {
      warnings.push(
        `the job is ${job.status || 'pending'} but in no queue: no worker will run it (job requeue puts it back)`,
      );
    }
  }
  const processing = inPlace(state, keys.processing);
  if (processing && state.leaseOwner === null) {
    warnings.push(
      'in processing without a bananas lease: an original worker holds it, or a crash stranded it (nothing returns it automatically)',
    );
  }
  if (!processing && (state.leaseOwner !== null || state.leaseDeadlineMs !== null)) {
    warnings.push(`a lease exists but the id is not in ${keys.processing}`);
  }
  if (state.leaseDeadlineMs !== null && state.leaseDeadlineMs <= Date.now()) {
    warnings.push('the lease has expired: a running worker will return the job to its queue');
  }
  if (state.leaseOwner !== null && !state.ownerAlive) {
    warnings.push(`the lease owner ${state.leaseOwner} sends no heartbeats (not registered)`);
  }
  return warnings;
}

function rawStringField(raw: Buffer | null, field: string): string | undefined {
  if (!raw) return undefined;
  try {
    const value = topLevelRawValues(raw.toString('utf8')).get(field);
    if (value === undefined) return undefined;
    const parsed: unknown = JSON.parse(value);
    return typeof parsed === 'string' ? parsed : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------
// JSON text helpers (whitespace only: strings, numbers and key order keep their bytes)
// ---------------------------------------------------------------------------------------------------

/** The end of the JSON string at `i`; the end of the text when it is not terminated. */
function stringEnd(text: string, i: number): number {
  const end = jsonStringEnd(text, i);
  return end < 0 ? text.length : end;
}

const isJsonSpace = (c: string | undefined) => c === ' ' || c === '\n' || c === '\r' || c === '\t';

/** Removes insignificant whitespace from JSON text (as Go's json.Compact); everything else is kept. */
export function compactJson(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '"') {
      const end = stringEnd(text, i);
      out += text.slice(i, end);
      i = end - 1;
    } else if (!isJsonSpace(c)) {
      out += c;
    }
  }
  return out;
}

/** Indents JSON text for editing; strings, numbers and key order keep their bytes. */
export function prettyJson(text: string, indent = '  ', base = ''): string {
  let out = '';
  let level = 0;
  const newline = () => `\n${base}${indent.repeat(level)}`;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '"') {
      const end = stringEnd(text, i);
      out += text.slice(i, end);
      i = end - 1;
    } else if (c === '{' || c === '[') {
      let j = i + 1;
      while (isJsonSpace(text[j])) j++;
      if (text[j] === '}' || text[j] === ']') {
        out += c + text[j];
        i = j;
      } else {
        level++;
        out += c + newline();
      }
    } else if (c === '}' || c === ']') {
      level--;
      out += newline() + c;
    } else if (c === ',') {
      out += `,${newline()}`;
    } else if (c === ':') {
      out += ': ';
    } else if (!isJsonSpace(c)) {
      out += c;
    }
  }
  return out;
}

/**
 * The document as the editor shows it: one top-level field per line, values indented, in stored order.
 * Text that is not a JSON object is returned unchanged (a corrupt document is edited as stored).
 */
export function editableDocument(text: string): string {
  let members: Map<string, string>;
  try {
    JSON.parse(text);
    members = topLevelRawValues(text);
  } catch {
    return text;
  }
  const lines = [...members].map(
    ([key, value]) => `  ${JSON.stringify(key)}: ${prettyJson(value, '  ', '  ')}`,
  );
  return lines.length === 0 ? '{}\n' : `{\n${lines.join(',\n')}\n}\n`;
}

// ---------------------------------------------------------------------------------------------------
// job fix: assignments, validation, diff
// ---------------------------------------------------------------------------------------------------

export const SETTABLE_FIELDS = [
  'name',
  'description',
  'payload',
  'status',
  'priority',
  'routing_key',
  'attempts',
  'max_retries',
  'error',
] as const;
export type SettableField = (typeof SETTABLE_FIELDS)[number];

export const JOB_STATUSES = ['pending', 'processing', 'completed', 'failed', 'scheduled'] as const;

export interface Assignment {
  field: SettableField;
  /** The value as text; for payload, JSON text. */
  value: string;
}

/**
 * Parses and validates `field=value` assignments (`--set`). Throws a UsageError naming the problem.
 * `payload` takes JSON text (the command resolves `@file` first).
 */
export function parseAssignments(items: readonly string[]): Assignment[] {
  const seen = new Set<string>();
  return items.map((item) => {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`--set expects field=value (got ${JSON.stringify(item)})`);
    const field = item.slice(0, eq);
    const value = item.slice(eq + 1);
    if (!(SETTABLE_FIELDS as readonly string[]).includes(field)) {
      throw new UsageError(
        `--set: unknown field ${JSON.stringify(field)} (settable: ${SETTABLE_FIELDS.join(', ')}; edit other fields with $EDITOR or --from)`,
      );
    }
    if (seen.has(field)) throw new UsageError(`--set: field ${field} is given twice`);
    seen.add(field);
    validateAssignment(field as SettableField, value);
    return { field: field as SettableField, value };
  });
}

function validateAssignment(field: SettableField, value: string): void {
  const bad = (why: string) => new UsageError(`--set ${field}: ${why} (got ${JSON.stringify(value)})`);
  switch (field) {
    case 'priority':
      if (!isPriority(value)) throw bad(`use ${PRIORITIES.join(', ')}`);
      break;
    case 'status':
      if (!(JOB_STATUSES as readonly string[]).includes(value)) throw bad(`use ${JOB_STATUSES.join(', ')}`);
      break;
    case 'attempts':
    case 'max_retries':
      if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw bad('use a whole number ≥ 0');
      break;
    case 'routing_key':
      if (value !== '' && !isValidRoutingKey(value))
        throw bad('use 1-64 characters of A-Z a-z 0-9 _ - (or "" for default)');
      break;
    case 'name':
      if (value.trim() === '') throw bad('a job needs a non-empty name');
      break;
    case 'payload':
      try {
        JSON.parse(value);
      } catch (err) {
        throw bad(`not valid JSON: ${(err as Error).message}`);
      }
      break;
    default:
      break;
  }
}

export function applyAssignments(job: Job, assignments: readonly Assignment[]): Job {
  const next: Job = { ...job, extra: [...job.extra] };
  for (const { field, value } of assignments) {
    switch (field) {
      case 'name':
        next.name = value;
        break;
      case 'description':
        next.description = value;
        break;
      case 'payload':
        next.payload = value;
        break;
      case 'status':
        next.status = value;
        break;
      case 'priority':
        next.priority = value as Priority;
        break;
      case 'routing_key':
        next.routingKey = value;
        break;
      case 'attempts':
        next.attempts = Number(value);
        break;
      case 'max_retries':
        next.maxRetries = Number(value);
        break;
      case 'error':
        next.error = value;
        break;
    }
  }
  return next;
}

/**
 * Checks a replacement document: it must decode as a job, keep the id of its key, and use a known
 * priority and a valid routing key. Returns the decoded job.
 */
export function validateReplacement(text: string, id: string, what: string): Job {
  const decoded = decodeJob(text);
  if (!decoded.ok)
    throw new InvalidJobError(`${what} is not a valid job: ${decoded.reason}; nothing was changed`);
  const job = decoded.job;
  if (job.id !== id) {
    throw new InvalidJobError(
      `${what}: the id must stay ${quoteId(id)} (got ${quoteId(job.id)}); nothing was changed`,
    );
  }
  const rawPriority = topLevelRawValues(text).get('priority');
  if (rawPriority !== undefined && rawPriority !== 'null' && !isPriority(JSON.parse(rawPriority) as string)) {
    throw new InvalidJobError(
      `${what}: priority must be ${PRIORITIES.join(', ')} (got ${rawPriority}); nothing was changed`,
    );
  }
  const rk = normalizeRoutingKey(job.routingKey);
  if (rk !== DEFAULT_ROUTE && !isValidRoutingKey(rk)) {
    throw new InvalidJobError(
      `${what}: invalid routing key ${quoteId(rk)} (use 1-64 characters of A-Z a-z 0-9 _ -); nothing was changed`,
    );
  }
  return job;
}

/**
 * Keeps the stored bytes of payload and unknown fields whose value did not change beyond whitespace;
 * changed values are stored compacted (an edited payload may have been indented).
 */
function preserveRawValues(next: Job, previous: Job | undefined): Job {
  const keep = (before: string | undefined, after: string) =>
    before !== undefined && compactJson(before) === compactJson(after) ? before : compactJson(after);
  const previousExtra = new Map(previous?.extra ?? []);
  return {
    ...next,
    payload: keep(previous?.payload, next.payload),
    extra: next.extra.map(([key, value]) => [key, keep(previousExtra.get(key), value)] as [string, string]),
  };
}

/** Field-level differences; values are JSON texts compared without insignificant whitespace. */
export function fieldChanges(before: Job | undefined, beforeText: string, after: Job): FieldChange[] {
  if (!before) return [{ field: 'document', before: JSON.stringify(beforeText), after: encodeJob(after) }];
  const view = (job: Job): Map<string, string> => {
    const fields = new Map<string, string>([
      ['id', JSON.stringify(job.id)],
      ['name', JSON.stringify(job.name)],
      ['description', JSON.stringify(job.description)],
      ['payload', compactJson(job.payload)],
      ['status', JSON.stringify(job.status)],
      ['priority', JSON.stringify(job.priority)],
      ['routing_key', JSON.stringify(job.routingKey)],
      ['attempts', String(job.attempts)],
      ['max_retries', String(job.maxRetries)],
      ['error', JSON.stringify(job.error)],
      ['created_at', JSON.stringify(job.createdAt)],
      ['updated_at', JSON.stringify(job.updatedAt)],
    ]);
    if (job.scheduledFor !== undefined) fields.set('scheduled_for', JSON.stringify(job.scheduledFor));
    for (const [key, value] of job.extra) fields.set(key, compactJson(value));
    return fields;
  };
  const a = view(before);
  const b = view(after);
  const changes: FieldChange[] = [];
  for (const field of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(field) ?? null;
    const y = b.get(field) ?? null;
    if (x !== y) changes.push({ field, before: x, after: y });
  }
  return changes;
}

/** The job reset for another run (see resetForRequeue); updated_at is set by the caller when it changes. */
function requeued(job: Job, to: RequeueTarget): Job {
  return resetForRequeue(job, to === 'original' ? {} : { priority: to });
}

/**
 * The document to store for `next`, with updated_at set to now, or "" when it encodes exactly as the
 * stored job `before` (then nothing is rewritten and updated_at is left as it was).
 */
function newDocumentFor(next: Job, before: Job | undefined, now: Date | undefined): string {
  if (before && encodeJob(next) === encodeJob(before)) return '';
  next.updatedAt = (now ?? new Date()).toISOString();
  return encodeJob(next);
}

// ---------------------------------------------------------------------------------------------------
// Applying a change
// ---------------------------------------------------------------------------------------------------

type ScriptReply = Array<string | number>;

/** Reads a job that must have a document to `verb` (job fix, job requeue); NotFoundError otherwise. */
async function readDocumentState(
  redis: RedisClient,
  prefix: string,
  id: string,
  verb: string,
): Promise<JobState & { raw: Buffer }> {
  assertLookupId(id);
  const state = await readState(redis, new Keys(prefix), id);
  if (state.raw === null) {
    if (!hasAnyTrace(state)) throw notFound(state);
    throw new NotFoundError(
      `job ${quoteId(id)} has no document (${state.docKey} does not exist; the id is ${whereText(state)}); nothing to ${verb} (job delete removes the references)`,
    );
  }
  return state as JobState & { raw: Buffer };
}

function conflictFrom(reply: ScriptReply, state: JobState, verb: string): ConflictError | undefined {
  if (reply[0] === 'changed') {
    return new ConflictError(
      `job ${quoteId(state.id)}: its document changed while it was being ${verb}; nothing was written (run the command again)`,
    );
  }
  if (reply[0] === 'moved') {
    return new ConflictError(
      `job ${quoteId(state.id)} moved while it was being ${verb} (a worker took it, or another operator moved it); nothing was written (run the command again)`,
    );
  }
  return undefined;
}

/** True when the id is in `list` once and nowhere else, and no worker holds it. */
function onlyIn(state: JobState, list: string): boolean {
  return (
    state.places.length === 1 &&
    state.places[0]?.key === list &&
    state.occurrences.get(list) === 1 &&
    state.leaseOwner === null &&
    state.leaseDeadlineMs === null
  );
}

/**
 * Plans moving the id to the ready list of `next` (its priority and route). A requeued job must not
 * expire while it waits (dead-lettered documents carry a 7-day TTL), so its TTL is removed. A job that
 * is already in that list and nowhere else keeps its position.
 */
async function planRequeue(
  redis: RedisClient,
  state: JobState,
  next: Job,
  newDocument: string,
): Promise<{ move: RequeueMove; plan: RewritePlan }> {
  const route = routeOf(next.routingKey);
  const target = state.keys.queue(next.priority, route);
  await includeList(redis, state, target);
  const stays = onlyIn(state, target);
  return {
    move: {
      to: target,
      priority: next.priority,
      routing_key: next.routingKey,
      moved: !stays,
      removed: stays ? [] : referenceRemovals(state),
    },
    plan: {
      newDocument,
      ttl: 'persist',
      ...(stays ? {} : { target, signal: state.keys.signal(route) }),
    },
  };
}

/** A fix without --requeue leaves the id where it is, even when its priority or route now points elsewhere. */
function stayWarnings(state: JobState, next: Job): string[] {
  const target = state.keys.queue(next.priority, routeOf(next.routingKey));
  return state.places
    .filter((p) => p.kind === 'ready' && p.key !== target)
    .map(
      (p) =>
        `the id stays in ${p.key}, but its priority and route now point to ${target}: add --requeue to move it there`,
    );
}

/** Whether applying `plan` would change anything. */
function changesSomething(state: JobState, plan: RewritePlan): boolean {
  return (
    plan.newDocument !== '' || plan.target !== undefined || (plan.ttl === 'persist' && state.ttlMs !== null)
  );
}

interface RewritePlan {
  newDocument: string;
  ttl: 'keep' | 'persist';
  /** Ready list to move the id to, or undefined to leave every place as it is. */
  target?: string;
  signal?: string;
}

async function applyRewrite(
  redis: RedisClient,
  state: JobState,
  plan: RewritePlan,
  verb: string,
): Promise<Removal[]> {
  const { keys } = state;
  const reply = await runScript<ScriptReply>(
    redis,
    'job-rewrite',
    [state.docKey, keys.processing, keys.dead, keys.scheduled, keys.leases, keys.leaseOwners],
    [
      state.id,
      state.sha1,
      presenceOf(state, false),
      plan.newDocument,
      plan.ttl,
      plan.target ?? '',
      plan.signal ?? '',
      state.readyLists.length,
      ...state.readyLists,
    ],
  );
  const conflict = conflictFrom(reply, state, verb);
  if (conflict) throw conflict;
  return removalsFromReply(state, reply);
}

// ---------------------------------------------------------------------------------------------------
// job fix
// ---------------------------------------------------------------------------------------------------

export type FixSource =
  /** `--set field=value`: needs a document that decodes as a job. */
  | { kind: 'set'; assignments: Assignment[] }
  /** `--from <file>`: a full replacement document. */
  | { kind: 'document'; text: string; label: string }
  /** $EDITOR: receives the document as text to edit, returns the edited text. */
  | { kind: 'edit'; edit: (text: string) => Promise<string> };

export interface FixOptions {
  /** Also move the id to a ready list (from the dead-letter queue, or wherever it is), reset for a new run. */
  requeue?: { to: RequeueTarget };
  /** Fix it even while a worker holds it. */
  force?: boolean;
  dryRun?: boolean;
  /** Called with the plan before anything is written (not for dry runs or when there is nothing to do). */
  confirm?: (plan: FixResult) => Promise<void>;
  now?: Date;
}

export async function fixJob(
  redis: RedisClient,
  prefix: string,
  id: string,
  source: FixSource,
  options: FixOptions = {},
): Promise<FixResult> {
  const state = await readDocumentState(redis, prefix, id, 'fix');
  if (isHeld(state) && !options.force) {
    throw new ConflictError(
      `job ${quoteId(id)} is ${heldDescription(state)}: its worker's settlement would overwrite the fix; use --force to fix it anyway`,
    );
  }
  const beforeText = bytesAsText(state.raw).text;
  const before = state.decoded?.ok ? state.decoded.job : undefined;

  let next: Job;
  switch (source.kind) {
    case 'set':
      if (!before) {
        throw new InvalidJobError(
          `job ${quoteId(id)}: cannot --set fields of a document that is not a job (${(state.decoded as { reason: string }).reason}); replace it with --from <file> or $EDITOR`,
        );
      }
      next = applyAssignments(before, source.assignments);
      break;
    case 'document':
      next = validateReplacement(source.text, id, source.label);
      break;
    case 'edit': {
      const initial = before ? editableDocument(beforeText) : beforeText;
      const edited = await source.edit(initial);
      if (edited === initial && before) next = before;
      else if (edited === initial) {
        throw new InvalidJobError(
          `the edited document is unchanged and still not a valid job (${(state.decoded as { reason: string }).reason}); nothing was changed`,
        );
      } else next = validateReplacement(edited, id, 'the edited document');
      break;
    }
  }
  next = preserveRawValues(next, before);
  if (options.requeue) next = requeued(next, options.requeue.to);
  const newDocument = newDocumentFor(next, before, options.now);
  let requeue: RequeueMove | null = null;
  let plan: RewritePlan = { newDocument, ttl: 'keep' };
  if (options.requeue) ({ move: requeue, plan } = await planRequeue(redis, state, next, newDocument));
  const result: FixResult = {
    id,
    key: state.docKey,
    dry_run: options.dryRun === true,
    applied: false,
    changes: newDocument !== '' ? fieldChanges(before, beforeText, next) : [],
    document_before: beforeText,
    document_after: newDocument || beforeText,
    ttl: options.requeue ? 'removed' : 'kept',
    requeue,
    warnings: options.requeue ? [] : stayWarnings(state, next),
  };
  if (options.dryRun || !changesSomething(state, plan)) return result;
  await options.confirm?.(result);
  const removed = await applyRewrite(redis, state, plan, 'fixed');
  if (requeue) requeue.removed = removed;
  result.applied = true;
  return result;
}

// ---------------------------------------------------------------------------------------------------
// job requeue
// ---------------------------------------------------------------------------------------------------

export interface RequeueOptions {
  to: RequeueTarget;
  /** Requeue it even while a worker holds it (the worker's settlement is then discarded). */
  force?: boolean;
  dryRun?: boolean;
  now?: Date;
}

export async function requeueJob(
  redis: RedisClient,
  prefix: string,
  id: string,
  options: RequeueOptions,
): Promise<RequeueResult> {
  const state = await readDocumentState(redis, prefix, id, 'requeue');
  const decoded = state.decoded as DecodeResult;
  if (!decoded.ok) {
    throw new ConflictError(
      `job ${quoteId(id)} has a document that is not a job (${decoded.reason}); a worker would dead-letter it again: fix it first with job fix ${quoteId(id)} --requeue`,
    );
  }
  if (isHeld(state) && !options.force) {
    throw new ConflictError(
      `job ${quoteId(id)} is ${heldDescription(state)}; use --force to requeue it anyway (it may then run twice)`,
    );
  }
  const before = decoded.job;
  if (state.places.length === 0 && before.status === 'completed' && !options.force) {
    throw new ConflictError(
      `job ${quoteId(id)} completed and is in no queue; requeueing runs it again: use --force if that is what you want`,
    );
  }
  const from = placeViews(state);
  const next = requeued(before, options.to);
  const newDocument = newDocumentFor(next, before, options.now);
  const { move, plan } = await planRequeue(redis, state, next, newDocument);
  const beforeText = bytesAsText(state.raw).text;
  const result: RequeueResult = {
    id,
    key: state.docKey,
    dry_run: options.dryRun === true,
    applied: false,
    from,
    to: move.to,
    priority: move.priority,
    routing_key: move.routing_key,
    moved: move.moved,
    removed: move.removed,
    changes: newDocument !== '' ? fieldChanges(before, beforeText, next) : [],
    document_before: beforeText,
    document_after: newDocument || beforeText,
  };
  if (options.dryRun || !changesSomething(state, plan)) return result;
  result.removed = await applyRewrite(redis, state, plan, 'requeued');
  result.applied = true;
  return result;
}

// ---------------------------------------------------------------------------------------------------
// job delete
// ---------------------------------------------------------------------------------------------------

export interface DeleteOptions {
  dryRun?: boolean;
  /** Called with the plan before anything is deleted (not for dry runs). */
  confirm?: (plan: DeleteResult) => Promise<void>;
}

export async function deleteJob(
  redis: RedisClient,
  prefix: string,
  id: string,
  options: DeleteOptions = {},
): Promise<DeleteResult> {
  assertLookupId(id);
  const keys = new Keys(prefix);
  const state = await readState(redis, keys, id);
  if (!hasAnyTrace(state)) throw notFound(state);
  const removed: Removal[] = [];
  if (state.raw !== null) removed.push({ kind: 'document', key: state.docKey, count: 1 });
  if (state.result !== null) removed.push({ kind: 'result', key: keys.result(id), count: 1 });
  removed.push(...referenceRemovals(state));
  const result: DeleteResult = {
    id,
    key: state.docKey,
    dry_run: options.dryRun === true,
    applied: false,
    places: placeViews(state),
    removed,
  };
  if (options.dryRun) return result;
  await options.confirm?.(result);
  const reply = await runScript<ScriptReply>(
    redis,
    'job-delete',
    [
      state.docKey,
      keys.result(id),
      keys.processing,
      keys.dead,
      keys.scheduled,
      keys.leases,
      keys.leaseOwners,
    ],
    [id, state.sha1, presenceOf(state, true), state.readyLists.length, ...state.readyLists],
  );
  const conflict = conflictFrom(reply, state, 'deleted');
  if (conflict) throw conflict;
  result.removed = removalsFromReply(state, reply);
  result.applied = true;
  return result;
}
