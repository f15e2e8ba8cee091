// What every route shares: the phases a stop rolls back from, the step that sends in each phase,
// which node runs a side, and how a phase change is written. Pure.
import type { MigrationStatus, Phase, StoredMigration } from '../../api/v1alpha1/migration.ts';
import type { Side } from './facts.ts';

/** Phases in which a stop (abort, deletion, timeout) rolls back rather than simply ending. */
export const ROLLBACK_PHASES: readonly Phase[] = [
  'Syncing',
  'Checkpointing',
  'Transferring',
  'Restoring',
  'Verifying',
];

/** A container's step that moves bytes in each phase: the running send, the streamed dump, the rest. */
export const SENDING_STEP: Partial<Record<Phase, 'sync' | 'checkpoint' | 'transfer'>> = {
  Syncing: 'sync',
  Checkpointing: 'checkpoint',
  Transferring: 'transfer',
};

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
