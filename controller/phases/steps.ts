// The step table: which steps each phase runs, on which side, in what order, and what comes next.
// Pure data and helpers; decide() walks it.
import type { MigrationStatus, Phase, StoredMigration } from '../../api/v1alpha1/migration.ts';
import type { Side, StepName } from './facts.ts';

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

export const NEXT: Partial<Record<Phase, Phase>> = {
  Preflight: 'Syncing',
  Syncing: 'Checkpointing',
  Checkpointing: 'Transferring',
  Transferring: 'Restoring',
  Restoring: 'Verifying',
  Verifying: 'CleaningUp',
  CleaningUp: 'Succeeded',
};

/** Phases in which a stop (abort, deletion, timeout) rolls back rather than simply ending. */
export const ROLLBACK_PHASES: readonly Phase[] = [
  'Syncing',
  'Checkpointing',
  'Transferring',
  'Restoring',
  'Verifying',
];

/** The step that moves bytes in each phase: the running send, the streamed dump, the rest. */
export const SENDING_STEP: Partial<Record<Phase, 'sync' | 'checkpoint' | 'transfer'>> = {
  Syncing: 'sync',
  Checkpointing: 'checkpoint',
  Transferring: 'transfer',
};

/**
 * The step a step waits for within its phase: the target's preflight needs the source's result,
 * and a bare process tree keeps its PIDs, so its target copy must be gone before the source's returns.
 */
export function waitsFor(m: StoredMigration, step: StepName): StepName | undefined {
  if (step === 'preflightTarget') return 'preflightSource';
  if (step === 'resumeSource' && m.spec.source.pid) return 'rollbackTarget';
  return undefined;
}

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
