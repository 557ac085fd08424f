/**
 * The job codec: reads every document the original producers write (Go service, Go/TypeScript/Python
 * SDKs, stubs, the empty-id cron job) without throwing, and writes Go-compatible documents.
 *
 * The `payload` and every field bananas does not know are kept as raw JSON text, so their bytes survive
 * each rewrite unchanged (big integers, key order, escapes, `1.0`).
 */
import { randomUUID } from 'node:crypto';
import { DEFAULT_ROUTE, normalizePriority, routeOf, type Priority } from './keys.js';

export const DEFAULT_MAX_RETRIES = 3;

/** Statuses the producers write; readers must accept any string (cron jobs write ""). */
export type JobStatus = 'pending' | 'processing' | 'completed' | 'failed' | 'scheduled' | (string & {});

export interface Job {
  id: string;
  name: string;
  /** "" when absent. */
  description: string;
  /** The payload as raw JSON text, exactly as stored. */
  payload: string;
  status: JobStatus;
  /** Normalized: unknown values read as `normal`. */
  priority: Priority;
  /** RFC 3339 text as stored ("" when absent); parse with {@link parseTimestamp}. */
  createdAt: string;
  updatedAt: string;
  /** Present only while a delayed run or a retry is pending. */
  scheduledFor?: string;
  attempts: number;
  maxRetries: number;
  /** "" when absent. */
  error: string;
  /** As stored: "" and "default" both mean the default route. */
  routingKey: string;
  /** Top-level fields bananas does not know, in document order, with their raw JSON values. */
  extra: Array<[key: string, rawValue: string]>;
}

export type DecodeFailureKind =
  /** Not JSON (or not UTF-8). */
  | 'invalid-json'
  /** JSON, but not a job document (wrong shape or field types). */
  | 'not-a-job'
  /** A stub the original wrote on its error paths instead of the job. */
  | 'stub';

export type DecodeResult =
  | { ok: true; job: Job }
  | {
      ok: false;
      kind: DecodeFailureKind;
      /** One line saying what is wrong. */
      reason: string;
      /** Set for stubs: the id and error text the stub carries. */
      stub?: { id: string; error: string; corruptedData?: string };
    };

/** The top-level fields of a job document; any other field is kept verbatim in `Job.extra`. */
export const KNOWN_FIELDS: ReadonlySet<string> = new Set([
  'id',
  'name',
  'description',
  'payload',
  'status',
  'priority',
  'created_at',
  'updated_at',
  'scheduled_for',
  'attempts',
  'max_retries',
  'error',
  'routing_key',
]);

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The bytes as text when they are valid UTF-8; undefined otherwise. */
export function utf8Text(bytes: Buffer): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

type CheckedDocument =
  { ok: true; text: string; doc: Record<string, unknown> } | Extract<DecodeResult, { ok: false }>;

/**
 * The checks that decide whether a stored document is a job: UTF-8, JSON, an object, not a stub the
 * original wrote, and the field types. {@link decodeJob} and {@link quickCheckJob} both start here, so they
 * cannot disagree on what a job is.
 */
function checkDocument(stored: string | Buffer): CheckedDocument {
  const text = typeof stored === 'string' ? stored : utf8Text(stored);
  if (text === undefined) return { ok: false, kind: 'invalid-json', reason: 'document is not valid UTF-8' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { ok: false, kind: 'invalid-json', reason: `invalid JSON: ${(err as Error).message}` };
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return { ok: false, kind: 'not-a-job', reason: 'document is not a JSON object' };
  }
  const doc = parsed as Record<string, unknown>;

  if (!('name' in doc) && typeof doc.error === 'string' && 'id' in doc) {
    const stub = {
      id: String(doc.id),
      error: doc.error,
      ...(typeof doc.corrupted_data === 'string' ? { corruptedData: doc.corrupted_data } : {}),
    };
    return { ok: false, kind: 'stub', reason: `stub written by the original worker: ${doc.error}`, stub };
  }

  const problem = findTypeProblem(doc);
  if (problem) return { ok: false, kind: 'not-a-job', reason: problem };
  return { ok: true, text, doc };
}

/** Decodes a stored document. Never throws. */
export function decodeJob(stored: string | Buffer): DecodeResult {
  const checked = checkDocument(stored);
  if (!checked.ok) return checked;
  const { text, doc } = checked;

  let raw: Map<string, string>;
  try {
    raw = topLevelRawValues(text);
  } catch (err) {
    return { ok: false, kind: 'invalid-json', reason: `invalid JSON: ${(err as Error).message}` };
  }
  const extra: Array<[string, string]> = [];
  for (const [key, value] of raw) {
    if (!KNOWN_FIELDS.has(key)) extra.push([key, value]);
  }
  const job: Job = {
    id: doc.id as string,
    name: doc.name as string,
    description: optionalString(doc.description),
    payload: raw.get('payload') ?? 'null',
    status: optionalString(doc.status),
    priority: normalizePriority(doc.priority),
    createdAt: optionalString(doc.created_at),
    updatedAt: optionalString(doc.updated_at),
    attempts: (doc.attempts as number | undefined) ?? 0,
    maxRetries: (doc.max_retries as number | undefined) ?? DEFAULT_MAX_RETRIES,
    error: optionalString(doc.error),
    routingKey: optionalString(doc.routing_key),
    extra,
  };
  if (typeof doc.scheduled_for === 'string' && doc.scheduled_for !== '') job.scheduledFor = doc.scheduled_for;
  return { ok: true, job };
}

