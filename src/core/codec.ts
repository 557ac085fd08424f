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
  | {
      ok: true;
      job: Job;
      /** The payload as a value (what a handler receives as `data`), from the same parse. */
      data: unknown;
    }
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

  // JSON.parse accepted the text; one more pass finds the raw text of the payload and of unknown fields.
  // Without unknown fields it can stop after the payload, unless the rest of the text may hold another
  // "payload" key (where the last one counts): those bytes, or a \u escape that could spell it.
  let unknownFields = false;
  for (const key in doc) {
    if (!KNOWN_FIELDS.has(key)) {
      unknownFields = true;
      break;
    }
  }
  let payload = 'null';
  const extra: Array<[string, string]> = [];
  try {
    scanMembers(text, (key, start, end) => {
      if (key === 'payload') {
        payload = text.slice(start, end);
        return !unknownFields && !text.includes('"payload"', end) && !text.includes('\\u', end);
      }
      if (!KNOWN_FIELDS.has(key)) {
        // A later duplicate wins (as in JSON.parse) and keeps its own position.
        const earlier = extra.findIndex(([k]) => k === key);
        if (earlier >= 0) extra.splice(earlier, 1);
        extra.push([key, text.slice(start, end)]);
      }
      return false;
    });
  } catch (err) {
    return { ok: false, kind: 'invalid-json', reason: `invalid JSON: ${(err as Error).message}` };
  }
  // Every field is always present (scheduledFor as undefined when unset): jobs share one object shape.
  const job: Job = {
    id: doc.id as string,
    name: doc.name as string,
    description: optionalString(doc.description),
    payload,
    status: optionalString(doc.status),
    priority: normalizePriority(doc.priority),
    createdAt: optionalString(doc.created_at),
    updatedAt: optionalString(doc.updated_at),
    scheduledFor:
      typeof doc.scheduled_for === 'string' && doc.scheduled_for !== '' ? doc.scheduled_for : undefined,
    attempts: (doc.attempts as number | undefined) ?? 0,
    maxRetries: (doc.max_retries as number | undefined) ?? DEFAULT_MAX_RETRIES,
    error: optionalString(doc.error),
    routingKey: optionalString(doc.routing_key),
    extra,
  };
  return { ok: true, job, data: doc.payload === undefined ? null : doc.payload };
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

/** Characters JSON.stringify escapes in a string (lone surrogates included): rare in job fields. */
// eslint-disable-next-line no-control-regex -- control characters are exactly what must be escaped
const NEEDS_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/;

