// The one function that decides. Given a Migration and the observed facts (the states of its jobs,
// which nodes are alive, how many migrations run), it returns the next status and the actions to
// take. No I/O happens here, so every phase and every failure is testable as a table
// (reconcile.test.ts). The order follows KubeVirt's migration controller: terminal phases return at
// once, then the guards (abort, deletion, timeouts: phases/guards.ts), then the phase: admission
// (phases/admit.ts) or a walk of the phase's steps (phases/run-steps.ts) and what it comes to
// (phases/outcome.ts).
import { TERMINAL_PHASES, type MigrationState, type StoredMigration } from '../api/v1alpha1/migration.ts';
import type { Action, Decision, Facts } from './phases/facts.ts';
import { admit } from './phases/admit.ts';
import { withConditions } from './phases/conditions.ts';
import { guard } from './phases/guards.ts';
import { withProgress } from './phases/progress.ts';
import { afterFailure, afterSuccess } from './phases/outcome.ts';
import { unsettled, walkSteps } from './phases/run-steps.ts';

export * from './phases/facts.ts';
export { sideNode } from './phases/steps.ts';
export { routeOf } from './phases/routes.ts';

/** Once the transfer completed the target may restore: remembered, since rollback depends on it. */
function handOver(m: StoredMigration, facts: Facts, state: MigrationState): MigrationState {
  const done = m.status.phase === 'Transferring' && facts.jobs.transfer?.state === 'completed';
  return done && !state.handedOver ? { ...state, handedOver: true } : state;
}

function decidePhase(m: StoredMigration, facts: Facts): Decision {
  const state = handOver(m, facts, m.status.migrationState ?? { sourceNode: m.spec.source.node });
  const guarded = guard(m, facts, state);
  if (guarded) return guarded;
  if (m.status.phase === 'Pending') return admit(m, facts, state);

  const walk = walkSteps(m, facts, state);
  if (walk.failures.length) {
    // Let sibling steps of the phase settle before moving on, so no step races a rollback.
    const cancels: Action[] = walk.actions.filter((a) => a.type === 'cancel'); // jobs a gone node never took
    if (unsettled(m, facts, walk.gone)) return { status: m.status, actions: cancels };
    const d = afterFailure(m, facts, state, walk.failures.join('; '));
    const ending = m.status.phase === 'RollingBack' || m.status.phase === 'CleaningUp';
    return ending ? d : { ...d, actions: cancels };
  }
  const known = m.status.warnings ?? [];
  if (!walk.allDone) {
    const said = walk.waiting.filter((w) => !known.includes(w));
    return {
      status: said.length ? { ...m.status, warnings: [...known, ...said] } : m.status,
      actions: walk.actions,
    };
  }
  const added = walk.warnings.filter((w) => !known.includes(w));
  const status = walk.warnings.length ? { ...m.status, warnings: [...known, ...added] } : m.status;
  return afterSuccess({ ...m, status }, facts, state);
}

export function decide(m: StoredMigration, facts: Facts): Decision {
  if (TERMINAL_PHASES.includes(m.status.phase)) {
    // Terminal phases are never left; a deleted one may now go.
    return { status: m.status, actions: m.metadata.deletionTimestamp ? [{ type: 'release' }] : [] };
  }
  const d = decidePhase(m, facts);
  // A new phase starts without the last one's progress; within a phase it follows the agent's.
  const { progress: _last, ...moved } = d.status;
  const status = d.status.phase === m.status.phase ? withProgress(m, d.status, facts.jobs, facts.now) : moved;
  const withConds = withConditions(m, status, facts.now, d.queued);
  const actions =
    TERMINAL_PHASES.includes(withConds.phase) && m.metadata.deletionTimestamp
      ? [...d.actions, { type: 'release' as const }]
      : d.actions;
  return { status: withConds, actions };
}