/**
 * A fast yes/no for scans over millions of documents: `ok` when the document passes decodeJob's checks
 * (the same code), with its updated_at (`""` when absent). It skips decodeJob's raw-text extraction of
 * the payload and unknown fields, the costly part; a document it refuses goes to decodeJob for the reason.
 */
export function quickCheckJob(stored: string | Buffer): { ok: boolean; updatedAt: string } {
  const checked = checkDocument(stored);
  if (!checked.ok) return { ok: false, updatedAt: '' };
  return { ok: true, updatedAt: optionalString(checked.doc.updated_at) };
}

function optionalString(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

const TEXT_FIELDS = [
  'description',
  'status',
  'priority',
  'created_at',
  'updated_at',
  'scheduled_for',
  'error',
  'routing_key',
];
const COUNTER_FIELDS = ['attempts', 'max_retries'];

function findTypeProblem(doc: Record<string, unknown>): string | undefined {
  if (typeof doc.id !== 'string') return 'field "id" must be a string';
  if (typeof doc.name !== 'string' || doc.name === '') return 'field "name" must be a non-empty string';
  for (const field of TEXT_FIELDS) {
    const value = doc[field];
    if (value !== undefined && value !== null && typeof value !== 'string')
      return `field "${field}" must be a string`;
  }
  for (const field of COUNTER_FIELDS) {
    const value = doc[field];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      return `field "${field}" must be a non-negative integer`;
    }
  }
  return undefined;
}

/**
 * Encodes a job the way the Go service orders its fields (readers must not depend on order); description
 * and error are omitted when empty, as Go does. Payload and unknown fields are written back verbatim.
 */
export function encodeJob(job: Job): string {
  const parts: string[] = [`"id":${JSON.stringify(job.id)}`, `"name":${JSON.stringify(job.name)}`];
  if (job.description !== '') parts.push(`"description":${JSON.stringify(job.description)}`);
  parts.push(
    `"payload":${job.payload}`,
    `"status":${JSON.stringify(job.status)}`,
    `"priority":${JSON.stringify(job.priority)}`,
    `"created_at":${JSON.stringify(job.createdAt)}`,
    `"updated_at":${JSON.stringify(job.updatedAt)}`,
  );
  if (job.scheduledFor !== undefined && job.scheduledFor !== '') {
    parts.push(`"scheduled_for":${JSON.stringify(job.scheduledFor)}`);
  }
  parts.push(`"attempts":${job.attempts}`, `"max_retries":${job.maxRetries}`);
  if (job.error !== '') parts.push(`"error":${JSON.stringify(job.error)}`);
  parts.push(`"routing_key":${JSON.stringify(job.routingKey)}`);
  for (const [key, value] of job.extra) parts.push(`${JSON.stringify(key)}:${value}`);
  return `{${parts.join(',')}}`;
}

export interface NewJobOptions {
  id?: string;
  description?: string;
  priority?: Priority;
  routingKey?: string;
  maxRetries?: number;
  /** When set, the job is written with status `scheduled` and this time. */
  scheduledFor?: Date;
  now?: Date;
}

/** Builds a new job; `payload` is raw JSON text (validate it with {@link assertJsonText}). */
export function newJob(name: string, payload: string, options: NewJobOptions = {}): Job {
  const now = (options.now ?? new Date()).toISOString();
  const job: Job = {
    id: options.id ?? randomUUID(),
    name,
    description: options.description ?? '',
    payload,
    status: options.scheduledFor ? 'scheduled' : 'pending',
    priority: options.priority ?? 'normal',
    createdAt: now,
    updatedAt: now,
    attempts: 0,
    maxRetries: options.maxRetries ?? DEFAULT_MAX_RETRIES,
    error: '',
    routingKey: options.routingKey ?? 'default',
    extra: [],
  };
  if (options.scheduledFor) job.scheduledFor = options.scheduledFor.toISOString();
  return job;
}

/**
 * A copy of `job` made ready to run again, as every requeue makes it (`dlq requeue`, `dlq restore --to
 * queue`, `job requeue`, `job fix --requeue`): status pending, attempts 0, no scheduled_for, at `priority`
 * (default: its own). The error, the payload and unknown fields are kept (the codec keeps their bytes).
 * `updatedAt`: the updated_at to write; without it updated_at is left for the caller (`job requeue` only
 * sets it when the document changes otherwise, so a job that is ready already keeps its exact bytes).
 */
export function resetForRequeue(job: Job, options: { priority?: Priority; updatedAt?: string } = {}): Job {
  const next: Job = { ...job, status: 'pending', attempts: 0, priority: options.priority ?? job.priority };
  delete next.scheduledFor;
  if (options.updatedAt !== undefined) next.updatedAt = options.updatedAt;
  return next;
}