/** `value` as a JSON string, exactly as JSON.stringify writes it (without calling it in the common case). */
function quote(value: string): string {
  return NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`;
}

/** What a settlement changes in a job's document; anything not given is written as the job has it. */
export interface JobChanges {
  status?: JobStatus;
  updatedAt?: string;
  /** "" removes it. */
  scheduledFor?: string;
  attempts?: number;
  error?: string;
}

/**
 * Encodes a job the way the Go service orders its fields (readers must not depend on order); description
 * and error are omitted when empty, as Go does. Payload and unknown fields are written back verbatim.
 * `changes` are applied on the way (the worker settles jobs without copying them first).
 */
export function encodeJob(job: Job, changes?: JobChanges): string {
  const status = changes?.status ?? job.status;
  const updatedAt = changes?.updatedAt ?? job.updatedAt;
  const scheduledFor = changes?.scheduledFor ?? job.scheduledFor;
  const attempts = changes?.attempts ?? job.attempts;
  const error = changes?.error ?? job.error;
  let out = `{"id":${quote(job.id)},"name":${quote(job.name)}`;
  if (job.description !== '') out += `,"description":${quote(job.description)}`;
  out +=
    `,"payload":${job.payload},"status":${quote(status)},"priority":${quote(job.priority)}` +
    `,"created_at":${quote(job.createdAt)},"updated_at":${quote(updatedAt)}`;
  if (scheduledFor !== undefined && scheduledFor !== '') out += `,"scheduled_for":${quote(scheduledFor)}`;
  out += `,"attempts":${attempts},"max_retries":${job.maxRetries}`;
  if (error !== '') out += `,"error":${quote(error)}`;
  out += `,"routing_key":${quote(job.routingKey)}`;
  for (const [key, value] of job.extra) out += `,${quote(key)}:${value}`;
  return `${out}}`;
}

export interface NewJobOptions {
  id?: string;
  description?: string;
  priority?: Priority;
  routingKey?: string;
  maxRetries?: number;
  /** When set, the job is written with status `scheduled` and this time. */
  scheduledFor?: Date;
  /** The creation time, or its `toISOString()` text (a batch builds it once). */
  now?: Date | string;
}

/** Builds a new job; `payload` is raw JSON text (validate it with {@link assertJsonText}). */
export function newJob(name: string, payload: string, options: NewJobOptions = {}): Job {
  const now = typeof options.now === 'string' ? options.now : (options.now ?? new Date()).toISOString();
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
  // scheduledFor is set to undefined, not deleted: every job keeps one object shape (a deleted property
  // turns the object into a slow dictionary, which made this a twentieth of a `dlq requeue`).
  return {
    ...job,
    status: 'pending',
    attempts: 0,
    priority: options.priority ?? job.priority,
    scheduledFor: undefined,
    updatedAt: options.updatedAt ?? job.updatedAt,
  };
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

/** A UTF-16 surrogate without its other half: no UTF-8 byte sequence stands for it. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Returns `text` trimmed if it is one JSON value; throws a SyntaxError saying why otherwise. Text with a
 * lone surrogate is refused too: JSON.parse accepts one inside a string, but it cannot be stored as
 * UTF-8 (Redis would get U+FFFD instead, and the payload would not be the one given). Its escaped form
 * (`\ud800`) is plain JSON and is kept.
 */
export function assertJsonText(text: string): string {
  JSON.parse(text);
  const lone = LONE_SURROGATE.exec(text);
  if (lone) {
    const code = lone[0].charCodeAt(0).toString(16).toUpperCase();
    throw new SyntaxError(
      `unpaired UTF-16 surrogate U+${code} at position ${lone.index}: not storable as UTF-8`,
    );
  }
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
  scanMembers(text, (key, start, end) => {
    out.delete(key);
    out.set(key, text.slice(start, end));
    return false;
  });
  return out;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Calls `member` with each top-level member of a JSON object's text, in order: its key (unescaped) and
 * where its raw value starts and ends; stops early when `member` returns true. The text must already be
 * known to be valid JSON; throws a SyntaxError when it is not an object.
 */
function scanMembers(text: string, member: (key: string, start: number, end: number) => boolean): void {
  let i = skipWs(text, 0);
  if (text.charCodeAt(i) !== 0x7b) throw new SyntaxError('expected an object');
  i = skipWs(text, i + 1);
  if (text.charCodeAt(i) === 0x7d) return;
  for (;;) {
    const keyEnd = skipString(text, i);
    const rawKey = text.slice(i + 1, keyEnd - 1);
    const key = rawKey.includes('\\') ? (JSON.parse(text.slice(i, keyEnd)) as string) : rawKey;
    i = skipWs(text, keyEnd);
    if (text.charCodeAt(i) !== 0x3a) throw new SyntaxError('expected ":"');
    const valueStart = skipWs(text, i + 1);
    const valueEnd = skipValue(text, valueStart);
    if (member(key, valueStart, valueEnd)) return;
    i = skipWs(text, valueEnd);
    const c = text.charCodeAt(i);
    if (c === 0x2c) {
      i = skipWs(text, i + 1);
      continue;
    }
    if (c === 0x7d) return;
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
  let from = start + 1;
  for (;;) {
    const q = text.indexOf('"', from);
    if (q < 0) return -1;
    // The quote closes the string unless an odd number of backslashes precedes it.
    let b = q - 1;
    while (b > start && text.charCodeAt(b) === BACKSLASH) b--;
    if ((q - 1 - b) % 2 === 0) return q + 1;
    from = q + 1;
  }
}

function skipString(text: string, i: number): number {
  if (text.charCodeAt(i) !== QUOTE) throw new SyntaxError('expected a string');
  const end = jsonStringEnd(text, i);
  if (end < 0) throw new SyntaxError('unterminated string');
  return end;
}

/** Skips one JSON value iteratively (no recursion, so deep nesting cannot overflow the stack). */
function skipValue(text: string, i: number): number {
  const first = text.charCodeAt(i);
  if (first === QUOTE) return skipString(text, i);
  if (first === 0x7b || first === 0x5b) {
    let depth = 0;
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === QUOTE) {
        i = skipString(text, i);
        continue;
      }
      if (c === 0x7b || c === 0x5b) depth++;
      else if (c === 0x7d || c === 0x5d) {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    throw new SyntaxError('unexpected end of JSON');
  }
  // A number, true, false or null: up to the next delimiter.
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x2c || c === 0x7d || c === 0x5d || c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) break;
    i++;
  }
  return i;
}
