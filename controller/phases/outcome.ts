// What a walked phase comes to: on a failure, a rollback or an end that depends on the phase; on
// completion, the next phase with the results recorded (Preflight also chooses the memory strategy).
import type { MigrationState, MigrationStatus, StoredMigration } from '../../api/v1alpha1/migration.ts';
import type { Decision, Facts } from './facts.ts';
import { recordResults } from './results.ts';
import { NEXT, transition } from './steps.ts';
import { chooseMode } from './strategy.ts';

/** One or more steps failed and the rest settled: where the migration goes from here. */
export function afterFailure(
  m: StoredMigration,
  facts: Facts,
  state: MigrationState,
  reason: string,
): Decision {
  const status = m.status;
  const fail = (why: string, patch: Partial<MigrationStatus> = {}): Decision => ({
    status: transition(status, 'Failed', facts.now, { migrationState: state, failureReason: why, ...patch }),
    actions: [],
  });
  switch (status.phase) {
    case 'Preflight':
      return fail(reason); // nothing was frozen or written
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
      return { status: transition(status, 'RollingBack', facts.now, { failureReason: reason }), actions: [] };
  }
}

/** Preflight done: the strategy is chosen from what the source measured, or the move refused. */
function afterPreflight(m: StoredMigration, facts: Facts, state: MigrationState): Decision {
  const status = m.status;
  const r = facts.jobs.preflightSource?.result;
  const measured = {
    features: r?.features ?? { memDirtyTrack: false, lazyPages: false },
    lazyPagesProblem: r?.lazyPagesProblem,
    memoryBytes: r?.memoryBytes,
    linkBytesPerSecond: r?.linkBytesPerSecond,
  };
  const choice = chooseMode(m.spec, measured, m.spec.source.node);
  if (!choice.mode)
    return {
      status: transition(status, 'Failed', facts.now, {
        migrationState: { ...state, modeReason: choice.reason },
        failureReason: choice.reason,
      }),
      actions: [],
    };
  const warnings = r?.warnings ?? [];
  const linkRate = measured.linkBytesPerSecond;
  return {
    status: transition(status, 'Syncing', facts.now, {
      ...(warnings.length ? { warnings: [...(status.warnings ?? []), ...warnings] } : {}),
      migrationState: {
        ...state,
        // Each volume and the driver that moves it, as the source found them; later steps add bytes.
        ...(r?.volumes?.length
          ? { volumes: r.volumes.map((v) => ({ name: v.name, driver: v.driver })) }
          : {}),
        mode: choice.mode,
        modeReason: choice.reason,
        ...(linkRate ? { linkBytesPerSecond: linkRate } : {}),
      },
    }),
    actions: [],
  };
}

/** Every step of the phase completed (or was skipped for a gone node): the next phase. */
export function afterSuccess(m: StoredMigration, facts: Facts, state: MigrationState): Decision {
  const status = m.status;
  if (status.phase === 'RollingBack')
    return {
      status: transition(status, 'Failed', facts.now, {
        migrationState: {
          ...state,
          ...(state.abortStatus === 'Aborting' ? { abortStatus: 'Succeeded' as const } : {}),
        },
      }),
      actions: [],
    };
  if (status.phase === 'Preflight') return afterPreflight(m, facts, state);
  const next = NEXT[status.phase];
  if (!next) return { status, actions: [] };
  return {
    status: transition(status, next, facts.now, {
      migrationState: recordResults(status.phase, state, facts.jobs),
    }),
    actions: [],
  };
}
