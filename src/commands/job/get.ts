import { Flags } from '@oclif/core';
import { BananasCommand } from '../../cli/base-command.js';
import { color } from '../../cli/render.js';
import { jobIdArgs } from '../../cli/shared-flags.js';
import { assertPrefix } from '../../core/keys.js';
import { assertLookupId, getJob, prettyJson, type JobDetails, type PlaceView } from '../../inspector/job.js';

/** Longest payload or raw document the human view prints (--json and --raw print everything). */
const PREVIEW_CHARS = 2000;

export default class JobGet extends BananasCommand<typeof JobGet> {
  static override summary = 'Show one job: its document, where it is, its lease and result';
  static override description = `Shows the decoded document (payload as JSON), every queue, list or set that holds the id (a job normally lives in exactly one: more are flagged), the document's TTL, the lease owner and deadline while a worker holds it, and the result hash. A corrupt document or an original-worker stub is shown with its raw bytes and the parse error (exit 0: the job was found). Unknown id: exit 3.

The id is taken literally (* ? [ are not patterns). The original cron scheduler's jobs have the empty id (key <prefix>job:): address them as ''. An id that starts with - goes after --.`;
  static override examples = [
    '<%= config.bin %> job get 7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918',
    '<%= config.bin %> job get 7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918 --raw > job.json',
    "<%= config.bin %> job get '' --json",
  ];

  static override args = jobIdArgs;

  static override flags = {
    raw: Flags.boolean({ summary: 'Print the stored document exactly as stored (bytes), nothing else' }),
  };

  async run(): Promise<JobDetails> {
    const { flags } = this;
    const id = assertLookupId(this.args.id);
    assertPrefix(flags.prefix);
    const details = await this.withProgress('Looking up the job', async () =>
      getJob(await this.redis(), flags.prefix, id, { raw: flags.raw }),
    );
    if (this.jsonEnabled()) return details;
    if (flags.raw) {
      const bytes =
        details.raw_base64 !== undefined
          ? Buffer.from(details.raw_base64, 'base64')
          : Buffer.from(details.raw ?? '', 'utf8');
      process.stdout.write(bytes);
      // Exactly the stored bytes when piped; a terminal gets a final newline so the prompt starts on its own line.
      if (process.stdout.isTTY) process.stdout.write('\n');
      return details;
    }
    this.print(renderDetails(details));
    return details;
  }
}

