// What decide() is given and what it returns: the observed facts (jobs, nodes, load) and the
// decision (next status, actions). Types and one pure parser; no I/O.
import type { JobFailure } from '../../api/v1alpha1/errors.ts';
import { parseJobResult, type JobResult } from '../../api/v1alpha1/job-results.ts';
import type { Job } from '../../api/v1alpha1/jobs.ts';
import type { MigrationStatus } from '../../api/v1alpha1/migration.ts';
import type { RawJobFact } from '../../lib/bus.ts';

/** The steps of a container migration; each is a job kind an agent runs. */
export type StepName =
  | 'preflightSource'
  | 'preflightTarget'
  | 'sync'
  | 'checkpoint'
  | 'transfer'
  | 'restore'
  | 'verifyTarget'
  | 'cleanupSource'
  | 'cleanupTarget'
  | 'rollbackTarget'
  | 'resumeSource';

export type Side = 'source' | 'target';

/** A step's job as the controller sees it: its result parsed by the step's schema. */
export interface JobFact<S extends StepName = StepName> {
  /** BullMQ's view; `failed` is final (retries show as waiting or delayed). */
  state: RawJobFact['state'];
  result?: JobResult<S>;
  failure?: JobFailure;
  progress?: unknown;
}
export type StepFacts = { [S in StepName]?: JobFact<S> };

export interface NodeFact {
  labels: Record<string, string>;
}

export interface Load {
  /** Migrations past Pending and not yet ended, this one excluded. */
  running: number;
  outbound: Record<string, number>;
  inbound: Record<string, number>;
}

export interface Limits {
  maxRunning: number;
  maxOutboundPerNode: number;
}

export const DEFAULT_LIMITS: Limits = { maxRunning: 5, maxOutboundPerNode: 2 };

export interface Facts {
  now: string;
  /** Nodes whose agents are alive, with their labels. */
  nodes: ReadonlyMap<string, NodeFact>;
  jobs: StepFacts;
  load: Load;
  limits: Limits;
}

export type Action =
  | {
      type: 'enqueue';
      step: StepName;
      node: string;
      /** Deterministic: the same step of the same migration is never enqueued twice. */
      jobId: string;
      job: Job;
    }
  /** Removes a job nobody has picked up, so a node that comes back cannot run an abandoned step. */
  | { type: 'cancel'; step: StepName; node: string; jobId: string }
  /** The Migration may go: its finalizer comes off (it was deleted and has ended). */
  | { type: 'release' };

export interface Decision {
  status: MigrationStatus;
  actions: Action[];
  /** Why a Pending migration waits (a concurrency limit); shown as its Admitted condition. */
  queued?: string;
}

/**
 * A job as BullMQ reported it, made a fact: a completed job's result is parsed by its step's
 * schema, and one that fails it is a failed step whose reason is the schema's words.
 */
export function observeJob<S extends StepName>(step: S, raw: RawJobFact): JobFact<S> {
  if (raw.state !== 'completed') {
    const { result: _ignored, ...rest } = raw;
    return rest;
  }
  const parsed = parseJobResult(step, raw.result);
  if (parsed.ok) return { state: 'completed', result: parsed.value };
  return { state: 'failed', failure: { code: 'InvalidInput', message: parsed.problem } };
}
