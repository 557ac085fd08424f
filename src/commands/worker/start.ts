import { Flags } from '@oclif/core';
import { BananasCommand } from '../../cli/base-command.js';
import {
  commaListFlag,
  durationFlag,
  positiveIntFlag,
  prioritiesFlag,
  routingKeysFlag,
} from '../../cli/flags.js';
import { runUntilSignalled } from '../../cli/signals.js';
import { capYoungGeneration } from '../../cli/young-generation.js';
import { UsageError } from '../../core/errors.js';
import { demoHandlers, loadHandlers, type HandlerMap } from '../../core/handlers.js';
import { createLogger, isLogLevel, type LogFormat } from '../../core/logger.js';
import { Worker, type WorkerStats } from '../../core/worker.js';

export default class WorkerStart extends BananasCommand<typeof WorkerStart> {
  static override summary = 'Run a worker: process jobs with your handlers until SIGTERM/SIGINT';
  static override description = `Takes jobs in strict priority order under a lease (a crashed worker's jobs return to their queue when the lease expires), runs the handler with a timeout, and retries failures with capped, jittered exponential backoff before the dead-letter queue.

On SIGTERM/SIGINT it stops fetching, lets in-flight jobs finish for up to --shutdown-timeout, puts the rest back at the head of their queue and exits 0; a second signal exits at once. If Redis is unreachable it retries with backoff (2, 4, 8, 16, 30 s) and never exits on its own.

The handlers module exports functions named after job names (or a default object of them). Each receives the job (with its payload parsed as \`data\`) and a context { signal, logger, attempt, workerId }; its return value is stored as the job's result.`;

  static override examples = [
    '<%= config.bin %> worker start --handlers ./handlers.js --concurrency 50',
    'WORKER_PRIORITIES=high,normal WORKER_ROUTING_KEYS=gpu <%= config.bin %> worker start --handlers ./dist/handlers.js',
    '<%= config.bin %> worker start --demo-handlers --log-format pretty',
  ];

  static override flags = {
    handlers: Flags.string({ summary: 'Module exporting the job handlers (ESM or CommonJS)' }),
    'demo-handlers': Flags.boolean({
      summary: 'Also register the built-in handlers echo, sleep, fail, flaky',
    }),
    concurrency: positiveIntFlag({ env: 'WORKER_CONCURRENCY', default: 10, summary: 'Jobs run at once' }),
    priorities: prioritiesFlag({
      env: 'WORKER_PRIORITIES',
      summary: 'Priorities served, in poll order [default: high,normal,low]',
    }),
    'routing-keys': routingKeysFlag({
      env: 'WORKER_ROUTING_KEYS',
      summary: 'Routing keys served [default: default]',
    }),
    'job-types': commaListFlag({
      env: 'WORKER_JOB_TYPES',
      summary: 'Only take jobs with these names; others stay queued for other workers',
    }),
    'job-timeout': durationFlag({
      env: 'JOB_TIMEOUT',
      default: 5 * 60_000,
      defaultHelp: async () => '5m',
      summary: 'Per-job timeout',
    }),
    lease: durationFlag({
      default: 30_000,
      defaultHelp: async () => '30s',
      summary: 'Lease on a running job; renewed while it runs',
    }),
    'reply-timeout': durationFlag({
      defaultHelp: async () => 'half the lease, 5s to 10s',
      summary: 'Reconnect a Redis connection that gives no reply for this long while calls are outstanding',
    }),
    'shutdown-timeout': durationFlag({
      default: 30_000,
      defaultHelp: async () => '30s',
      summary: 'Grace period for in-flight jobs on SIGTERM',
    }),
    'poll-interval': durationFlag({
      default: 50,
      defaultHelp: async () => '50ms',
      summary:
        'Longest idle wait before re-checking the queues (jobs enqueued by bananas wake workers at once)',
    }),
    'metrics-interval': durationFlag({
      default: 30_000,
      defaultHelp: async () => '30s',
      summary: 'Interval of the "System metrics" log line',
    }),
    'completed-ttl': durationFlag({
      default: 24 * 3600_000,
      defaultHelp: async () => '24h',
      summary: 'How long a completed job document is kept',
    }),
    'failed-ttl': durationFlag({
      default: 7 * 24 * 3600_000,
      defaultHelp: async () => '168h',
      summary: 'How long a dead-lettered job document is kept',
    }),
    'log-level': Flags.string({
      env: 'LOG_LEVEL',
      default: 'info',
      summary: 'trace, debug, info, warn, error, silent',
    }),
    'log-format': Flags.string({
      env: 'LOG_FORMAT',
      default: 'auto',
      options: ['auto', 'json', 'pretty', 'text'],
      summary: 'json lines, or pretty (auto: pretty on a TTY)',
    }),
  };

