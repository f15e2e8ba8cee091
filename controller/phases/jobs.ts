// The job each step of a container (or process-tree) migration sends its agent, built from the
// Migration and what earlier steps reported. One small builder per step; pure.
import type { JobOf } from '../../api/v1alpha1/jobs.ts';
import type { StoredMigration } from '../../api/v1alpha1/migration.ts';
import { parseDuration, parseQuantity } from '../../api/v1alpha1/quantity.ts';
import { frozenStepDeadlineMs } from './strategy.ts';
import type { KindOf, StepFacts } from './facts.ts';

/** The steps of a container migration. */
export type ContainerStep =
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

interface Input {
  m: StoredMigration;
  targetNode: string;
  jobs: StepFacts;
  fenced?: ReadonlySet<string> | undefined;
}

const ref = (m: StoredMigration) => {
  const pid = m.spec.source.pid;
  const workload = pid ? ('process' as const) : ('container' as const);
  return { uid: m.metadata.uid, name: m.metadata.name, workload, ...(pid ? { pid } : {}) };
};
const who = (m: StoredMigration) => ({ migration: ref(m), container: m.spec.source.container });
/** The steps after Preflight name each volume's driver, as the source's preflight chose it. */
const base = (m: StoredMigration) => ({
  ...who(m),
  volumes: (m.status.migrationState?.volumes ?? []).map((v) => ({ name: v.name, driver: v.driver })),
});

const bandwidthOf = (m: StoredMigration): number | undefined =>
  m.spec.strategy.bandwidth ? parseQuantity(m.spec.strategy.bandwidth) : undefined;

/** What a send weighs compression against: the measured link, capped by the bandwidth limit. */
function linkOptions(m: StoredMigration) {
  const bandwidth = bandwidthOf(m);
  const measured = m.status.migrationState?.linkBytesPerSecond;
  const link = measured && bandwidth ? Math.min(measured, bandwidth) : (measured ?? bandwidth);
  return {
    compression: m.spec.strategy.compression,
    ...(bandwidth ? { bandwidth } : {}),
    ...(link ? { linkBytesPerSecond: link } : {}),
  };
}

/** The deadline of a step taken while the source is frozen (agent-enforced). */
const deadline = (m: StoredMigration) => ({
  deadlineMs: frozenStepDeadlineMs(
    m.status.migrationState?.estimatedFreezeMs,
    parseDuration(m.spec.timeouts.progressTimeout)!,
  ),
});

type Builders = { [S in ContainerStep]: (i: Input) => JobOf<KindOf<S>> };

const BUILDERS: Builders = {
  preflightSource: ({ m, targetNode }) => ({ kind: 'preflightSource', ...who(m), targetNode }),
  preflightTarget: ({ m, jobs }) => {
    const src = jobs.preflightSource?.result;
    const requirements = {
      ...(src?.cpuinfo !== undefined ? { cpuinfo: src.cpuinfo } : {}),
      ...(src?.memoryBytes !== undefined ? { memoryBytes: src.memoryBytes } : {}),
      ...(src?.rootfsBytes !== undefined ? { rootfsBytes: src.rootfsBytes } : {}),
      ...(src?.gpu ? { gpu: src.gpu } : {}),
    };
    return { kind: 'preflightTarget', ...who(m), requirements };
  },
  sync: ({ m, targetNode }) => ({ kind: 'sync', ...base(m), targetNode, ...linkOptions(m) }),
  checkpoint: ({ m, targetNode }) => {
    const bandwidth = bandwidthOf(m);
    const mode = m.status.migrationState?.mode;
    return {
      kind: 'checkpoint',
      ...base(m),
      targetNode,
      mode: mode === 'PreCopy' || mode === 'PostCopy' ? mode : 'StopAndCopy',
      maxIterations: m.spec.strategy.maxIterations,
      ...(bandwidth ? { bandwidth } : {}),
      // PreCopy's rounds run while the workload runs: only its last dump is frozen, not the job.
      ...(mode === 'PreCopy' ? {} : deadline(m)),
    };
  },
  transfer: ({ m, targetNode }) => ({
    kind: 'transfer',
    ...base(m),
    targetNode,
    ...linkOptions(m),
    ...deadline(m),
  }),
  restore: ({ m }) => {
    const port = m.status.migrationState?.lazyPagesPort;
    const lazy =
      m.status.migrationState?.mode === 'PostCopy' && port
        ? { sourceNode: m.spec.source.node, port }
        : undefined;
    return { kind: 'restore', ...base(m), ...(lazy ? { lazy } : {}), ...deadline(m) };
  },
  verifyTarget: ({ m }) => ({ kind: 'verifyTarget', ...who(m) }),
  cleanupSource: ({ m }) => ({
    kind: 'cleanupSource',
    ...base(m),
    keepImages: m.spec.sourcePolicy === 'KeepImages',
  }),
  cleanupTarget: ({ m }) => ({ kind: 'cleanupTarget', ...base(m) }),
  rollbackTarget: ({ m }) => ({ kind: 'rollbackTarget', ...base(m) }),
  resumeSource: ({ m, jobs, fenced, targetNode }) => {
    // Handed over: the source runs again only on the target's word or its fence.
    const release = !m.status.migrationState?.handedOver
      ? undefined
      : jobs.rollbackTarget?.state === 'completed'
        ? ('targetRemoved' as const)
        : fenced?.has(targetNode)
          ? ('targetFenced' as const)
          : undefined;
    return { kind: 'resumeSource', ...base(m), ...(release ? { release } : {}) };
  },
};

export function buildContainerJob<S extends ContainerStep>(step: S, input: Input): JobOf<KindOf<S>> {
  return BUILDERS[step](input);
}
