/**
 * The job codec against the real documents in test/fixtures/vectors (Go service, Python and TypeScript
 * SDKs) and against hand-made broken input. No Redis.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  assertJsonText,
  decodeJob,
  DEFAULT_MAX_RETRIES,
  encodeJob,
  newJob,
  parseTimestamp,
  topLevelRawValues,
  type DecodeResult,
  type Job,
} from '../../src/core/codec.js';

interface VectorEntry {
  type: string;
  value: unknown;
  ttl: number;
  scenario?: string;
}

interface VectorFile {
  keys: Record<string, VectorEntry>;
  variants?: Record<string, string>;
  go_rewrites_of_sdk_documents?: Record<string, Record<string, Record<string, string>>>;
}

interface LabelledDoc {
  label: string;
  text: string;
}

function loadVectors(name: string): VectorFile {
  return JSON.parse(
    readFileSync(new URL(`../fixtures/vectors/${name}.json`, import.meta.url), 'utf8'),
  ) as VectorFile;
}

const go = loadVectors('go-original');
const python = loadVectors('python-sdk');
const typescript = loadVectors('typescript-sdk');

function jobDocuments(file: VectorFile, producer: string): LabelledDoc[] {
  return Object.entries(file.keys)
    .filter(([key, entry]) => key.startsWith('bananas:job:') && entry.type === 'string')
    .map(([key, entry]) => ({ label: `${producer} ${key}`, text: entry.value as string }));
}

const rewrites = go.go_rewrites_of_sdk_documents ?? {};
const rewriteEntries = Object.entries(rewrites).flatMap(([producer, docs]) =>
  Object.entries(docs).map(([key, forms]) => ({ producer, key, forms })),
);

const goKeyDocs = jobDocuments(go, 'go');
const variantDocs: LabelledDoc[] = Object.entries(go.variants ?? {}).map(([name, text]) => ({
  label: `go variant ${name}`,
  text,
}));
const rewriteInputs: LabelledDoc[] = rewriteEntries.map(({ producer, key, forms }) => ({
  label: `rewrite input ${producer} ${key}`,
  text: forms.input as string,
}));
/** Documents Go wrote back after reading an SDK document (mover / Complete). */
const goRewriteOutputs: LabelledDoc[] = rewriteEntries.flatMap(({ producer, key, forms }) =>
  (['after_go_mover', 'after_go_complete'] as const)
    .filter((form) => forms[form] !== undefined)
    .map((form) => ({ label: `${form} ${producer} ${key}`, text: forms[form] as string })),
);

const allStoredDocs = [
  ...goKeyDocs,
  ...jobDocuments(python, 'python'),
  ...jobDocuments(typescript, 'typescript'),
];
const everyDoc = [...allStoredDocs, ...variantDocs, ...rewriteInputs, ...goRewriteOutputs];
const isJobText = (text: string): boolean => 'name' in (JSON.parse(text) as Record<string, unknown>);
const jobDocs = everyDoc.filter((d) => isJobText(d.text));
const stubDocs = allStoredDocs.filter((d) => !isJobText(d.text));
/** Job documents written by Go's encoding/json (field order, omitempty, HTML escaping). */
const goWrittenJobDocs = [...goKeyDocs.filter((d) => isJobText(d.text)), ...variantDocs, ...goRewriteOutputs];
const sdkJobDocs = [
  ...jobDocuments(python, 'python'),
  ...jobDocuments(typescript, 'typescript'),
  ...rewriteInputs,
];

const GO_ORDER = [
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
];

/** The three producers' payload bytes for the same logical payload (from the vectors). */
const PY_PAYLOAD = String.raw`{"to": "user@example.com", "html": "<b>Tom & Jerry</b>", "name": "Jos\u00e9 \u2603", "count": 3, "ratio": 1.0, "nested": {"a": [1, 2.5, null, true]}}`;
const GO_PAYLOAD = String.raw`{"to":"user@example.com","html":"\u003cb\u003eTom \u0026 Jerry\u003c/b\u003e","name":"José ☃","count":3,"ratio":1.0,"nested":{"a":[1,2.5,null,true]}}`;
const TS_PAYLOAD = `{"to":"user@example.com","html":"<b>Tom & Jerry</b>","name":"José ☃","count":3,"ratio":1,"nested":{"a":[1,2.5,null,true]}}`;

function decodeOk(stored: string | Buffer): Job {
  const result = decodeJob(stored);
  if (!result.ok) throw new Error(`expected a job, got ${result.kind}: ${result.reason}`);
  return result.job;
}

function decodeFailure(stored: string | Buffer): Extract<DecodeResult, { ok: false }> {
  const result = decodeJob(stored);
  if (result.ok) throw new Error(`expected a decode failure, got job ${JSON.stringify(result.job)}`);
  return result;
}

/**
 * The payload's raw text as stored, found without the codec: every vector writes `status` right after
 * `payload`, so the payload is what lies between them.
 */
function rawPayloadOf(text: string): string {
  const m = /"payload": ?(.*?), ?"status":/s.exec(text);
  if (!m || m[1] === undefined) throw new Error(`no payload in ${text}`);
  return m[1];
}

function keyOrder(text: string): string[] {
  return [...topLevelRawValues(text).keys()];
}

function docOf(text: string): Record<string, unknown> {
  return JSON.parse(text) as Record<string, unknown>;
}

