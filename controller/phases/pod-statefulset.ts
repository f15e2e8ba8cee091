// The pod route for a StatefulSet's pod (pod-route.ts hands over here when migrationState names a
// StatefulSet): its name, hostname and claims are its identity, so the replacement is not a second
// pod beside the source but the StatefulSet's own pod created again. Once both nodes hold the
// checkpoint images (Restoring, recorded as handedOver), ferry deletes the frozen source; the
// StatefulSet creates the pod again under its name, and ferry's admission webhook
// (controller/kube/admission.ts) makes it the replacement before it exists: checkpoint images, held
// by the volumes gate, placed on the target. ferry writes its emptyDirs and releases it.
// A failure after the hand-over restores the same checkpoint on the source the same way (the
// webhook places the pod there while rolling back): the source pod is gone by then, and the
// checkpoint both nodes hold is the one copy of its state. Pure.
import type { V1Pod } from '@kubernetes/client-node';
import type { MigrationState, Phase, StoredMigration } from '../../api/v1alpha1/migration.ts';
import { podRunning } from '../../lib/kube/pod-rules.ts';
import { MIGRATION, ungated } from '../kube/pod-spec.ts';
import type { Action, Facts, StepName } from './facts.ts';
import type { Gate, StepSpec } from './route.ts';

/** The pod made again is there, placed on `node` by the webhook: its emptyDirs can be written. */
const placedFor =
  (side: 'source' | 'target') =>
  (facts: Facts, m: StoredMigration): boolean => {
    const r = facts.pods?.replacement;
    const node = side === 'source' ? m.spec.source.node : m.status.migrationState?.targetNode;
    return !!r && r.metadata?.annotations?.[MIGRATION] === m.metadata.name && placedOn(r) === node;
  };

/** The steps of a StatefulSet pod's phases that differ from any pod's. */
export function statefulSetSteps(m: StoredMigration, phase: Phase): readonly StepSpec[] | undefined {
  switch (phase) {
    // Both nodes import: the target to restore, the source to restore again if the target fails.
    case 'Restoring':
      return [
        { step: 'podImport', side: 'target' },
        { step: 'podImportSource', side: 'source' },
      ];
    case 'Verifying':
      return [{ step: 'podVolumes', side: 'target', ready: placedFor('target') }];
    case 'CleaningUp':
      return [
        { step: 'podCleanupSource', side: 'source', after: ['podRemoveImagesSource'] },
        { step: 'podCleanupTarget', side: 'target' },
        { step: 'podRemoveImagesSource', side: 'source' },
      ];
    case 'RollingBack':
      if (!m.status.migrationState?.handedOver) return undefined;
      return [
        { step: 'podVolumesSource', side: 'source', ready: placedFor('source') },
        { step: 'podRemoveImages', side: 'target', afterGate: true },
        { step: 'podCleanupTarget', side: 'target', after: ['podRemoveImages'] },
        { step: 'podCleanupSource', side: 'source', afterGate: true },
      ];
    default:
      return undefined;
  }
}

/** The node a pod is bound or placed on (the webhook places by node affinity). Pure. */
export function placedOn(pod: V1Pod): string | undefined {
  if (pod.spec?.nodeName) return pod.spec.nodeName;
  const terms =
    pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  return terms?.[0]?.matchFields?.find((f) => f.key === 'metadata.name')?.values?.[0];
}

const wait: Gate = { actions: [], failures: [], done: false };
const act = (a: Action): Gate => ({ actions: [a], failures: [], done: false });
const del = (m: StoredMigration, pod: V1Pod): Gate =>
  act({ type: 'deletePod', namespace: m.metadata.namespace, name: pod.metadata!.name! });

/**
 * The StatefulSet's pod, created again, restored from the checkpoint on `node`: delete whatever
 * else holds its name (the frozen source, a pod placed elsewhere), wait for the StatefulSet and the
 * webhook, release it once the step writing its emptyDirs (`volumes`) is done, until it runs.
 */
function restoredOn(
  m: StoredMigration,
  facts: Facts,
  node: string,
  volumes: StepName,
  fail: (why: string) => Gate,
): Gate {
  const { source, replacement: r } = facts.pods ?? {};
  if (source) return del(m, source);
  if (!r) return wait;
  if (r.metadata?.annotations?.[MIGRATION] !== m.metadata.name)
    return fail(
      `the StatefulSet created ${r.metadata?.name} again without ferry's admission webhook (is it installed and reachable?): it does not start from the checkpoint`,
    );
  if (placedOn(r) !== node) return del(m, r);
  const release = ungated(r);
  if (release)
    return facts.jobs[volumes]?.state === 'completed' ? act({ type: 'updatePod', pod: release }) : wait;
  const run = podRunning(r);
  if (run.running) return { actions: [], failures: [], done: true };
  // Restoring it on the source is the last way back: the kubelet retries it until it runs (a
  // registry back up, a node with room again); ferry waits with it rather than give up on it.
  if (run.problem && m.status.phase !== 'RollingBack')
    return fail(`pod ${r.metadata?.name} on ${node}: ${run.problem}`);
  return wait;
}

/** The controller's work in a StatefulSet pod's phase; undefined where any pod's applies. */
export function statefulSetGate(
  m: StoredMigration,
  facts: Facts,
  state: MigrationState,
  fail: (why: string) => Gate,
): Gate | undefined {
  switch (m.status.phase) {
    case 'Restoring':
      return { actions: [], failures: [], done: true };
    case 'Verifying':
      return restoredOn(m, facts, state.targetNode!, 'podVolumes', (why) =>
        fail(`CriuRestoreFailed: ${why}`),
      );
    case 'CleaningUp':
      // The source pod went at the hand-over; the replacement is the StatefulSet's own.
      return { actions: [], failures: [], done: true };
    case 'RollingBack':
      if (!state.handedOver) return undefined;
      return restoredOn(m, facts, m.spec.source.node, 'podVolumesSource', (why) =>
        fail(`SourceResumeFailed: restoring it on the source from its checkpoint: ${why}`),
      );
    default:
      return undefined;
  }
}
