import { Flags } from '@oclif/core';
import { BananasCommand } from '../../cli/base-command.js';
import { color, formatCount, table } from '../../cli/render.js';
import { assertPrefix, Keys } from '../../core/keys.js';
import { formatAgo, readWorkers, type WorkerInfo, type WorkerList } from '../../inspector/workers.js';

export default class WorkerListCommand extends BananasCommand<typeof WorkerListCommand> {
  static override summary = 'List workers from their heartbeats, stale ones marked';
  static override description = `Every worker in the registry (bananas:workers) with what its heartbeat hash says: host, pid, the priorities and routing keys it serves, concurrency, jobs in flight, processed and failed counts, start time and last heartbeat.

A worker is stale when its last heartbeat is older than 15 s (three heartbeats) or its heartbeat hash has expired while it is still in the registry: it crashed or was killed, and its jobs return to their queue when their leases expire. Original Bananas workers do not send heartbeats and are not listed.`;

  static override examples = ['<%= config.bin %> worker list', '<%= config.bin %> worker list --live --json'];

  static override flags = {
    live: Flags.boolean({ summary: 'Only live workers' }),
  };

  async run(): Promise<WorkerList> {
    const { flags } = this;
    assertPrefix(flags.prefix);
    const list = await readWorkers(await this.redis(), new Keys(flags.prefix));
    const result = flags.live
      ? { ...list, stale: 0, workers: list.workers.filter((w) => w.state === 'live') }
      : list;
    this.print(renderWorkers(result));
    return result;
  }
}

function num(value: number | null): string {
  return value === null ? '-' : formatCount(value);
}

function queues(w: WorkerInfo): string {
  if (!w.heartbeat_hash) return '-';
  const routes = w.routing_keys.length > 0 ? w.routing_keys.join(',') : 'default';
  const types = w.job_types === null ? '' : ` [${w.job_types.join(',')}]`;
  return `${w.priorities.join(',')} @ ${routes}${types}`;
}

function renderWorkers(list: WorkerList): string {
  const summary = `${list.live} live${list.stale > 0 ? color.yellow(`, ${list.stale} stale`) : ''}`;
  if (list.workers.length === 0) return `No workers have sent a heartbeat (${summary}).`;
  const rows = list.workers.map((w) => [
    w.id,
    w.state === 'live' ? color.green('live') : color.yellow('stale'),
    w.host ?? '-',
    w.pid === null ? '-' : String(w.pid),
    queues(w),
    w.concurrency === null ? '-' : `${num(w.in_flight)}/${num(w.concurrency)}`,
    num(w.processed),
    num(w.failed),
    w.started_at ?? '-',
    `${formatAgo(w.last_seen_ago_ms)} ago${w.stale_reason && !w.heartbeat_hash ? color.yellow(' (hash expired)') : ''}`,
  ]);
  return `${table(
    ['Worker', 'State', 'Host', 'PID', 'Queues', 'In flight', 'Processed', 'Failed', 'Started', 'Last seen'],
    rows,
  )}\n${summary}`;
}
