// What decide() is given and what it returns: the observed facts (jobs, nodes, load) and the
// decision (next status, actions). Types and one pure parser; no I/O.
import type { V1Pod } from '@kubernetes/client-node';
import type { JobFailure } from '../../api/v1alpha1/errors.ts';
import { parseJobResult, type JobResult } from '../../api/v1alpha1/job-results.ts';
import type { Job, JobKind } from '../../api/v1alpha1/jobs.ts';
import type { MigrationStatus, StoredMigration } from '../../api/v1alpha1/migration.ts';
import type { RawJobFact } from '../../lib/bus.ts';

/** Each step a migration runs on an agent, and the job kind it sends (the pod path cleans both nodes). */
export const STEP_KIND = {
  preflightSource: 'preflightSource',
  preflightTarget: 'preflightTarget',
  sync: 'sync',
  checkpoint: 'checkpoint',
  transfer: 'transfer',
  restore: 'restore',
  verifyTarget: 'verifyTarget',
  cleanupSource: 'cleanupSource',
  cleanupTarget: 'cleanupTarget',
  rollbackTarget: 'rollbackTarget',
  resumeSource: 'resumeSource',
  podSync: 'podSync',
  podFreeze: 'podFreeze',
  podCheckpoint: 'podCheckpoint',
  podSend: 'podSend',
  podImport: 'podImport',
  podVolumes: 'podVolumes',
  podRemoveImages: 'podRemoveImages',
  // A StatefulSet pod's steps on the source (pod-statefulset.ts): ready to be restored there.
  podImportSource: 'podImport',
  podVolumesSource: 'podVolumes',
  podRemoveImagesSource: 'podRemoveImages',
  podThaw: 'podThaw',
  podCleanupSource: 'podCleanup',
  podCleanupTarget: 'podCleanup',
} as const satisfies Record<string, JobKind>;
export type StepName = keyof typeof STEP_KIND;
export type KindOf<S extends StepName> = (typeof STEP_KIND)[S];

export type Side = 'source' | 'target';

/** A step's job as the controller sees it: its result parsed by its job kind's schema. */
export interface JobFact<S extends StepName = StepName> {
  /** BullMQ's view; `failed` is final (retries show as waiting or delayed). */
  state: RawJobFact['state'];
  result?: JobResult<KindOf<S>>;
  failure?: JobFailure;
  progress?: unknown;
}
export type StepFacts = { [S in StepName]?: JobFact<S> };

/** A pod Migration's pods, as the Kubernetes API shows them (read by the controller each pass). */
export interface PodFacts {
  source?: V1Pod;
  /** The replacement pod on the target, once created. */
  replacement?: V1Pod;
  /** In Preflight: the access modes of each claim the source mounts (none when it is not found). */
  claims?: Record<string, string[] | undefined>;
}

export interface NodeFact {
  labels: Record<string, string>;
  /** A cordoned Kubernetes Node (spec.unschedulable): no migration goes there. */
  unschedulable?: boolean;
}

export interface Load {
  /** Migrations past Pending and not yet ended, this one excluded. */
  running: number;
  outbound: Record<string, number>;
  inbound: Record<string, number>;
  /** The workloads being moved now (workloadKey), each by the Migration (namespace/name) moving it. */
  moving?: Record<string, string>;
}

/** What a Migration moves, as one key: a pod, or a container or process tree on its node. */
export function workloadKey(m: StoredMigration): string {
  const s = m.spec.source;
  if (s.pod) return `pod ${m.metadata.namespace}/${s.pod}`;
  if (s.pid) return `process ${s.pid} on ${s.node}`;
  return `container ${s.container} on ${s.node}`;
}

export interface Limits {
  maxRunning: number;
  maxOutboundPerNode: number;
}

export const DEFAULT_LIMITS: Limits = { maxRunning: 5, maxOutboundPerNode: 2 };

/**
 * How long the migration has been in its phase and since Preflight began, as this controller
 * measured them on its monotonic clock (a wall clock stepped forward must not time out every
 * migration); absent, decide() falls back to the wall-clock timestamps in status.
 */
export interface Elapsed {
  phaseMs: number;
  sincePreflightMs?: number | undefined;
}

export interface Facts {
  now: string;
  elapsed?: Elapsed | undefined;
  /** Nodes whose agents are alive (or silent for less than the grace), with their labels. */
  nodes: ReadonlyMap<string, NodeFact>;
  /** Nodes an operator declared dead (ferry node fence): acted around at once. */
  fenced?: ReadonlySet<string>;
  jobs: StepFacts;
  load: Load;
  limits: Limits;
  /** Whether this controller serves Kubernetes: pods move only there. */
  kube?: boolean;
  /** A pod Migration's pods; absent for containers. */
  pods?: PodFacts;
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
  | { type: 'release' }
  /** The pod path: the replacement pod bound to the target (a 409 means it exists: done). */
  | { type: 'createPod'; pod: V1Pod }
  /** The pod path: a pod as read and changed (a ReplicaSet's pod handing over: pod-spec.ts). */
  | { type: 'updatePod'; pod: V1Pod }
  /** The pod path: the source once the replacement runs, or the replacement on rollback. */
  | { type: 'deletePod'; namespace: string; name: string };

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
  const parsed = parseJobResult(STEP_KIND[step], raw.result);
  if (parsed.ok) return { state: 'completed', result: parsed.value };
  return { state: 'failed', failure: { code: 'InvalidInput', message: parsed.problem } };
}
