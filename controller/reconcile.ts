// The one function that decides. Given a Migration and the observed facts (the states of its jobs,
// which nodes are alive, how many migrations run), it returns the next status and the actions to
// take. No I/O happens here, so every phase and every failure is testable as a table
// (reconcile.test.ts). The order follows KubeVirt's migration controller: terminal phases return at
// once, then the guards (abort, deletion, timeouts), then the phase switch.
import type { Job } from '../api/v1alpha1/jobs.ts';
import {
  TERMINAL_PHASES,
  type MigrationState,
  type MigrationStatus,
  type Phase,
  type StoredMigration,
} from '../api/v1alpha1/migration.ts';
import { parseDuration, parseQuantity } from '../api/v1alpha1/quantity.ts';
import { parseErrorReason } from '../lib/errors.ts';
import { withConditions } from './conditions.ts';
import { pickTarget } from './placement.ts';
import { chooseMode, type Measured } from './strategy.ts';

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

export interface JobFact {
  /** BullMQ's view; `failed` is final (retries show as waiting or delayed). */
  state: 'waiting' | 'delayed' | 'active' | 'completed' | 'failed';
  result?: unknown;
  failedReason?: string;
}

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
  jobs: Partial<Record<StepName, JobFact>>;
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
  Verifying: [['verifyTarget', 'target']],
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
  Restoring: 'Verifying',
  Verifying: 'CleaningUp',
  CleaningUp: 'Succeeded',
};

/** Phases in which a stop (abort, deletion, timeout) rolls back rather than simply ending. */
const ROLLBACK_PHASES: readonly Phase[] = [
  'Syncing',
  'Checkpointing',
  'Transferring',
  'Restoring',
  'Verifying',
];

export const jobIdFor = (uid: string, step: StepName): string => `${uid}.${step}`;

export function stepsFor(phase: Phase): StepName[] {
  return (PHASE_STEPS[phase] ?? []).map(([s]) => s);
}

/** The node each side runs on; the target is known once Pending has placed the migration. */
export function sideNode(m: StoredMigration, side: Side): string | undefined {
  return side === 'source' ? m.spec.source.node : (m.status.migrationState?.targetNode ?? m.spec.target.node);
}

