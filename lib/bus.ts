// The work bus between the controller (or CLI) and the agents: one BullMQ queue per node.
// Job ids are deterministic per migration step, so enqueueing twice is a no-op.
import { Job as BullJob, Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import type { RedisConfig } from '../api/v1alpha1/cluster.ts';
import type { JobFailure } from '../api/v1alpha1/errors.ts';
import { parseJobResult, type JobResult } from '../api/v1alpha1/job-results.ts';
import type { JobInput, JobKind } from '../api/v1alpha1/jobs.ts';
import { keyspace } from './keyspace.ts';
import { errorLatch, redisOptions, redisWhere, type OutageReport } from './redis.ts';
import { FerryError, decodeJobFailure } from './errors.ts';
import { requireLiveNode } from './node-registry.ts';

const DAY = 24 * 3600;

/** A job as BullMQ sees it. `failed` is final (retries show as waiting or delayed). */
export interface RawJobFact {
  state: 'waiting' | 'delayed' | 'active' | 'completed' | 'failed';
  /** As the agent returned it; parse it by the job's kind before use (parseJobResult). */
  result?: unknown;
  failure?: JobFailure;
  /** What the agent last reported while the job ran (bytes so far, rate, total). */
  progress?: unknown;
}

/** The job states the dashboard and /metrics count in each node's queue. */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed'] as const;

export class Bus {
  private readonly queues = new Map<string, Queue>();
  private readonly events = new Map<string, QueueEvents>();
  readonly prefix: string;

  private readonly onError: (err: Error) => void;

  constructor(
    private readonly redis: Redis,
    private readonly redisConfig: RedisConfig,
    private readonly cluster: string,
    /** Where a lost Redis is reported (once per outage, not at every reconnection). */
    report?: OutageReport,
  ) {
    this.prefix = keyspace.queuePrefix(cluster);
    this.onError = errorLatch(redisWhere(redisConfig), report);
  }

  queue(node: string): Queue {
    let q = this.queues.get(node);
    if (!q) {
      q = new Queue(keyspace.agentQueue(node), { connection: this.redis, prefix: this.prefix });
      q.on('error', this.onError);
      this.queues.set(node, q);
    }
    return q;
  }

  /** Completion events of a node's queue; created once, on first use. */
  queueEvents(node: string): QueueEvents {
    let e = this.events.get(node);
    if (!e) {
      // Connection options, not an instance: BullMQ then owns the blocking connection and closes it.
      e = new QueueEvents(keyspace.agentQueue(node), {
        connection: redisOptions(this.redisConfig),
        prefix: this.prefix,
      });
      e.on('error', this.onError);
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

  async fact(node: string, jobId: string): Promise<RawJobFact | undefined> {
    // The state first, then the job: read the other way round, a job that completes in between is
    // seen completed with the result it had while active (none).
    const q = this.queue(node);
    const state = await q.getJobState(jobId);
    if (state === 'unknown') return undefined;
    const job = await BullJob.fromId(q, jobId);
    if (!job) return undefined;
    switch (state) {
      case 'completed':
        return { state, result: job.returnvalue };
      case 'failed':
        return { state, failure: decodeJobFailure(job.failedReason) };
      case 'active':
        return { state, progress: job.progress };
      case 'delayed':
        return { state };
      default:
        return { state: 'waiting' };
    }
  }

  /** Runs a one-off job (for the CLI) and waits for its result, parsed by the job's kind. */
  async call<K extends JobKind>(
    node: string,
    job: JobInput & { kind: K },
    timeoutMs = 120_000,
  ): Promise<JobResult<K>> {
    // A job for a node with no live agent would wait until it timed out (minutes): refuse it now.
    await requireLiveNode(this.redis, this.cluster, node);
    const events = this.queueEvents(node);
    await events.waitUntilReady();
    const added = await this.queue(node).add(job.kind, job, {
      removeOnComplete: { age: DAY },
      removeOnFail: { age: DAY },
    });
    let value: unknown;
    try {
      value = await added.waitUntilFinished(events, timeoutMs);
    } catch (err) {
      const { code, message } = decodeJobFailure(err instanceof Error ? err.message : String(err));
      throw new FerryError(code, `${job.kind} on ${node}: ${message}`);
    }
    const parsed = parseJobResult(job.kind, value);
    if (!parsed.ok) throw new FerryError('Internal', `${job.kind} on ${node}: ${parsed.problem}`);
    return parsed.value;
  }

  async close(): Promise<void> {
    await Promise.all([...this.events.values()].map((e) => e.close()));
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}