/**
 * The priority and route a stored document is served at, read as the Lua fragment's bananasRouteOf reads
 * it (lua/_queue-keys.lua): any JSON object, a job or not; a missing or unreadable document goes to the
 * default route's normal list, where the next dequeue dead-letters it.
 */
export function routeOfDocument(stored: Buffer | null): { priority: Priority; route: string } {
  let parsed: unknown;
  try {
    parsed = stored === null ? null : JSON.parse(stored.toString('utf8'));
  } catch {
    parsed = null;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return { priority: 'normal', route: DEFAULT_ROUTE };
  }
  const doc = parsed as Record<string, unknown>;
  return { priority: normalizePriority(doc.priority), route: routeOf(doc.routing_key) };
}

/** Returns `text` trimmed if it is one JSON value; throws a SyntaxError saying why otherwise. */
export function assertJsonText(text: string): string {
  JSON.parse(text);
  return text.trim();
}

const TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:?\d{2})?$/;

/**
 * Parses the RFC 3339 forms the producers write (0-9 fraction digits, `Z` or any offset). A time without
 * an offset (Python's naive datetimes) is read as UTC. Returns undefined for anything else.
 */
export function parseTimestamp(text: string | undefined): Date | undefined {
  if (!text) return undefined;
  const m = TIMESTAMP.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac = '', offset = 'Z'] = m;
  const fields = [Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)] as const;
  // Not Date.UTC: it maps years 0-99 to 1900-1999 (Go's zero time 0001-01-01 would read as 1901).
  const date = new Date(0);
  date.setUTCFullYear(fields[0], fields[1], fields[2]);
  date.setUTCHours(fields[3], fields[4], fields[5], Number(frac.padEnd(3, '0').slice(0, 3)));
  // Date rolls out-of-range fields over (month 13, 30 February, 24:00, second 60); refuse them, as Go does.
  const actual = [
    date.getUTCFullYear(),
    date.getUTCMonth(),
    date.getUTCDate(),
    date.getUTCHours(),
    date.getUTCMinutes(),
    date.getUTCSeconds(),
  ];
  if (actual.some((value, i) => value !== fields[i])) return undefined;
  let time = date.getTime();
  if (offset !== 'Z' && offset !== 'z') {
    const sign = offset.startsWith('-') ? -1 : 1;
    const digits = offset.slice(1).replace(':', '');
    const [offsetHours, offsetMinutes] = [Number(digits.slice(0, 2)), Number(digits.slice(2, 4))];
    if (offsetHours > 23 || offsetMinutes > 59) return undefined;
    time -= sign * (offsetHours * 60 + offsetMinutes) * 60_000;
  }
  return Number.isNaN(time) ? undefined : new Date(time);
}

/**
 * Splits a JSON object's text into its top-level members, returning each value's raw text. The text must
 * already be known to be valid JSON (JSON.parse accepted it); later duplicates win, as in JSON.parse.
 */
export function topLevelRawValues(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let i = skipWs(text, 0);
  if (text[i] !== '{') throw new SyntaxError('expected an object');
  i = skipWs(text, i + 1);
  if (text[i] === '}') return out;
  for (;;) {
    const keyEnd = skipString(text, i);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipWs(text, keyEnd);
    if (text[i] !== ':') throw new SyntaxError('expected ":"');
    const valueStart = skipWs(text, i + 1);
    const valueEnd = skipValue(text, valueStart);
    out.delete(key);
    out.set(key, text.slice(valueStart, valueEnd));
    i = skipWs(text, valueEnd);
    if (text[i] === ',') {
      i = skipWs(text, i + 1);
      continue;
    }
    if (text[i] === '}') return out;
    throw new SyntaxError('expected "," or "}"');
  }
}

function skipWs(text: string, i: number): number {
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

/**
 * Where the JSON string starting with the quote at `start` ends (the index after its closing quote), or -1
 * when it is not terminated. Escapes are skipped, not checked.
 */
export function jsonStringEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length) {
    const c = text[i];
    if (c === '\\') i += 2;
    else if (c === '"') return i + 1;
    else i++;
  }
  return -1;
}

function skipString(text: string, i: number): number {
  if (text[i] !== '"') throw new SyntaxError('expected a string');
  const end = jsonStringEnd(text, i);
  if (end < 0) throw new SyntaxError('unterminated string');
  return end;
}

/** Skips one JSON value iteratively (no recursion, so deep nesting cannot overflow the stack). */
function skipValue(text: string, i: number): number {
  const first = text[i];
  if (first === '"') return skipString(text, i);
  if (first === '{' || first === '[') {
    let depth = 0;
    while (i < text.length) {
      const c = text[i];
      if (c === '"') {
        i = skipString(text, i);
        continue;
      }
      if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    throw new SyntaxError('unexpected end of JSON');
  }
  while (i < text.length && !',}] \n\r\t'.includes(text[i] as string)) i++;
  return i;
}
