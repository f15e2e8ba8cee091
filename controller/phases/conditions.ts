// Conditions, the Kubernetes way: each has a type, a status and a reason; lastTransitionTime moves
// only when the status flips; observedGeneration says which spec they describe. Pure.
import { formatDuration } from '../../api/v1alpha1/quantity.ts';
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

type Wanted = Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>;

/** Admitted: False while Pending (queued by a limit, or waiting), True once it has been placed. */
function admitted(status: MigrationStatus, queued: string | undefined): Wanted | undefined {
  if (status.phase === 'Pending')
    return {
      type: 'Admitted',
      status: 'False',
      reason: queued ? 'ConcurrencyLimit' : 'Waiting',
      message: queued ?? 'waiting for the controller to place it',
    };
  if (!status.phaseTransitionTimestamps.some((t) => t.phase === 'Preflight')) return undefined;
  const message = `to ${status.migrationState?.targetNode ?? '?'}`;
  return { type: 'Admitted', status: 'True', reason: 'Admitted', message };
}

/**
 * Progressing while a phase runs; once it ended, Succeeded or Failed, each True only for its own
 * outcome (as a Job's Complete and Failed): `kubectl wait --for=condition=Succeeded` tells one
 * from the other.
 */
function progressing(status: MigrationStatus): Wanted[] {
  if (!TERMINAL_PHASES.includes(status.phase))
    return [
      { type: 'Progressing', status: 'True', reason: status.phase, message: `in phase ${status.phase}` },
    ];
  const ended: Wanted =
    status.phase === 'Succeeded'
      ? {
          type: 'Succeeded',
          status: 'True',
          reason: 'MigrationSucceeded',
          message: `running on ${status.migrationState?.targetNode}`,
        }
      : {
          type: 'Failed',
          status: 'True',
          reason: 'MigrationFailed',
          message: status.failureReason ?? 'failed',
        };
  const done = status.failureReason ?? 'migration complete';
  return [{ type: 'Progressing', status: 'False', reason: status.phase, message: done }, ended];
}

function abortRequested(status: MigrationStatus): Wanted | undefined {
  const s = status.migrationState;
  if (!s?.abortRequested) return undefined;
  const message = status.failureReason ?? 'abort requested';
  return { type: 'AbortRequested', status: 'True', reason: s.abortStatus ?? 'Aborting', message };
}

/** The status with its conditions (and its downtime as a duration) brought in line with its phase. */
export function withConditions(
  m: StoredMigration,
  status: MigrationStatus,
  now: string,
  queued?: string,
): MigrationStatus {
  const generation = m.metadata.generation;
  const wanted = [admitted(status, queued), ...progressing(status), abortRequested(status)];
  let conds = status.conditions ?? [];
  for (const c of wanted) if (c) conds = setCondition(conds, { ...c, observedGeneration: generation }, now);
  const s = status.migrationState;
  const downtime = s?.downtimeMs !== undefined ? formatDuration(s.downtimeMs) : undefined;
  return {
    ...status,
    conditions: conds,
    observedGeneration: generation,
    ...(s && downtime && s.downtime !== downtime ? { migrationState: { ...s, downtime } } : {}),
  };
}
