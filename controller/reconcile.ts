// The one function that decides. Given a Migration and the observed facts (the states of its jobs,
// which nodes are alive), it returns the next status and the jobs to enqueue. No I/O happens here,
// so every phase and every failure is testable as a table (reconcile.test.ts).
import type { Job } from '../api/v1alpha1/jobs.ts';
import {
  TERMINAL_PHASES,
  type MigrationState,
  type MigrationStatus,
  type Phase,
  type StoredMigration,
} from '../api/v1alpha1/migration.ts';
import { parseErrorReason } from '../lib/errors.ts';

export type StepName =
  | 'preflightSource'
  | 'preflightTarget'
  | 'sync'
  | 'checkpoint'
  | 'transfer'
  | 'restore'
  | 'cleanupSource'
  | 'cleanupTarget'
  | 'rollbackTarget'
  | 'resumeSource';

export interface JobFact {
  /** BullMQ's view; `failed` is final (retries show as waiting or delayed). */
  state: 'waiting' | 'delayed' | 'active' | 'completed' | 'failed';
  result?: unknown;
  failedReason?: string;
}

export interface Facts {
  now: string;
  /** Nodes whose agents are alive. */
  nodes: ReadonlySet<string>;
  jobs: Partial<Record<StepName, JobFact>>;
}

export interface EnqueueAction {
  type: 'enqueue';
  step: StepName;
  node: string;
  /** Deterministic: the same step of the same migration is never enqueued twice. */
  jobId: string;
  job: Job;
}

export interface Decision {
  status: MigrationStatus;
  actions: EnqueueAction[];
}

type Side = 'source' | 'target';

/** The steps each phase runs, and on which side. A phase is done when all its steps completed. */
export const PHASE_STEPS: Partial<Record<Phase, ReadonlyArray<readonly [StepName, Side]>>> = {
  Preflight: [
    ['preflightSource', 'source'],
    ['preflightTarget', 'target'],
  ],
  Syncing: [['sync', 'source']],
  Checkpointing: [['checkpoint', 'source']],
  Transferring: [['transfer', 'source']],
  Restoring: [['restore', 'target']],
  CleaningUp: [
    ['cleanupSource', 'source'],
    ['cleanupTarget', 'target'],
  ],
  RollingBack: [
    ['rollbackTarget', 'target'],
    ['resumeSource', 'source'],
  ],
};

const NEXT: Partial<Record<Phase, Phase>> = {
  Preflight: 'Syncing',
  Syncing: 'Checkpointing',
  Checkpointing: 'Transferring',
  Transferring: 'Restoring',
  Restoring: 'CleaningUp',
  CleaningUp: 'Succeeded',
};

export const jobIdFor = (uid: string, step: StepName): string => `${uid}.${step}`;

export function stepsFor(phase: Phase): StepName[] {
  return (PHASE_STEPS[phase] ?? []).map(([s]) => s);
}

function transition(
  status: MigrationStatus,
  phase: Phase,
  now: string,
  patch: Partial<MigrationStatus> = {},
): MigrationStatus {
  return {
    ...status,
    ...patch,
    phase,
    phaseTransitionTimestamps: [...status.phaseTransitionTimestamps, { phase, time: now }],
  };
}

function buildJob(m: StoredMigration, step: StepName): Job {
  const migration = { uid: m.metadata.uid, name: m.metadata.name };
  const container = m.spec.source.container;
  if (step === 'sync' || step === 'transfer')
    return { kind: step, migration, container, targetNode: m.spec.target.node };
  return { kind: step, migration, container };
}