export function transition(
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

/** Steps that wait for another step of their phase, whose result they need. */
const AFTER: Partial<Record<StepName, StepName>> = { preflightTarget: 'preflightSource' };

function buildJob(m: StoredMigration, step: StepName, targetNode: string, jobs: Facts['jobs']): Job {
  const pid = m.spec.source.pid;
  const migration = { uid: m.metadata.uid, name: m.metadata.name, ...(pid ? { pid } : {}) };
  const container = m.spec.source.container;
  if (step === 'preflightTarget') {
    const src = (jobs.preflightSource?.result ?? {}) as Record<string, unknown>;
    const requirements = drop({
      cpuinfo: str(src.cpuinfo),
      memoryBytes: num(src.memoryBytes),
      rootfsBytes: num(src.rootfsBytes),
    });
    return { kind: step, migration, container, requirements };
  }
  if (step === 'sync' || step === 'transfer') {
    const bandwidth = m.spec.strategy.bandwidth ? parseQuantity(m.spec.strategy.bandwidth) : undefined;
    const measured = m.status.migrationState?.linkBytesPerSecond;
    const link = measured && bandwidth ? Math.min(measured, bandwidth) : (measured ?? bandwidth);
    return {
      kind: step,
      migration,
      container,
      targetNode,
      compression: m.spec.strategy.compression,
      ...(bandwidth ? { bandwidth } : {}),
      ...(link ? { linkBytesPerSecond: link } : {}),
    };
  }
  if (step === 'preflightSource') return { kind: step, migration, container, targetNode };
  if (step === 'checkpoint') {
    const bandwidth = m.spec.strategy.bandwidth ? parseQuantity(m.spec.strategy.bandwidth) : undefined;
    const mode = m.status.migrationState?.mode;
    return {
      kind: step,
      migration,
      container,
      targetNode,
      mode: mode === 'PreCopy' || mode === 'PostCopy' ? mode : 'StopAndCopy',
      maxIterations: m.spec.strategy.maxIterations,
      ...(bandwidth ? { bandwidth } : {}),
    };
  }
  if (step === 'restore') {
    const port = m.status.migrationState?.lazyPagesPort;
    const lazy =
      m.status.migrationState?.mode === 'PostCopy' && port
        ? { sourceNode: m.spec.source.node, port }
        : undefined;
    return { kind: step, migration, container, ...(lazy ? { lazy } : {}) };
  }
  if (step === 'cleanupSource')
    return { kind: step, migration, container, keepImages: m.spec.sourcePolicy === 'KeepImages' };
  return { kind: step, migration, container };
}

const drop = (o: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
const num = (v: unknown) => (typeof v === 'number' ? v : undefined);
const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

type Volume = NonNullable<MigrationState['volumes']>[number];

/** Adds a step's per-volume byte counts to migrationState.volumes, by volume name. */
function volumesFrom(
  state: MigrationState,
  reported: unknown,
  field: 'bytesBeforeFreeze' | 'bytesDuringFreeze',
): { volumes?: Volume[] } {
  if (!Array.isArray(reported)) return {};
  const volumes = [...(state.volumes ?? [])];
  for (const v of reported as Array<{ name: string; driver: Volume['driver']; bytes: number }>) {
    const i = volumes.findIndex((x) => x.name === v.name);
    const entry: Volume = { ...(volumes[i] ?? { name: v.name, driver: v.driver }), [field]: v.bytes };
    if (i >= 0) volumes[i] = entry;
    else volumes.push(entry);
  }
  return { volumes };
}

/** What a finished phase's results add to migrationState. */
function recordResults(phase: Phase, state: MigrationState, jobs: Facts['jobs']): MigrationState {
  const r = (s: StepName) => (jobs[s]?.result ?? {}) as Record<string, unknown>;
  switch (phase) {
    case 'Syncing':
      return {
        ...state,
        ...drop({ bytesBeforeFreeze: num(r('sync').bytes) }),
        ...volumesFrom(state, r('sync').volumes, 'bytesBeforeFreeze'),
      };
    case 'Checkpointing':
      return {
        ...state,
        ...drop({
          frozenAt: str(r('checkpoint').frozenAt),
          dumpMs: num(r('checkpoint').dumpMs),
          imageBytes: num(r('checkpoint').imageBytes),
          lazyPagesPort: num(r('checkpoint').lazyPagesPort),
          // StopAndCopy streams the memory while dumping: those bytes crossed during the freeze.
          bytesDuringFreeze: num(r('checkpoint').streamedBytes),
          iterations: num(r('checkpoint').iterations),
        }),
      };
    case 'Transferring': {
      const bytes = num(r('transfer').bytes);
      const ms = num(r('transfer').durationMs);
      // Everything sent while frozen over the time spent sending it: with StopAndCopy streaming,
      // most of it went during the dump, so the dump's time counts too.
      const streamed = state.bytesDuringFreeze ?? 0;
      const sendingMs = (ms ?? 0) + (streamed ? (state.dumpMs ?? 0) : 0);
      const throughput =
        bytes !== undefined && sendingMs ? Math.round(((bytes + streamed) * 1000) / sendingMs) : undefined;
      return {
        ...state,
        ...volumesFrom(state, r('transfer').volumes, 'bytesDuringFreeze'),
        ...drop({
          bytesDuringFreeze: bytes === undefined ? undefined : bytes + (state.bytesDuringFreeze ?? 0),
          transferMs: ms,
          throughputBytesPerSecond: throughput,
        }),
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

/** Why this migration must stop now, if it must: abort, deletion, or a deadline passed. */
function stopReason(m: StoredMigration, facts: Facts): string | undefined {
  if (m.metadata.deletionTimestamp) return 'Aborted: the Migration is being deleted';
  if (m.spec.abort) return 'Aborted: spec.abort was set';
  const ts = m.status.phaseTransitionTimestamps;
  const now = Date.parse(facts.now);
  const phaseStart = Date.parse(ts.at(-1)!.time);
  const progress = parseDuration(m.spec.timeouts.progressTimeout)!;
  const phase = m.status.phase;
  if (phase !== 'Pending' && now - phaseStart > progress) {
    return `ProgressTimeout: ${phase} made no progress for ${m.spec.timeouts.progressTimeout}`;
  }
  const started = ts.find((t) => t.phase === 'Preflight');
  if (started) {
    const gib = Math.max(1, (m.status.migrationState?.imageBytes ?? 0) / 2 ** 30);
    const limit = parseDuration(m.spec.timeouts.completionTimeoutPerGiB)! * gib;
    if (now - Date.parse(started.time) > limit)
      return `CompletionTimeout: not done within ${Math.round(limit / 1000)}s (${m.spec.timeouts.completionTimeoutPerGiB} per GiB)`;
  }
  return undefined;
}

function decidePhase(m: StoredMigration, facts: Facts): Decision {
  let status = m.status;
  const none: Decision = { status, actions: [] };
  const src = m.spec.source.node;
  const state: MigrationState = status.migrationState ?? { sourceNode: src };
  const fail = (reason: string, patch: Partial<MigrationStatus> = {}): Decision => ({
    status: transition(status, 'Failed', facts.now, {
      migrationState: state,
      failureReason: reason,
      ...patch,
    }),
    actions: [],
  });

  // Guards before the phase switch.
  const stop =
    status.phase === 'RollingBack' || status.phase === 'CleaningUp' ? undefined : stopReason(m, facts);
  const aborting = Boolean(m.spec.abort || m.metadata.deletionTimestamp);
  if (stop) {
    const steps = PHASE_STEPS[status.phase] ?? [];
    const active = steps.some(([s]) => facts.jobs[s]?.state === 'active');
    // A running step is never raced: a dump or restore in progress is waited for, and the rollback
    // starts at the next safe point. Jobs nobody picked up are withdrawn.
    if (active) return none;
    const cancels: Action[] = steps
      .filter(([s]) => facts.jobs[s] && ['waiting', 'delayed'].includes(facts.jobs[s]!.state))
      .map(([s, side]) => ({
        type: 'cancel',
        step: s,
        node: sideNode(m, side)!,
        jobId: jobIdFor(m.metadata.uid, s),
      }));
    const abortPatch = aborting ? { abortRequested: true } : {};
    if (!ROLLBACK_PHASES.includes(status.phase)) {
      const d = fail(stop, {
        migrationState: {
          ...state,
          ...abortPatch,
          ...(aborting ? { abortStatus: 'Succeeded' as const } : {}),
        },
      });
      return { status: d.status, actions: cancels };
    }
    return {
      status: transition(status, 'RollingBack', facts.now, {
        failureReason: stop,
        migrationState: {
          ...state,
          ...abortPatch,
          ...(aborting ? { abortStatus: 'Aborting' as const } : {}),
        },
      }),
      actions: cancels,
    };
  }
  if (aborting && status.phase === 'CleaningUp' && state.abortStatus === undefined) {
    // Too late: the workload already runs on the target. The migration completes.
    return {
      status: { ...status, migrationState: { ...state, abortRequested: true, abortStatus: 'Failed' } },
      actions: [],
    };
  }

  if (status.phase === 'Pending') {
    if (!facts.nodes.has(src))
      return fail(`NodeNotFound: source node ${src} is not registered (no agent heartbeat)`);
    const placed = pickTarget(m.spec, facts.nodes, facts.load);
    if ('error' in placed) return fail(placed.error);
    const target = placed.node;
    const queued =
      facts.load.running >= facts.limits.maxRunning
        ? `${facts.load.running} migrations are running in the cluster (limit ${facts.limits.maxRunning})`
        : (facts.load.outbound[src] ?? 0) >= facts.limits.maxOutboundPerNode
          ? `${facts.load.outbound[src]} migrations are leaving ${src} (limit ${facts.limits.maxOutboundPerNode} per node)`
          : undefined;
    if (queued) return { status, actions: [], queued };
    return {
      status: transition(status, 'Preflight', facts.now, {
        migrationState: { ...state, targetNode: target },
      }),
      actions: [],
    };
  }

  const target = state.targetNode!;
  const steps = PHASE_STEPS[status.phase] ?? [];
  const actions: Action[] = [];
  const failures: string[] = [];
  const warnings: string[] = [];
  const skipped = new Set<StepName>();
  const gone = new Set<StepName>();
  let allDone = true;
  for (const [step, side] of steps) {
    const fact = facts.jobs[step];
    const node = side === 'source' ? src : target;
    // A node whose agent stopped beating is gone (fenced: its copy died with it). A step nobody
    // there finished fails the migration at once; while rolling back or cleaning up, the target's
    // steps are skipped, so a gone target never keeps the source frozen.
    const unclaimed = !fact || fact.state === 'waiting' || fact.state === 'delayed';
    // A job a gone node had taken died with it: no worker there will ever finish it or see it stall.
    if (!facts.nodes.has(node) && (unclaimed || fact.state === 'active')) {
      if (fact && unclaimed)
        actions.push({ type: 'cancel', step, node, jobId: jobIdFor(m.metadata.uid, step) });
      if ((status.phase === 'RollingBack' && side === 'target') || status.phase === 'CleaningUp') {
        skipped.add(step);
        warnings.push(
          `${step} skipped: node ${node} is gone (no agent heartbeat); its agent removes the leftovers when it returns`,
        );
      } else
        failures.push(`${step} on ${node} failed: NodeNotFound: node ${node} is gone (no agent heartbeat)`);
      gone.add(step);
      continue;
    }
    // A bare process tree keeps its PIDs: its target copy must be gone before the source's returns.
    const after =
      AFTER[step] ?? (m.spec.source.pid && step === 'resumeSource' ? 'rollbackTarget' : undefined);
    if (!fact && after && facts.jobs[after]?.state !== 'completed' && !skipped.has(after)) {
      allDone = false; // waits for the step whose result it needs
    } else if (!fact) {
      const job = buildJob(m, step, target, facts.jobs);
      actions.push({ type: 'enqueue', step, node, jobId: jobIdFor(m.metadata.uid, step), job });
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
      return !gone.has(s) && f !== undefined && f.state !== 'completed' && f.state !== 'failed';
    });
    const cancels = actions.filter((a) => a.type === 'cancel'); // jobs a gone node never took
    if (unsettled) return { status, actions: cancels };
    const reason = failures.join('; ');
    switch (status.phase) {
      case 'Preflight':
        return { ...fail(reason), actions: cancels }; // nothing was frozen or written
      case 'RollingBack':
        return fail(`${status.failureReason ?? 'rolled back'}; rollback incomplete: ${reason}`, {
          migrationState: {
            ...state,
            ...(state.abortStatus === 'Aborting' ? { abortStatus: 'Failed' as const } : {}),
          },
        });
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
          actions: cancels,
        };
    }
  }

  if (!allDone) return { status, actions };
  const noted = [...(status.warnings ?? []), ...warnings.filter((w) => !status.warnings?.includes(w))];
  if (warnings.length) status = { ...status, warnings: noted };

  switch (status.phase) {
    case 'RollingBack':
      return {
        status: transition(status, 'Failed', facts.now, {
          migrationState: {
            ...state,
            ...(state.abortStatus === 'Aborting' ? { abortStatus: 'Succeeded' as const } : {}),
          },
        }),
        actions: [],
      };
    case 'Preflight': {
      const r = (facts.jobs.preflightSource?.result ?? {}) as Record<string, unknown>;
      const measured: Measured = {
        features: (r.features as Measured['features'] | undefined) ?? {
          memDirtyTrack: false,
          lazyPages: false,
        },
        lazyPagesProblem: str(r.lazyPagesProblem),
        memoryBytes: num(r.memoryBytes),
        linkBytesPerSecond: num(r.linkBytesPerSecond),
      };
      const choice = chooseMode(m.spec, measured, src);
      if (!choice.mode)
        return fail(choice.reason, { migrationState: { ...state, modeReason: choice.reason } });
      const linkRate = measured.linkBytesPerSecond;
      const warnings = Array.isArray(r.warnings) ? (r.warnings as string[]) : [];
      return {
        status: transition(status, 'Syncing', facts.now, {
          ...(warnings.length ? { warnings: [...(status.warnings ?? []), ...warnings] } : {}),
          migrationState: {
            ...state,
            mode: choice.mode,
            modeReason: choice.reason,
            ...(linkRate ? { linkBytesPerSecond: linkRate } : {}),
          },
        }),
        actions: [],
      };
    }
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

export function decide(m: StoredMigration, facts: Facts): Decision {
  if (TERMINAL_PHASES.includes(m.status.phase)) {
    // Terminal phases are never left; a deleted one may now go.
    return { status: m.status, actions: m.metadata.deletionTimestamp ? [{ type: 'release' }] : [] };
  }
  const d = decidePhase(m, facts);
  const withConds = withConditions(m, d.status, facts.now, d.queued);
  const actions =
    TERMINAL_PHASES.includes(withConds.phase) && m.metadata.deletionTimestamp
      ? [...d.actions, { type: 'release' as const }]
      : d.actions;
  return { status: withConds, actions };
}

/** A fresh status for a newly stored Migration. */
export function initialStatus(now: string): MigrationStatus {
  return { phase: 'Pending', phaseTransitionTimestamps: [{ phase: 'Pending', time: now }] };
}
