/** Operator operations on single jobs. Plain data in, plain data out. */
import type { RedisClient } from '../core/connection.js';
import { Queue, type EnqueueOptions } from '../core/queue.js';
import type { Priority } from '../core/keys.js';

export interface EnqueuedJob {
  id: string;
  name: string;
  priority: Priority;
  routing_key: string;
  /** The ready list or the scheduled set the id was put on. */
  queue: string;
  status: string;
  scheduled_for?: string;
  max_retries: number;
}

export async function enqueueJob(
  redis: RedisClient,
  prefix: string,
  name: string,
  options: EnqueueOptions,
): Promise<EnqueuedJob> {
  const queue = new Queue(redis, { prefix });
  const job = await queue.enqueue(name, undefined, {
    ...options,
    payloadJson: options.payloadJson ?? 'null',
  });
  return {
    id: job.id,
    name: job.name,
    priority: job.priority,
    routing_key: job.routingKey,
    queue: job.scheduledFor ? queue.keys.scheduled : queue.keys.queue(job.priority, job.routingKey),
    status: job.status,
    ...(job.scheduledFor ? { scheduled_for: job.scheduledFor } : {}),
    max_retries: job.maxRetries,
  };
}
