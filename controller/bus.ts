// The work bus between the controller (or CLI) and the agents: one BullMQ queue per node.
// Job ids are deterministic per migration step, so enqueueing twice is a no-op.
import { Job as BullJob, Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import type { RedisConfig } from '../api/v1alpha1/cluster.ts';
import type { JobInput } from '../api/v1alpha1/jobs.ts';
import { agentQueueName, queuePrefix, redisOptions } from '../lib/redis.ts';
import { FerryError, parseErrorReason } from '../lib/errors.ts';
import type { JobFact } from './reconcile.ts';

const DAY = 24 * 3600;

/** The job states the dashboard and /metrics count in each node's queue. */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed'] as const;

export class Bus {
  private readonly queues = new Map<string, Queue>();
  private readonly events = new Map<string, QueueEvents>();
  readonly prefix: string;

  constructor(
    private readonly redis: Redis,
    private readonly redisConfig: RedisConfig,
    cluster: string,
  ) {
    this.prefix = queuePrefix(cluster);
  }

  queue(node: string): Queue {
    let q = this.queues.get(node);
    if (!q) {
      q = new Queue(agentQueueName(node), { connection: this.redis, prefix: this.prefix });
      this.queues.set(node, q);
    }
    return q;
  }

  /** Completion events of a node's queue; created once, on first use. */
  queueEvents(node: string): QueueEvents {
    let e = this.events.get(node);
    if (!e) {
      // Connection options, not an instance: BullMQ then owns the blocking connection and closes it.
      e = new QueueEvents(agentQueueName(node), {
        connection: redisOptions(this.redisConfig),
        prefix: this.prefix,
      });
      this.events.set(node, e);
    }
    return e;
  }

  async enqueue(node: string, jobId: string, job: JobInput): Promise<void> {
    await this.queue(node).add(job.kind, job, {
      jobId,
      // Transient failures (a dropped connection) are retried; agents mark final ones unrecoverable.
      attempts: 3,
      backoff: { type: 'exponential', delay: 1000 },
      removeOnComplete: { age: 7 * DAY },
      removeOnFail: { age: 30 * DAY },
    });
  }

  /** Removes a job that no agent has picked up yet; an active or finished one is left alone. */
  async cancel(node: string, jobId: string): Promise<void> {
    const job = await BullJob.fromId(this.queue(node), jobId);
    if (!job) return;
    const state = await job.getState();
    if (state === 'waiting' || state === 'delayed' || state === 'prioritized')
      await job.remove().catch(() => undefined);
  }

  async fact(node: string, jobId: string): Promise<JobFact | undefined> {
    const job = await BullJob.fromId(this.queue(node), jobId);
    if (!job) return undefined;
    const state = await job.getState();
    switch (state) {
      case 'completed':
        return { state, result: job.returnvalue };
      case 'failed':
        return { state, failedReason: job.failedReason };
      case 'active':
      case 'delayed':
        return { state };
      default:
        return { state: 'waiting' };
    }
  }

  /** Runs a one-off job (for the CLI) and waits for its result. */
  async call<T = unknown>(node: string, job: JobInput, timeoutMs = 120_000): Promise<T> {
    const events = this.queueEvents(node);
    await events.waitUntilReady();
    const added = await this.queue(node).add(job.kind, job, {
      removeOnComplete: { age: DAY },
      removeOnFail: { age: DAY },
    });
    try {
      return (await added.waitUntilFinished(events, timeoutMs)) as T;
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      const { code, message } = parseErrorReason(msg);
      throw new FerryError(code ?? 'Internal', `${job.kind} on ${node}: ${message}`);
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.events.values()].map((e) => e.close()));
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}