/** What a finished phase's results add to migrationState. */
function recordResults(phase: Phase, state: MigrationState, jobs: Facts['jobs']): MigrationState {
  const r = (s: StepName) => (jobs[s]?.result ?? {}) as Record<string, unknown>;
  const num = (v: unknown) => (typeof v === 'number' ? v : undefined);
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const drop = (o: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  switch (phase) {
    case 'Syncing':
      return { ...state, ...drop({ bytesBeforeFreeze: num(r('sync').bytes) }) };
    case 'Checkpointing':
      return {
        ...state,
        ...drop({ frozenAt: str(r('checkpoint').frozenAt), dumpMs: num(r('checkpoint').dumpMs) }),
      };
    case 'Transferring': {
      const bytes = num(r('transfer').bytes);
      const ms = num(r('transfer').durationMs);
      const throughput = bytes !== undefined && ms ? Math.round((bytes * 1000) / ms) : undefined;
      return {
        ...state,
        ...drop({ bytesDuringFreeze: bytes, transferMs: ms, throughputBytesPerSecond: throughput }),
      };
    }
    case 'Restoring': {
      const restoredAt = str(r('restore').restoredAt);
      const downtimeMs =
        restoredAt && state.frozenAt ? Date.parse(restoredAt) - Date.parse(state.frozenAt) : undefined;
      return { ...state, ...drop({ restoredAt, restoreMs: num(r('restore').restoreMs), downtimeMs }) };
    }
    default:
      return state;
  }
}

function failureText(step: StepName, node: string, fact: JobFact): string {
  const { code, message } = parseErrorReason(fact.failedReason ?? 'unknown error');
  return `${step} on ${node} failed: ${code ? `${code}: ` : ''}${message}`;
}

export function decide(m: StoredMigration, facts: Facts): Decision {
  const status = m.status;
  const none: Decision = { status, actions: [] };
  if (TERMINAL_PHASES.includes(status.phase)) return none; // terminal phases are never left

  const src = m.spec.source.node;
  const dst = m.spec.target.node;
  const nodeOf = (side: Side) => (side === 'source' ? src : dst);
  const state: MigrationState = status.migrationState ?? { sourceNode: src, targetNode: dst };

  if (status.phase === 'Pending') {
    // Guards before anything runs: both nodes must be alive, else refuse with nothing touched.
    for (const [role, node] of [
      ['source', src],
      ['target', dst],
    ] as const) {
      if (!facts.nodes.has(node)) {
        return {
          status: transition(status, 'Failed', facts.now, {
            migrationState: state,
            failureReason: `NodeNotFound: ${role} node ${node} is not registered (no agent heartbeat)`,
          }),
          actions: [],
        };
      }
    }
    return { status: transition(status, 'Preflight', facts.now, { migrationState: state }), actions: [] };
  }

  const steps = PHASE_STEPS[status.phase] ?? [];
  const actions: EnqueueAction[] = [];
  const failures: string[] = [];
  let allDone = true;
  for (const [step, side] of steps) {
    const fact = facts.jobs[step];
    const node = nodeOf(side);
    if (!fact) {
      actions.push({
        type: 'enqueue',
        step,
        node,
        jobId: jobIdFor(m.metadata.uid, step),
        job: buildJob(m, step),
      });
      allDone = false;
    } else if (fact.state === 'failed') {
      failures.push(failureText(step, node, fact));
    } else if (fact.state !== 'completed') {
      allDone = false;
    }
  }

  if (failures.length) {
    // Let sibling steps of the phase settle before moving on, so no step races a rollback.
    const unsettled = steps.some(([s]) => {
      const f = facts.jobs[s];
      return f !== undefined && f.state !== 'completed' && f.state !== 'failed';
    });
    if (unsettled) return none;
    const reason = failures.join('; ');
    switch (status.phase) {
      case 'Preflight':
        // Nothing was frozen or written: fail at once.
        return { status: transition(status, 'Failed', facts.now, { failureReason: reason }), actions: [] };
      case 'RollingBack': {
        const prior = status.failureReason ?? 'rolled back';
        return {
          status: transition(status, 'Failed', facts.now, {
            failureReason: `${prior}; rollback incomplete: ${reason}`,
          }),
          actions: [],
        };
      }
      case 'CleaningUp':
        // The workload runs on the target: the migration succeeded; leftovers are a warning.
        return {
          status: transition(status, 'Succeeded', facts.now, {
            warnings: [...(status.warnings ?? []), `clean-up incomplete: ${reason}`],
          }),
          actions: [],
        };
      default:
        return {
          status: transition(status, 'RollingBack', facts.now, { failureReason: reason }),
          actions: [],
        };
    }
  }

  if (!allDone) return { status, actions };

  if (status.phase === 'RollingBack') {
    return { status: transition(status, 'Failed', facts.now), actions: [] };
  }
  const next = NEXT[status.phase];
  if (!next) return none;
  return {
    status: transition(status, next, facts.now, {
      migrationState: recordResults(status.phase, state, facts.jobs),
    }),
    actions: [],
  };
}

/** A fresh status for a newly stored Migration. */
export function initialStatus(now: string): MigrationStatus {
  return { phase: 'Pending', phaseTransitionTimestamps: [{ phase: 'Pending', time: now }] };
}
