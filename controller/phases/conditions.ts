// Conditions, the Kubernetes way: each has a type, a status and a reason; lastTransitionTime moves
// only when the status flips; observedGeneration says which spec they describe. Pure.
import {
  TERMINAL_PHASES,
  type Condition,
  type MigrationStatus,
  type StoredMigration,
} from '../../api/v1alpha1/migration.ts';

function setCondition(list: Condition[], c: Omit<Condition, 'lastTransitionTime'>, now: string): Condition[] {
  const old = list.find((x) => x.type === c.type);
  const lastTransitionTime = old && old.status === c.status ? old.lastTransitionTime : now;
  const next = { ...c, lastTransitionTime };
  return old ? list.map((x) => (x.type === c.type ? next : x)) : [...list, next];
}

/** The status with its conditions brought in line with its phase. */
export function withConditions(
  m: StoredMigration,
  status: MigrationStatus,
  now: string,
  queued?: string,
): MigrationStatus {
  const generation = m.metadata.generation;
  const base = { observedGeneration: generation };
  let conds = status.conditions ?? [];
  const terminal = TERMINAL_PHASES.includes(status.phase);
  conds =
    status.phase === 'Pending'
      ? setCondition(
          conds,
          {
            ...base,
            type: 'Admitted',
            status: 'False',
            reason: queued ? 'ConcurrencyLimit' : 'Waiting',
            message: queued ?? 'waiting for the controller to place it',
          },
          now,
        )
      : status.phaseTransitionTimestamps.some((t) => t.phase === 'Preflight')
        ? setCondition(
            conds,
            {
              ...base,
              type: 'Admitted',
              status: 'True',
              reason: 'Admitted',
              message: `to ${status.migrationState?.targetNode ?? '?'}`,
            },
            now,
          )
        : conds;
  conds = setCondition(
    conds,
    terminal
      ? {
          ...base,
          type: 'Progressing',
          status: 'False',
          reason: status.phase,
          message: status.failureReason ?? 'migration complete',
        }
      : {
          ...base,
          type: 'Progressing',
          status: 'True',
          reason: status.phase,
          message: `in phase ${status.phase}`,
        },
    now,
  );
  if (terminal) {
    conds = setCondition(
      conds,
      {
        ...base,
        type: 'Completed',
        status: 'True',
        reason: status.phase,
        message: status.failureReason ?? `running on ${status.migrationState?.targetNode}`,
      },
      now,
    );
  }
  if (status.migrationState?.abortRequested) {
    conds = setCondition(
      conds,
      {
        ...base,
        type: 'AbortRequested',
        status: 'True',
        reason: status.migrationState.abortStatus ?? 'Aborting',
        message: status.failureReason ?? 'abort requested',
      },
      now,
    );
  }
  return { ...status, conditions: conds, observedGeneration: generation };
}
