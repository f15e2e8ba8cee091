// The guards decide() runs before the phase switch, as KubeVirt's migration controller does: a
// deletion or abort, and the progress and completion deadlines. Pure.
import type { MigrationState, MigrationStatus, StoredMigration } from '../../api/v1alpha1/migration.ts';
import { parseDuration } from '../../api/v1alpha1/quantity.ts';
import { keyspace } from '../../lib/keyspace.ts';
import type { Action, Decision, Facts } from './facts.ts';
import { routeOf } from './routes.ts';
import { ROLLBACK_PHASES, sideNode, transition } from './steps.ts';

/** Why this migration must stop now, if it must: abort, deletion, or a deadline passed. */
export function stopReason(m: StoredMigration, facts: Facts): string | undefined {
  if (m.metadata.deletionTimestamp) return 'Aborted: the Migration is being deleted';
  if (m.spec.abort) return 'Aborted: spec.abort was set';
  const ts = m.status.phaseTransitionTimestamps;
  const now = Date.parse(facts.now);
  // The controller's monotonic measure when it has one, else the timestamps' wall clock.
  const inPhase = facts.elapsed?.phaseMs ?? now - Date.parse(ts.at(-1)!.time);
  const progress = parseDuration(m.spec.timeouts.progressTimeout)!;
  const phase = m.status.phase;
  if (phase !== 'Pending' && inPhase > progress) {
    return `ProgressTimeout: ${phase} made no progress for ${m.spec.timeouts.progressTimeout}`;
  }
  const started = ts.find((t) => t.phase === 'Preflight');
  if (started) {
    const gib = Math.max(1, (m.status.migrationState?.imageBytes ?? 0) / 2 ** 30);
    const limit = parseDuration(m.spec.timeouts.completionTimeoutPerGiB)! * gib;
    const running = facts.elapsed?.sincePreflightMs ?? now - Date.parse(started.time);
    if (running > limit)
      return `CompletionTimeout: not done within ${Math.round(limit / 1000)}s (${m.spec.timeouts.completionTimeoutPerGiB} per GiB)`;
  }
  return undefined;
}

const aborting = (m: StoredMigration): boolean => Boolean(m.spec.abort || m.metadata.deletionTimestamp);

/** Jobs of the phase that nobody picked up, withdrawn so that a returning node cannot run them. */
function withdrawUnclaimed(m: StoredMigration, facts: Facts): Action[] {
  return routeOf(m)
    .steps(m, m.status.phase)
    .filter(({ step: s }) => facts.jobs[s] && ['waiting', 'delayed'].includes(facts.jobs[s]!.state))
    .map(({ step: s, side }) => ({
      type: 'cancel',
      step: s,
      node: sideNode(m, side)!,
      jobId: keyspace.jobId(m.metadata.uid, s),
    }));
}

/** A stop: the migration ends (nothing frozen or written yet) or rolls back, at a safe point. */
function stop(m: StoredMigration, facts: Facts, state: MigrationState, reason: string): Decision {
  const status = m.status;
  const steps = routeOf(m).steps(m, status.phase);
  // A running step is never raced: a dump or restore in progress is waited for, and the rollback
  // starts at the next safe point. Jobs nobody picked up are withdrawn.
  if (steps.some(({ step: s }) => facts.jobs[s]?.state === 'active')) return { status, actions: [] };
  const actions = withdrawUnclaimed(m, facts);
  const abort = aborting(m);
  const abortPatch = abort ? { abortRequested: true } : {};
  if (!ROLLBACK_PHASES.includes(status.phase)) {
    const next: MigrationStatus = transition(status, 'Failed', facts.now, {
      failureReason: reason,
      migrationState: { ...state, ...abortPatch, ...(abort ? { abortStatus: 'Succeeded' as const } : {}) },
    });
    return { status: next, actions };
  }
  return {
    status: transition(status, 'RollingBack', facts.now, {
      failureReason: reason,
      migrationState: { ...state, ...abortPatch, ...(abort ? { abortStatus: 'Aborting' as const } : {}) },
    }),
    actions,
  };
}

/** The guards' decision, or undefined when the phase goes on as usual. */
export function guard(m: StoredMigration, facts: Facts, state: MigrationState): Decision | undefined {
  const phase = m.status.phase;
  // Rolling back and cleaning up are how a migration ends: nothing stops them.
  const reason = phase === 'RollingBack' || phase === 'CleaningUp' ? undefined : stopReason(m, facts);
  if (reason) return stop(m, facts, state, reason);
  if (aborting(m) && phase === 'CleaningUp' && state.abortStatus === undefined) {
    // Too late: the workload already runs on the target. The migration completes.
    return {
      status: { ...m.status, migrationState: { ...state, abortRequested: true, abortStatus: 'Failed' } },
      actions: [],
    };
  }
  return undefined;
}