describe('the vectors', () => {
  it('hold the documents these tests are about', () => {
    expect(goKeyDocs.length).toBe(12);
    expect(stubDocs.map((d) => d.label).sort()).toEqual([
      'go bananas:job:4b5c6d7e-8f90-4a1b-8c2d-3e4f5a6b7c8d',
      'go bananas:job:6c7d8e9f-0a1b-4c2d-9e3f-4a5b6c7d8e9f',
      'go bananas:job:8e9f0a1b-2c3d-4e5f-8a6b-7c8d9e0f1a2b',
    ]);
    expect(variantDocs.length).toBe(3);
    expect(rewriteInputs.length).toBe(14);
    expect(go.keys['bananas:job:0b6f1a52-3c1e-4d8a-9f2e-6a7d5c4b3e21']?.value).toContain(GO_PAYLOAD);
    expect(python.keys['bananas:job:1e1b3409-194c-4abc-a8c6-7fe92d50e8c5']?.value).toContain(PY_PAYLOAD);
    expect(typescript.keys['bananas:job:1af2198b-3f62-42a3-8067-176102437802']?.value).toContain(TS_PAYLOAD);
  });
});

describe('decodeJob on the vectors', () => {
  it.each(everyDoc.map((d) => [d.label, d.text]))('%s decodes without throwing', (_label, text) => {
    let result: DecodeResult | undefined;
    expect(() => {
      result = decodeJob(text);
    }).not.toThrow();
    expect(result?.ok ? 'job' : result?.kind).toBe(isJobText(text) ? 'job' : 'stub');
  });

  it.each(jobDocs.map((d) => [d.label, d.text]))(
    '%s decodes with the stored field values',
    (_label, text) => {
      const doc = docOf(text);
      const job = decodeOk(text);
      expect(job.id).toBe(doc.id);
      expect(job.name).toBe(doc.name);
      expect(job.description).toBe(doc.description ?? '');
      expect(job.error).toBe(doc.error ?? '');
      expect(job.status).toBe(doc.status);
      expect(job.priority).toBe(doc.priority);
      expect(job.createdAt).toBe(doc.created_at);
      expect(job.updatedAt).toBe(doc.updated_at);
      expect(job.attempts).toBe(doc.attempts);
      expect(job.maxRetries).toBe(doc.max_retries);
      expect(job.routingKey).toBe(doc.routing_key);
      if ('scheduled_for' in doc) expect(job.scheduledFor).toBe(doc.scheduled_for);
      else expect(job.scheduledFor).toBeUndefined();
      expect(job.payload).toBe(rawPayloadOf(text));
      expect(JSON.parse(job.payload)).toEqual(doc.payload);
      expect(job.extra).toEqual([]);
    },
  );

  it('reads a fresh Go job: escaped description decoded, description/error "" when absent', () => {
    const job = decodeOk(go.keys['bananas:job:0b6f1a52-3c1e-4d8a-9f2e-6a7d5c4b3e21']?.value as string);
    expect(job).toMatchObject({
      id: '0b6f1a52-3c1e-4d8a-9f2e-6a7d5c4b3e21',
      name: 'send_email',
      description: 'Welcome email <b>new</b> & co',
      payload: GO_PAYLOAD,
      status: 'pending',
      priority: 'normal',
      attempts: 0,
      maxRetries: 3,
      error: '',
      routingKey: 'default',
    });
    expect(job.scheduledFor).toBeUndefined();

    const routed = decodeOk(go.keys['bananas:job:5d0c2f8e-7a41-4b6e-9c3d-2e1f0a9b8c7d']?.value as string);
    expect(routed).toMatchObject({ description: '', error: '', routingKey: 'gpu', priority: 'high' });
  });

  it('reads a Go job waiting for a retry with its scheduled_for, attempts and error', () => {
    const job = decodeOk(go.keys['bananas:job:9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d']?.value as string);
    expect(job.scheduledFor).toBe('2025-11-10T04:16:36.5Z');
    expect(job.attempts).toBe(1);
    expect(job.error).toBe('smtp: connection refused');
    expect(parseTimestamp(job.scheduledFor)?.getTime()).toBe(Date.UTC(2025, 10, 10, 4, 16, 36, 500));
  });

  it('reads a dead-lettered Go job (attempts == max_retries)', () => {
    const job = decodeOk(go.keys['bananas:job:7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918']?.value as string);
    expect(job).toMatchObject({ status: 'failed', attempts: 3, maxRetries: 3, error: 'card declined' });
  });

  it('reads the cron job with an empty id, max_retries 0 (not the default), status "" and zero times', () => {
    const job = decodeOk(go.keys['bananas:job:']?.value as string);
    expect(job.id).toBe('');
    expect(job.name).toBe('daily_report');
    expect(job.maxRetries).toBe(0);
    expect(job.maxRetries).not.toBe(DEFAULT_MAX_RETRIES);
    expect(job.status).toBe('');
    expect(job.routingKey).toBe('');
    expect(job.createdAt).toBe('0001-01-01T00:00:00Z');
    expect(parseTimestamp(job.createdAt)?.toISOString()).toBe('0001-01-01T00:00:00.000Z');
    expect(job.payload).toBe('{"kind":"daily"}');

    const nilPayload = decodeOk(go.variants?.cron_job_nil_payload as string);
    expect(nilPayload.payload).toBe('null');
    expect(nilPayload.maxRetries).toBe(0);
  });

  it('reads SDK jobs: "" description/error/routing_key, status "scheduled", scheduled_for only when written', () => {
    const py = decodeOk(python.keys['bananas:job:1e1b3409-194c-4abc-a8c6-7fe92d50e8c5']?.value as string);
    expect(py).toMatchObject({ description: '', error: '', routingKey: '', payload: PY_PAYLOAD });
    expect(py.scheduledFor).toBeUndefined();

    const scheduled = decodeOk(
      python.keys['bananas:job:5122b91c-2631-474a-bbb4-25dcc6e15f34']?.value as string,
    );
    expect(scheduled.status).toBe('scheduled');
    expect(scheduled.scheduledFor).toBe('2030-01-02T03:04:05.678901+00:00');

    const ts = decodeOk(typescript.keys['bananas:job:52e84ffd-ff9e-49c2-aa2a-c3fb0a3c43ce']?.value as string);
    expect(ts).toMatchObject({
      routingKey: 'gpu',
      priority: 'low',
      scheduledFor: '2030-01-02T03:04:05.000Z',
    });
  });

  it("reads every SDK scheduled_for as the instant of the job's sorted-set score (naive Python time as UTC)", () => {
    let checked = 0;
    for (const file of [python, typescript]) {
      const zset = file.keys['bananas:queue:scheduled']?.value as Array<{ member: string; score: string }>;
      for (const { member, score } of zset) {
        const job = decodeOk(file.keys[`bananas:job:${member}`]?.value as string);
        const at = parseTimestamp(job.scheduledFor);
        expect(at, `${member} ${job.scheduledFor}`).toBeDefined();
        // Timestamps are read to the millisecond; Python's scores carry microseconds.
        expect(Math.abs((at as Date).getTime() - Number(score) * 1000)).toBeLessThan(1);
        checked++;
      }
    }
    expect(checked).toBe(6);
  });

  it.each(stubDocs.map((d) => [d.label, d.text]))(
    '%s is a stub carrying its id and error',
    (_label, text) => {
      const doc = docOf(text);
      const failure = decodeFailure(text);
      expect(failure.kind).toBe('stub');
      expect(failure.stub?.id).toBe(doc.id);
      expect(failure.stub?.error).toBe(doc.error);
      expect(failure.stub?.corruptedData).toBe(doc.corrupted_data);
    },
  );

  it('decodes the missing-document stub without corruptedData and the unmarshal stubs with it', () => {
    const missing = decodeFailure(
      go.keys['bananas:job:4b5c6d7e-8f90-4a1b-8c2d-3e4f5a6b7c8d']?.value as string,
    );
    expect(missing.kind).toBe('stub');
    expect(missing.stub).toEqual({
      id: '4b5c6d7e-8f90-4a1b-8c2d-3e4f5a6b7c8d',
      error: 'Job data not found (corrupted reference)',
    });

    const unmarshal = decodeFailure(
      go.keys['bananas:job:6c7d8e9f-0a1b-4c2d-9e3f-4a5b6c7d8e9f']?.value as string,
    );
    expect(unmarshal.kind).toBe('stub');
    expect(unmarshal.stub?.id).toBe('6c7d8e9f-0a1b-4c2d-9e3f-4a5b6c7d8e9f');
    expect(unmarshal.stub?.error).toMatch(/^Failed to unmarshal job: /);
    expect(unmarshal.stub?.corruptedData).toBe(
      '{"id":"6c7d8e9f-0a1b-4c2d-9e3f-4a5b6c7d8e9f","name":"x","payload":{oops}}',
    );

    const truncated = decodeFailure(
      go.keys['bananas:job:8e9f0a1b-2c3d-4e5f-8a6b-7c8d9e0f1a2b']?.value as string,
    );
    expect(truncated.kind).toBe('stub');
    expect(truncated.stub?.corruptedData).toMatch(/^\{"id":"8e9f0a1b.*<row\/><\.\.\.$/s);
  });
});

describe('encodeJob', () => {
  it.each(jobDocs.map((d) => [d.label, d.text]))(
    '%s: payload bytes kept, Go field order, empty description/error omitted, re-decodes equal',
    (_label, text) => {
      const job = decodeOk(text);
      const encoded = encodeJob(job);
      expect(encoded).toContain(`"payload":${rawPayloadOf(text)},"status":`);
      const expectedOrder = GO_ORDER.filter((key) => {
        if (key === 'description') return job.description !== '';
        if (key === 'error') return job.error !== '';
        if (key === 'scheduled_for') return job.scheduledFor !== undefined;
        return true;
      });
      expect(keyOrder(encoded)).toEqual(expectedOrder);
      expect(decodeOk(encoded)).toEqual(job);

      const doc = docOf(text);
      const out = docOf(encoded);
      for (const key of ['id', 'name', 'payload', 'status', 'priority', 'created_at', 'updated_at']) {
        expect(out[key]).toEqual(doc[key]);
      }
      for (const key of ['attempts', 'max_retries', 'routing_key', 'scheduled_for']) {
        expect(out[key]).toEqual(doc[key]);
      }
      expect(out.description ?? '').toBe(doc.description ?? '');
      expect(out.error ?? '').toBe(doc.error ?? '');
    },
  );

  it.each(goWrittenJobDocs.map((d) => [d.label, d.text]))(
    "%s: a Go-written document re-encodes byte for byte (except Go's HTML escapes outside the payload)",
    (_label, text) => {
      const payload = rawPayloadOf(text);
      const expected = text
        .replace(payload, '\u0000PAYLOAD\u0000')
        .replaceAll('\\u003c', '<')
        .replaceAll('\\u003e', '>')
        .replaceAll('\\u0026', '&')
        .replace('\u0000PAYLOAD\u0000', payload);
      expect(encodeJob(decodeOk(text))).toBe(expected);
    },
  );

  it('keeps Python payload bytes (spaces, \\u00e9 escapes, 1.0) and moves scheduled_for to its Go place', () => {
    const scheduled = python.keys['bananas:job:5122b91c-2631-474a-bbb4-25dcc6e15f34']?.value as string;
    expect(encodeJob(decodeOk(scheduled))).toBe(
      '{"id":"5122b91c-2631-474a-bbb4-25dcc6e15f34","name":"reminder","description":"Reminder",' +
        '"payload":{"user_id": 123},"status":"scheduled","priority":"normal",' +
        '"created_at":"2026-11-28T14:52:29.196975+00:00","updated_at":"2026-11-28T14:52:29.196975+00:00",' +
        '"scheduled_for":"2030-01-02T03:04:05.678901+00:00","attempts":0,"max_retries":3,"routing_key":""}',
    );

    const immediate = python.keys['bananas:job:1e1b3409-194c-4abc-a8c6-7fe92d50e8c5']?.value as string;
    expect(encodeJob(decodeOk(immediate))).toBe(
      `{"id":"1e1b3409-194c-4abc-a8c6-7fe92d50e8c5","name":"email_normal","payload":${PY_PAYLOAD},` +
        '"status":"pending","priority":"normal","created_at":"2026-11-28T14:52:29.195893+00:00",' +
        '"updated_at":"2026-11-28T14:52:29.195893+00:00","attempts":0,"max_retries":3,"routing_key":""}',
    );
  });

  it("keeps Go's \\u003c escapes and the TypeScript SDK's raw UTF-8 in the payload", () => {
    const goDoc = go.keys['bananas:job:0b6f1a52-3c1e-4d8a-9f2e-6a7d5c4b3e21']?.value as string;
    expect(encodeJob(decodeOk(goDoc))).toContain(`"payload":${GO_PAYLOAD},`);
    const tsDoc = typescript.keys['bananas:job:1af2198b-3f62-42a3-8067-176102437802']?.value as string;
    expect(encodeJob(decodeOk(tsDoc))).toContain(`"payload":${TS_PAYLOAD},`);
  });

  it.each(sdkJobDocs.map((d) => [d.label, d.text]))(
    '%s: SDK "" description/error are omitted',
    (_label, text) => {
      const doc = docOf(text);
      const out = docOf(encodeJob(decodeOk(text)));
      expect('description' in out).toBe(doc.description !== '');
      expect('error' in out).toBe(false);
      expect(out.routing_key).toBe(doc.routing_key);
    },
  );

  it('keeps big integers, number spelling, key order and escapes of a payload verbatim', () => {
    const payload =
      '{ "big": 12345678901234567890123, "f": 1.10, "e": 1E+400, "z": -0.0, "k": "\\u00e9\\ud83c\\udf4c\\"}{",' +
      ' "order": {"z": 1, "a": 2, "1": 3}, "arr": [ ] }';
    const text = `{"id":"p1","name":"n","payload":${payload},"status":"pending","priority":"high","attempts":0,"max_retries":3}`;
    const job = decodeOk(text);
    expect(job.payload).toBe(payload);
    const encoded = encodeJob(job);
    expect(encoded).toContain(`"payload":${payload},"status":"pending"`);
    expect(decodeOk(encoded).payload).toBe(payload);
    // The same document through JSON.parse/JSON.stringify would not survive:
    expect(JSON.stringify(JSON.parse(payload))).not.toBe(payload);
  });

  it('keeps unknown top-level fields verbatim and in order, after the known ones', () => {
    const trace = '{"b": 1.0, "a": [ 1 ,2 ], "s": "}\\"{"}';
    const text =
      `{"trace_id": "abc", "id": "u1", "name": "n", "trace": ${trace}, "payload": {}, ` +
      `"big": 12345678901234567890123, "flag": true, "nothing": null, "status": "pending"}`;
    const job = decodeOk(text);
    expect(job.extra).toEqual([
      ['trace_id', '"abc"'],
      ['trace', trace],
      ['big', '12345678901234567890123'],
      ['flag', 'true'],
      ['nothing', 'null'],
    ]);
    const encoded = encodeJob(job);
    expect(encoded).toBe(
      '{"id":"u1","name":"n","payload":{},"status":"pending","priority":"normal","created_at":"",' +
        '"updated_at":"","attempts":0,"max_retries":3,"routing_key":"",' +
        `"trace_id":"abc","trace":${trace},"big":12345678901234567890123,"flag":true,"nothing":null}`,
    );
    expect(decodeOk(encoded)).toEqual(job);
  });

  it('writes description and error when set, and omits scheduled_for when unset', () => {
    const job = decodeOk(
      '{"id":"a","name":"n","payload":1,"description":"d","error":"e","scheduled_for":"x"}',
    );
    const withAll = encodeJob(job);
    expect(keyOrder(withAll)).toEqual(GO_ORDER);
    delete job.scheduledFor;
    expect(keyOrder(encodeJob(job))).toEqual(GO_ORDER.filter((k) => k !== 'scheduled_for'));
    expect(keyOrder(encodeJob({ ...job, description: '', error: '' }))).toEqual(
      GO_ORDER.filter((k) => !['scheduled_for', 'description', 'error'].includes(k)),
    );
  });

  it('writes strings as valid JSON whatever they contain', () => {
    const job = newJob('weird "name"\n\\', '{}', { id: 'id-\u2028-\ud800', description: '</script>&' });
    job.error = 'line1\nline2\t"quoted"';
    const back = decodeOk(encodeJob(job));
    expect(back).toEqual(job);
  });
});

describe('decodeJob on broken input', () => {
  const base = { id: 'b1', name: 'send_email', payload: {}, attempts: 0, max_retries: 3 };
  const withFields = (fields: Record<string, unknown>): string => JSON.stringify({ ...base, ...fields });

  it.each([
    ['empty string', ''],
    ['not JSON', 'hello'],
    ['truncated object', '{"id":"x","name":"n"'],
    ['trailing comma', '{"id":"x","name":"n",}'],
    ['single quotes', "{'id':'x','name':'n'}"],
    ['two documents', '{"id":"x","name":"n"}{}'],
    ['unterminated string', '{"id":"x'],
    ['NaN', '{"id":"x","name":"n","attempts":NaN}'],
  ])('%s → invalid-json', (_label, text) => {
    const failure = decodeFailure(text);
    expect(failure.kind).toBe('invalid-json');
    expect(failure.reason).not.toBe('');
  });

  it.each([
    ['array', '[]'],
    ['array of a job', `[${withFields({})}]`],
    ['null', 'null'],
    ['number', '42'],
    ['string', '"a job"'],
    ['boolean', 'true'],
    ['empty object', '{}'],
    ['id only', '{"id":"x"}'],
    ['name missing', JSON.stringify({ id: 'x', payload: {} })],
    ['name empty', withFields({ name: '' })],
    ['name not a string', withFields({ name: 42 })],
    ['id missing', JSON.stringify({ name: 'n', payload: {} })],
    ['id a number', withFields({ id: 123 })],
    ['attempts "3"', withFields({ attempts: '3' })],
    ['attempts -1', withFields({ attempts: -1 })],
    ['attempts 1.5', withFields({ attempts: 1.5 })],
    ['attempts null', withFields({ attempts: null })],
    ['attempts beyond 2^53', withFields({ attempts: 2 ** 60 })],
    ['max_retries "3"', withFields({ max_retries: '3' })],
    ['max_retries -1', withFields({ max_retries: -1 })],
    ['max_retries 2.5', withFields({ max_retries: 2.5 })],
    ['status a number', withFields({ status: 1 })],
    ['priority a number', withFields({ priority: 1 })],
    ['description an object', withFields({ description: {} })],
    ['routing_key an array', withFields({ routing_key: ['gpu'] })],
    ['created_at a number', withFields({ created_at: 1762748196 })],
    ['scheduled_for a boolean', withFields({ scheduled_for: true })],
    ['error a number', withFields({ error: 1 })],
  ])('%s → not-a-job', (_label, text) => {
    const failure = decodeFailure(text);
    expect(failure.kind).toBe('not-a-job');
    expect(failure.reason).not.toBe('');
  });

  it('names the offending field in the reason', () => {
    expect(decodeFailure(withFields({ attempts: '3' })).reason).toContain('attempts');
    expect(decodeFailure(withFields({ max_retries: -1 })).reason).toContain('max_retries');
    expect(decodeFailure(withFields({ name: '' })).reason).toContain('name');
  });

  it('treats a document with id and error but no name as a stub, and one without error as not a job', () => {
    expect(decodeFailure('{"id":"s1","error":"boom"}')).toMatchObject({
      kind: 'stub',
      stub: { id: 's1', error: 'boom' },
    });
    expect(decodeFailure('{"id":"s1","error":"boom","corrupted_data":"{bad"}').stub).toEqual({
      id: 's1',
      error: 'boom',
      corruptedData: '{bad',
    });
    expect(decodeFailure('{"error":"boom"}').kind).toBe('not-a-job');
    expect(decodeFailure('{"id":"s1","error":5}').kind).toBe('not-a-job');
  });

  it('accepts minimal documents, filling defaults', () => {
    const job = decodeOk('{"id":"m1","name":"n"}');
    expect(job).toEqual({
      id: 'm1',
      name: 'n',
      description: '',
      payload: 'null',
      status: '',
      priority: 'normal',
      createdAt: '',
      updatedAt: '',
      attempts: 0,
      maxRetries: DEFAULT_MAX_RETRIES,
      error: '',
      routingKey: '',
      extra: [],
    });
    expect(encodeJob(job)).toContain('"payload":null,');
  });

  it('reads null string fields as "" and an empty scheduled_for as absent', () => {
    const job = decodeOk(
      withFields({ description: null, error: null, routing_key: null, scheduled_for: '' }),
    );
    expect(job).toMatchObject({ description: '', error: '', routingKey: '' });
    expect(job.scheduledFor).toBeUndefined();
  });

  it.each([
    ['urgent', 'normal'],
    ['HIGH', 'normal'],
    [' high', 'normal'],
    ['', 'normal'],
    [null, 'normal'],
    ['high', 'high'],
    ['normal', 'normal'],
    ['low', 'low'],
  ])('normalizes priority %j to %s', (priority, expected) => {
    expect(decodeOk(withFields({ priority })).priority).toBe(expected);
  });

  it('normalizes a missing priority to normal and writes the normalized value', () => {
    const job = decodeOk(JSON.stringify(base));
    expect(job.priority).toBe('normal');
    expect(docOf(encodeJob(decodeOk(withFields({ priority: 'urgent' })))).priority).toBe('normal');
  });

  it('refuses a Buffer that is not UTF-8, and reads one that is', () => {
    const bad = Buffer.concat([
      Buffer.from('{"id":"u","name":"'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('","payload":{}}'),
    ]);
    const failure = decodeFailure(bad);
    expect(failure.kind).toBe('invalid-json');
    expect(failure.reason).toMatch(/UTF-8/);
    expect(decodeFailure(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])).kind).toBe('invalid-json');
    // a multi-byte character cut at the end
    expect(decodeFailure(Buffer.from([...Buffer.from('{"id":"u","name":"J'), 0xe2, 0x98])).kind).toBe(
      'invalid-json',
    );

    const goDoc = go.keys['bananas:job:0b6f1a52-3c1e-4d8a-9f2e-6a7d5c4b3e21']?.value as string;
    expect(decodeOk(Buffer.from(goDoc, 'utf8'))).toEqual(decodeOk(goDoc));
    expect(decodeOk(Buffer.from(goDoc, 'utf8')).payload).toContain('José ☃');
  });

  it('reads a payload nested 10,000 levels deep and writes it back unchanged', () => {
    const arrays = '['.repeat(10_000) + ']'.repeat(10_000);
    const objects = '{"a":'.repeat(10_000) + 'null' + '}'.repeat(10_000);
    for (const payload of [arrays, objects]) {
      const text = `{"id":"deep","name":"n","payload":${payload},"status":"pending"}`;
      const job = decodeOk(text);
      expect(job.payload).toBe(payload);
      expect(decodeOk(encodeJob(job)).payload).toBe(payload);
    }
  });

  it('classifies deeply nested non-jobs without throwing', () => {
    expect(decodeFailure('['.repeat(10_000) + ']'.repeat(10_000)).kind).toBe('not-a-job');
    expect(decodeFailure('{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000)).kind).toBe('not-a-job');
    expect(decodeFailure('{"id":"d","name":"n","payload":' + '['.repeat(10_000)).kind).toBe('invalid-json');
    const unknownDeep = `{"id":"d","name":"n","x":${'['.repeat(10_000)}${']'.repeat(10_000)}}`;
    expect(encodeJob(decodeOk(unknownDeep))).toContain(`"x":${'['.repeat(10_000)}`);
  });

  it('handles 5 MB strings', () => {
    const big = 'x'.repeat(5 * 1024 * 1024);
    const job = decodeOk(`{"id":"big","name":"n","description":"${big}","payload":"${big}"}`);
    expect(job.description.length).toBe(big.length);
    expect(job.payload).toBe(`"${big}"`);
    expect(encodeJob(job).length).toBeGreaterThan(2 * big.length);
    expect(decodeFailure(big).kind).toBe('invalid-json');
    expect(decodeFailure(`"${big}"`).kind).toBe('not-a-job');
    expect(decodeFailure(`{"id":"big","name":"${big}`).kind).toBe('invalid-json');
  });

  it('gives invalid-json for every proper prefix of a real document', () => {
    const text = python.keys['bananas:job:5122b91c-2631-474a-bbb4-25dcc6e15f34']?.value as string;
    for (let end = 0; end < text.length; end++) {
      expect(decodeJob(text.slice(0, end)).ok, `prefix of length ${end}`).toBe(false);
      expect(decodeFailure(text.slice(0, end)).kind).toBe('invalid-json');
    }
  });

  it('never throws on randomly damaged documents, and whatever it accepts round-trips', () => {
    // Deterministic LCG so a failure is reproducible.
    let seed = 0x5eed;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const alphabet = '{}[]":,\\ 0-1.eEtnu"a';
    const sources = jobDocs.map((d) => d.text);
    let accepted = 0;
    for (let round = 0; round < 3000; round++) {
      const source = sources[rand(sources.length)] as string;
      const chars = [...source];
      const edits = 1 + rand(3);
      for (let e = 0; e < edits; e++) {
        const at = rand(chars.length);
        const op = rand(3);
        const c = alphabet[rand(alphabet.length)] as string;
        if (op === 0) chars[at] = c;
        else if (op === 1) chars.splice(at, 0, c);
        else chars.splice(at, 1);
      }
      const text = chars.join('');
      let result: DecodeResult | undefined;
      expect(() => {
        result = decodeJob(text);
      }, text).not.toThrow();
      if (result?.ok) {
        accepted++;
        const doc = docOf(text);
        expect(JSON.parse(result.job.payload), text).toEqual(doc.payload ?? null);
        const encoded = encodeJob(result.job);
        expect(decodeOk(encoded), text).toEqual(result.job);
      } else {
        let parses = true;
        try {
          JSON.parse(text);
        } catch {
          parses = false;
        }
        if (parses) expect(['not-a-job', 'stub'], text).toContain(result?.kind);
        else expect(result?.kind, text).toBe('invalid-json');
      }
    }
    expect(accepted).toBeGreaterThan(100);
  });
});

describe('newJob', () => {
  it('builds a pending Go-compatible job with defaults', () => {
    const now = new Date('2025-11-10T04:16:33.123Z');
    const job = newJob('send_email', '{"to":"a@b.c"}', { now });
    expect(job.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(job).toMatchObject({
      name: 'send_email',
      description: '',
      payload: '{"to":"a@b.c"}',
      status: 'pending',
      priority: 'normal',
      createdAt: '2025-11-10T04:16:33.123Z',
      updatedAt: '2025-11-10T04:16:33.123Z',
      attempts: 0,
      maxRetries: 3,
      error: '',
      routingKey: 'default',
      extra: [],
    });
    expect(job.scheduledFor).toBeUndefined();
    expect(newJob('x', 'null').id).not.toBe(newJob('x', 'null').id);
  });

  it('marks a delayed job scheduled and keeps maxRetries 0', () => {
    const job = newJob('n', '{}', {
      id: 'fixed',
      maxRetries: 0,
      priority: 'high',
      routingKey: 'gpu',
      scheduledFor: new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 678)),
    });
    expect(job).toMatchObject({ id: 'fixed', maxRetries: 0, status: 'scheduled', routingKey: 'gpu' });
    expect(job.scheduledFor).toBe('2030-01-02T03:04:05.678Z');
    expect(decodeOk(encodeJob(job))).toEqual(job);
  });
});

describe('assertJsonText', () => {
  it('returns valid JSON trimmed and throws a SyntaxError otherwise', () => {
    expect(assertJsonText('  {"a": 1.0}\n')).toBe('{"a": 1.0}');
    expect(assertJsonText('12345678901234567890123')).toBe('12345678901234567890123');
    expect(() => assertJsonText('{a:1}')).toThrow(SyntaxError);
    expect(() => assertJsonText('')).toThrow(SyntaxError);
    // A raw lone surrogate cannot be stored as UTF-8; its escape, and a proper pair, can.
    expect(() => assertJsonText('{"s":"a\ud800b"}')).toThrow(
      /unpaired UTF-16 surrogate U\+D800 at position 7/,
    );
    expect(() => assertJsonText('"\udc00"')).toThrow(/U\+DC00 at position 1/);
    expect(assertJsonText('{"s":"\\ud800"}')).toBe('{"s":"\\ud800"}');
    expect(assertJsonText('"🍌"')).toBe('"🍌"');
  });
});

describe('parseTimestamp', () => {
  const base = Date.UTC(2025, 10, 10, 4, 16, 33);

  it.each([
    ['2025-11-10T04:16:33Z', 0],
    ['2025-11-10T04:16:33.1Z', 100],
    ['2025-11-10T04:16:33.12Z', 120],
    ['2025-11-10T04:16:33.123Z', 123],
    ['2025-11-10T04:16:33.1234Z', 123],
    ['2025-11-10T04:16:33.12345Z', 123],
    ['2025-11-10T04:16:33.123456Z', 123],
    ['2025-11-10T04:16:33.1234567Z', 123],
    ['2025-11-10T04:16:33.12345678Z', 123],
    ['2025-11-10T04:16:33.987654321Z', 987],
    ['2025-11-10T04:16:33.000Z', 0],
    ['2025-11-10T04:16:33.999999999Z', 999],
  ])('reads Go/JS fractions: %s', (text, ms) => {
    expect(parseTimestamp(text)?.getTime()).toBe(base + ms);
  });

  it('reads offsets: Go local "+05:30", Python "+00:00", negative offsets', () => {
    expect(parseTimestamp('2025-11-10T09:46:33.1234567+05:30')?.toISOString()).toBe(
      '2025-11-10T04:16:33.123Z',
    );
    expect(parseTimestamp('2026-11-28T14:52:29.195893+00:00')?.toISOString()).toBe(
      '2026-11-28T14:52:29.195Z',
    );
    expect(parseTimestamp('2030-01-02T08:34:05.250000+05:30')?.toISOString()).toBe(
      '2030-01-02T03:04:05.250Z',
    );
    expect(parseTimestamp('2025-11-10T23:00:00-05:00')?.toISOString()).toBe('2025-11-11T04:00:00.000Z');
    expect(parseTimestamp('2025-11-10T04:16:33-00:00')?.getTime()).toBe(base);
    expect(parseTimestamp('2025-11-10T04:16:33z')?.getTime()).toBe(base);
  });

  it('reads a naive time (Python) as UTC', () => {
    expect(parseTimestamp('2030-01-02T03:04:05.500000')?.toISOString()).toBe('2030-01-02T03:04:05.500Z');
    expect(parseTimestamp('2030-01-02T03:04:05')?.getTime()).toBe(1893553445 * 1000);
  });

  it('reads the JS toISOString form exactly', () => {
    const d = new Date(Date.UTC(2026, 10, 28, 14, 52, 31, 448));
    expect(parseTimestamp(d.toISOString())?.getTime()).toBe(d.getTime());
  });

  it('reads the Go zero time as year 1, not 1901', () => {
    const zero = parseTimestamp('0001-01-01T00:00:00Z');
    expect(zero?.toISOString()).toBe('0001-01-01T00:00:00.000Z');
    expect(zero?.getTime()).toBe(-62135596800000);
    expect(parseTimestamp('0099-12-31T23:59:59Z')?.getUTCFullYear()).toBe(99);
  });

  it.each([
    [undefined],
    [''],
    ['garbage'],
    ['2025-11-10'],
    ['2025-11-10T04:16Z'],
    ['04:16:33Z'],
    ['2025-11-10T04:16:33.Z'],
    ['2025/11/10T04:16:33Z'],
    ['2025-11-10T04:16:33 Z'],
    [' 2025-11-10T04:16:33Z'],
    ['2025-11-10T04:16:33Z '],
    ['2025-11-10T04:16:33+5:30'],
    ['2025-11-10T04:16:33+05:30:00'],
    ['2025-11-10T04:16:33UTC'],
    ['1762748196'],
    ['2025-13-01T00:00:00Z'],
    ['2025-00-10T00:00:00Z'],
    ['2025-02-30T00:00:00Z'],
    ['2025-11-00T00:00:00Z'],
    ['2025-11-10T24:00:00Z'],
    ['2025-11-10T04:60:00Z'],
    ['2025-11-10T04:16:60Z'],
    ['2025-11-10T04:16:33+24:00'],
    ['2025-11-10T04:16:33+05:60'],
  ])('returns undefined for %j', (text) => {
    expect(parseTimestamp(text)).toBeUndefined();
  });

  it('accepts 29 February only in leap years', () => {
    expect(parseTimestamp('2024-02-29T00:00:00Z')?.toISOString()).toBe('2024-02-29T00:00:00.000Z');
    expect(parseTimestamp('2025-02-29T00:00:00Z')).toBeUndefined();
  });
});

describe('topLevelRawValues', () => {
  it('returns each raw value, whatever the whitespace', () => {
    const raw = topLevelRawValues(
      ' \n{ "a" : 1 ,\t"b":[ 1 , 2 ]\r\n, "c" : { "d" : "e" } , "f":-1.5e+10 , "g":true}\n ',
    );
    expect([...raw]).toEqual([
      ['a', '1'],
      ['b', '[ 1 , 2 ]'],
      ['c', '{ "d" : "e" }'],
      ['f', '-1.5e+10'],
      ['g', 'true'],
    ]);
  });

  it('is not fooled by braces, brackets, commas and escaped quotes inside strings', () => {
    const text = String.raw`{"a":"}{][,","b":{"c":"\"}","d":["]\\",{"e":"\\\"}"}]},"k\"ey":"\\","z":0}`;
    const raw = topLevelRawValues(text);
    expect([...raw.keys()]).toEqual(['a', 'b', 'k"ey', 'z']);
    expect(raw.get('a')).toBe('"}{][,"');
    expect(raw.get('b')).toBe(String.raw`{"c":"\"}","d":["]\\",{"e":"\\\"}"}]}`);
    expect(raw.get('k"ey')).toBe(String.raw`"\\"`);
    expect(raw.get('z')).toBe('0');
    const parsed = JSON.parse(text) as Record<string, unknown>;
    for (const [key, value] of raw) expect(JSON.parse(value)).toEqual(parsed[key]);
  });

  it('lets the last duplicate key win, in its own position, as JSON.parse does', () => {
    const raw = topLevelRawValues('{"a":1,"b":2,"a":{"x":3}}');
    expect([...raw]).toEqual([
      ['b', '2'],
      ['a', '{"x":3}'],
    ]);
    const job = decodeOk('{"id":"d","name":"first","payload":1,"name":"second","payload":[2]}');
    expect(job.name).toBe('second');
    expect(job.payload).toBe('[2]');
  });

  it('decodes escaped keys so an escaped known field is still recognised', () => {
    expect([...topLevelRawValues(String.raw`{"na\u006de":"x"}`).keys()]).toEqual(['name']);
    const job = decodeOk(String.raw`{"id":"e","na\u006de":"n","pay\u006coad":{"k":1.0}}`);
    expect(job.payload).toBe('{"k":1.0}');
    expect(job.extra).toEqual([]);
  });

  it('handles empty objects and throws on non-objects', () => {
    expect(topLevelRawValues('{}').size).toBe(0);
    expect(topLevelRawValues(' { \n } ').size).toBe(0);
    expect(() => topLevelRawValues('[1]')).toThrow(SyntaxError);
    expect(() => topLevelRawValues('"s"')).toThrow(SyntaxError);
  });
});

describe('decodeJob: the payload it keeps and the value it hands out agree', () => {
  const base = '{"id":"a","name":"n","payload":{"v":1},"status":"pending"';

  it.each([
    ['a plain document', `${base}}`, '{"v":1}'],
    ['a duplicate payload key later (the last wins)', `${base},"payload":[2]}`, '[2]'],
    ['a later payload key spelled with \\u escapes', `${base},"p\\u0061yload":"x"}`, '"x"'],
    ['"payload" inside a later string only', `${base},"error":"bad \\"payload\\""}`, '{"v":1}'],
    ['an unknown field after the payload', `${base},"zz":{"payload":3}}`, '{"v":1}'],
    ['no payload at all', '{"id":"a","name":"n"}', 'null'],
  ])('%s', (_label, text, rawPayload) => {
    const result = decodeJob(text);
    if (!result.ok) throw new Error(result.reason);
    expect(result.job.payload).toBe(rawPayload);
    expect(result.data).toEqual(JSON.parse(rawPayload));
    expect(result.data).toEqual((JSON.parse(text) as { payload?: unknown }).payload ?? null);
  });

  it('keeps unknown fields found after an early payload', () => {
    const job = decodeOk(`${base},"zz":{"payload":3},"yy":1}`);
    expect(job.extra).toEqual([
      ['zz', '{"payload":3}'],
      ['yy', '1'],
    ]);
  });
});

describe('encodeJob with changes', () => {
  it('writes the changed fields and nothing else differs from a copy with those fields', () => {
    const job = decodeOk(
      '{"id":"a","name":"n","payload":{"big":12345678901234567890},"status":"processing","priority":"high","created_at":"c","updated_at":"u","scheduled_for":"s","attempts":1,"max_retries":3,"error":"e","routing_key":"gpu","x":[1]}',
    );
    const changed = encodeJob(job, { status: 'completed', updatedAt: 'later', scheduledFor: '' });
    expect(changed).toBe(
      encodeJob({ ...job, status: 'completed', updatedAt: 'later', scheduledFor: undefined }),
    );
    expect(changed).not.toContain('scheduled_for');
    expect(changed).toContain('"payload":{"big":12345678901234567890}');
    expect(encodeJob(job, { attempts: 2, error: 'boom "quoted"' })).toContain(
      '"attempts":2,"max_retries":3,"error":"boom \\"quoted\\""',
    );
  });

  it('quotes every string exactly as JSON.stringify does', () => {
    for (const text of ['plain', 'é', 'a"b', 'a\\b', '\u0001', '\u2028', '\ud83d\ude00', '\ud800']) {
      const job = newJob(text, '{}', { id: text, description: text });
      const parsed = JSON.parse(encodeJob(job)) as { id: string; name: string };
      expect(parsed.id).toBe(JSON.parse(JSON.stringify(text)));
      expect(encodeJob(job)).toContain(`"id":${JSON.stringify(text)}`);
    }
  });
});