function renderDetails(d: JobDetails): string {
  const rows: Array<[string, string]> = [];
  const job = d.job;
  const state =
    d.document_state === 'ok'
      ? ''
      : d.document_state === 'missing'
        ? color.red(' — NO DOCUMENT')
        : d.document_state === 'stub'
          ? color.red(' — STUB (the original worker replaced the job)')
          : color.red(' — CORRUPT DOCUMENT');
  const header = `${color.bold('job')} ${JSON.stringify(d.id)}${state}`;
  if (job) {
    rows.push(['name', job.name]);
    rows.push(['status', statusColor(job.status)(job.status === '' ? '""' : job.status)]);
    rows.push(['priority', job.priority]);
    rows.push(['route', job.routing_key === '' ? 'default ("")' : job.routing_key]);
    rows.push(['attempts', `${job.attempts} of max_retries ${job.max_retries}`]);
    if (job.description !== '') rows.push(['description', job.description]);
    if (job.error !== '') rows.push(['error', color.red(job.error)]);
    rows.push(['created', job.created_at || '(none)']);
    rows.push(['updated', job.updated_at || '(none)']);
    if (job.scheduled_for !== null) rows.push(['scheduled for', job.scheduled_for]);
    for (const [key, value] of Object.entries(job.extra_fields)) rows.push([key, JSON.stringify(value)]);
    rows.push(['payload', payloadPreview(job.payload_json)]);
  } else if (d.document_state !== 'missing') {
    if (!d.stub) rows.push(['problem', color.red(d.parse_error ?? '')]);
    else {
      rows.push(['stub error', color.red(d.stub.error)]);
      if (d.stub.corrupted_data !== undefined)
        rows.push(['original data', JSON.stringify(d.stub.corrupted_data)]);
    }
    // JSON-quoted, so control characters and stray quotes are visible.
    rows.push(['raw', truncate(JSON.stringify(d.raw ?? ''), d.raw?.length ?? 0)]);
    if (d.raw_base64 !== undefined) rows.push(['raw (base64)', truncate(d.raw_base64, d.raw_base64.length)]);
  }
  const expiry = d.ttl_seconds === null ? 'no expiry' : `expires in ${formatSeconds(d.ttl_seconds)}`;
  rows.push([
    'document',
    d.size_bytes === null
      ? color.red(`${d.key} does not exist`)
      : `${d.key} (${d.size_bytes} bytes, ${expiry})`,
  ]);
  if (d.places.length === 0) rows.push(['where', 'in no queue']);
  d.places.forEach((place, i) => rows.push([i === 0 ? 'where' : '', placeText(place)]));
  if (d.lease) {
    const owner = d.lease.owner ?? '(no owner entry)';
    const alive = d.lease.owner !== null && !d.lease.owner_alive ? color.yellow(' (no heartbeat)') : '';
    const deadline =
      d.lease.deadline === null
        ? 'no deadline'
        : `${d.lease.expired ? color.red('expired') : 'until'} ${d.lease.deadline}`;
    rows.push(['lease', `${owner}${alive}, ${deadline}`]);
  }
  if (d.result) {
    const r = d.result;
    const parts = [
      r.status ?? '?',
      r.completed_at ? `at ${r.completed_at}` : '',
      r.duration_ms ? `in ${r.duration_ms} ms` : '',
    ]
      .filter((p) => p !== '')
      .join(' ');
    rows.push(['result', statusColor(r.status ?? '')(parts)]);
    if (r.error !== undefined) rows.push(['', `error: ${r.error}`]);
    if (r.result !== undefined) rows.push(['', `result: ${r.result}`]);
    const extra = Object.keys(r).filter(
      (k) => !['status', 'completed_at', 'duration_ms', 'error', 'result'].includes(k),
    );
    for (const k of extra) rows.push(['', `${k}: ${r[k]}`]);
  }
  const width = Math.max(...rows.map(([label]) => label.length));
  const lines = [
    header,
    ...rows.map(([label, value]) => `  ${color.dim(label.padEnd(width))}  ${indentRest(value, width + 4)}`),
  ];
  for (const warning of d.warnings) lines.push(color.yellow(`warning: ${warning}`));
  return lines.join('\n');
}

function placeText(p: PlaceView): string {
  const times =
    p.occurrences !== undefined && p.occurrences > 1 ? color.yellow(`, ${p.occurrences} times`) : '';
  switch (p.kind) {
    case 'ready':
      return `ready list ${p.key}, ${p.position === 0 ? 'next to run' : `${p.position} ahead of it`}${times}`;
    case 'processing':
      return `processing ${p.key}${times}`;
    case 'dead':
      return `dead-letter queue ${p.key}, position ${p.position} from the oldest end${times}`;
    case 'scheduled':
      return `scheduled ${p.key}, runs at ${p.run_at}`;
  }
}

function payloadPreview(json: string): string {
  return truncate(json.length > PREVIEW_CHARS ? json : prettyJson(json), json.length);
}

function truncate(text: string, originalLength: number): string {
  if (text.length <= PREVIEW_CHARS) return text;
  return `${text.slice(0, PREVIEW_CHARS)}… (${originalLength} characters in all: --json or --raw show everything)`;
}

function indentRest(text: string, by: number): string {
  return text.split('\n').join(`\n${' '.repeat(by)}`);
}

function statusColor(status: string): (text: string) => string {
  if (status === 'failed') return color.red;
  if (status === 'completed') return color.green;
  return (text) => text;
}

function formatSeconds(total: number): string {
  if (total < 60) return `${total}s`;
  const d = Math.floor(total / 86400);
  const h = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  return [d ? `${d}d` : '', h ? `${h}h` : '', m ? `${m}m` : ''].filter((x) => x !== '').join(' ') || '0m';
}
