// The route of a container or a bare process tree: the agents run every step (preflight on both
// nodes, the running sync, the freeze and dump, the frozen transfer, the restore and its check, then
// clean-up or rollback), and the controller chooses the memory strategy after Preflight.
import type { MigrationState, Phase, StoredMigration } from '../../api/v1alpha1/migration.ts';
import type { Decision, Facts } from './facts.ts';
import { buildContainerJob, type ContainerStep } from './jobs.ts';
import { recordResults } from './results.ts';
import { stepSpec, type Route, type StepSpec } from './route.ts';
import { SENDING_STEP, transition } from './steps.ts';
import { chooseMode, stopAndCopyDowntimeMs } from './strategy.ts';

const s = stepSpec<ContainerStep>;

/** The steps each phase runs, and on which side. A phase is done when all its steps completed. */
export const CONTAINER_STEPS: Partial<Record<Phase, readonly StepSpec[]>> = {
  // The target's preflight checks itself against what the source's found.
  Preflight: [s('preflightSource', 'source'), s('preflightTarget', 'target', ['preflightSource'])],
  Syncing: [s('sync', 'source')],
  Checkpointing: [s('checkpoint', 'source')],
  Transferring: [s('transfer', 'source')],
  Restoring: [s('restore', 'target')],
  Verifying: [s('verifyTarget', 'target')],
  CleaningUp: [s('cleanupSource', 'source'), s('cleanupTarget', 'target')],
  RollingBack: [s('rollbackTarget', 'target'), s('resumeSource', 'source')],
};

/**
 * The target's copy goes before the source's returns: a bare process tree keeps its PIDs, and once
 * handed over the source may run again only when the target removed its copy (docs/fencing.md).
 */
const ORDERED_ROLLBACK: readonly StepSpec[] = [
  s('rollbackTarget', 'target'),
  s('resumeSource', 'source', ['rollbackTarget']),
];

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
        ...(measured.memoryBytes !== undefined && linkRate
          ? { estimatedFreezeMs: stopAndCopyDowntimeMs(measured.memoryBytes, linkRate) }
          : {}),
        ...(linkRate ? { linkBytesPerSecond: linkRate } : {}),
      },
    }),
    actions: [],
  };
}

export const containerRoute: Route = {
  steps: (m, phase) =>
    phase === 'RollingBack' && (m.spec.source.pid || m.status.migrationState?.handedOver)
      ? ORDERED_ROLLBACK
      : (CONTAINER_STEPS[phase] ?? []),
  next: {
    Preflight: 'Syncing',
    Syncing: 'Checkpointing',
    Checkpointing: 'Transferring',
    Transferring: 'Restoring',
    Restoring: 'Verifying',
    Verifying: 'CleaningUp',
    CleaningUp: 'Succeeded',
  },
  sending: SENDING_STEP,
  build: (step, m, facts, targetNode) =>
    buildContainerJob(step as ContainerStep, { m, targetNode, jobs: facts.jobs, fenced: facts.fenced }),
  afterPreflight,
  record: (phase, state, facts) => recordResults(phase, state, facts.jobs),
};
