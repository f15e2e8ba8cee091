// What a walked phase comes to: on a failure, a rollback or an end that depends on the phase; on
// completion, the next phase with the results recorded (after Preflight, as the route decides).
import type { MigrationState, MigrationStatus, StoredMigration } from '../../api/v1alpha1/migration.ts';
import type { Decision, Facts } from './facts.ts';
import { routeOf } from './routes.ts';
import { transition } from './steps.ts';

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
      return {
        status: transition(status, 'RollingBack', facts.now, {
          migrationState: state,
          failureReason: reason,
        }),
        actions: [],
      };
  }
}

/** Every step of the phase completed (or was skipped for a gone node): the next phase. */
export function afterSuccess(m: StoredMigration, facts: Facts, state: MigrationState): Decision {
  const status = m.status;
  const route = routeOf(m);
  if (status.phase === 'RollingBack')
    return {
      status: transition(status, 'Failed', facts.now, {
        migrationState: {
          ...route.record('RollingBack', state, facts),
          ...(state.abortStatus === 'Aborting' ? { abortStatus: 'Succeeded' as const } : {}),
        },
      }),
      actions: [],
    };
  if (status.phase === 'Preflight') return route.afterPreflight(m, facts, state);
  const next = route.next[status.phase];
  if (!next) return { status, actions: [] };
  return {
    status: transition(status, next, facts.now, {
      migrationState: route.record(status.phase, state, facts),
    }),
    actions: [],
  };
}
