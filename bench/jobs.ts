/** Jobs for the benchmarks that drive the queue directly (profile.ts, script-cost.ts, settle-ab.ts). */
import { decodeJob, encodeJob } from '../src/core/codec.js';
import type { DequeuedEntry, Queue } from '../src/core/queue.js';

/** Enqueues `count` no-op jobs, in batches of 1,000. */
export async function seedNoopJobs(queue: Queue, count: number): Promise<void> {
  for (let i = 0; i < count; i += 1000)
    await queue.enqueueBatch(
      Array.from({ length: Math.min(1000, count - i) }, () => ({ name: 'noop', payload: {} })),
    );
}

/** The document a worker writes when the dequeued job completes at `now`. */
export function completedDocument(entry: DequeuedEntry, now: Date): string {
  const decoded = decodeJob(entry.document!);
  if (!decoded.ok) throw new Error(`job ${entry.id}: ${decoded.reason}`);
  return encodeJob(decoded.job, { status: 'completed', updatedAt: now.toISOString(), scheduledFor: '' });
}