  async run(): Promise<{ worker_id: string; stats: WorkerStats }> {
    const { flags } = this;
    if (!isLogLevel(flags['log-level']))
      throw new UsageError(`--log-level: unknown level ${JSON.stringify(flags['log-level'])}`);
    if (flags.lease < 1000) throw new UsageError('--lease must be at least 1s');
    if (flags['job-timeout'] <= 0) throw new UsageError('--job-timeout must be more than 0');
    if (flags['reply-timeout'] !== undefined && flags['reply-timeout'] < 1000)
      throw new UsageError('--reply-timeout must be at least 1s');
    for (const ttl of ['completed-ttl', 'failed-ttl'] as const) {
      if (flags[ttl] < 1000) throw new UsageError(`--${ttl} must be at least 1s`);
    }
    const handlers: HandlerMap = {
      ...(flags['demo-handlers'] ? demoHandlers : {}),
      ...(flags.handlers ? await loadHandlers(flags.handlers) : {}),
    };
    if (Object.keys(handlers).length === 0) {
      throw new UsageError('no handlers: give --handlers <module> (and/or --demo-handlers)');
    }
    const format = flags['log-format'] === 'text' ? 'pretty' : (flags['log-format'] as LogFormat);
    const logger = createLogger({
      level: flags['log-level'],
      format,
      destination: this.jsonEnabled() ? process.stderr : process.stdout,
    });
    const worker = new Worker({
      handlers,
      redisUrl: this.redisUrl,
      redisOptions: this.redisOptions,
      prefix: flags.prefix,
      concurrency: flags.concurrency,
      priorities: flags.priorities,
      routingKeys: flags['routing-keys'],
      jobTypes: flags['job-types'],
      jobTimeoutMs: flags['job-timeout'],
      leaseMs: flags.lease,
      replyTimeoutMs: flags['reply-timeout'],
      shutdownTimeoutMs: flags['shutdown-timeout'],
      pollIntervalMs: flags['poll-interval'],
      metricsIntervalMs: flags['metrics-interval'],
      ttl: {
        completedSeconds: Math.round(flags['completed-ttl'] / 1000),
        failedSeconds: Math.round(flags['failed-ttl'] / 1000),
      },
      logger,
    });
    // This process runs only the worker: its young generation stays at 16 MiB (cli/young-generation.ts;
    // bin/run.js has installed the cap already, and this call then does nothing).
    const releaseCap = capYoungGeneration();
    let stats: WorkerStats;
    try {
      await worker.start();
      stats = await runUntilSignalled(
        async () => {
          await worker.stop();
          return worker.stats();
        },
        (signal) =>
          worker.logger.warn(
            { signal },
            'Second signal: exiting at once; held jobs return after their lease',
          ),
      );
    } finally {
      releaseCap();
    }
    // Handler modules may hold open handles (pools, timers): exit shortly even if they do.
    setTimeout(() => process.exit(process.exitCode ?? 0), 1000).unref();
    return { worker_id: worker.id, stats };
  }
}
