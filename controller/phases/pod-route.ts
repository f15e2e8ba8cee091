// The route of a pod (spec.source.pod) on Kubernetes, the way upstream moves one: freeze its
// containers (runc pause under the runtime's root), checkpoint each through the kubelet's
// checkpoint API into a checkpoint OCI image, send the images to the target agent, import them
// into the target runtime's store, create the replacement pod bound to the target, wait until it
// runs and is ready, and only then delete the source pod (a ReplicaSet's pod hands over first:
// cleanUpGate). A failure or an abort before that
// deletes the replacement, removes the images and folders, and thaws the source last.
// The agents' steps are jobs like any other (deterministic ids, retried, idempotent); the
// controller's own work (the pods) is each phase's gate, decided here from the pods it observed.
import type { V1Pod } from '@kubernetes/client-node';
import { podVolumeFile, type Job } from '../../api/v1alpha1/jobs.ts';
import { parseQuantity } from '../../api/v1alpha1/quantity.ts';
import type { MigrationState, Phase, StoredMigration } from '../../api/v1alpha1/migration.ts';
import { errorMessage, FerryError } from '../../lib/errors.ts';
import { claimProblem, emptyDirsOf, podProblem, podRunning } from '../../lib/kube/pod-rules.ts';
import {
  adopted,
  checkpointImageRef,
  replacementPod,
  replacementPodName,
  runtimeContainers,
  statefulSetOwner,
  ungated,
  withDeletionCost,
} from '../kube/pod-spec.ts';
import type { Action, Decision, Facts, StepName } from './facts.ts';
import { stepSpec, type Gate, type Route, type StepSpec } from './route.ts';
import { statefulSetGate, statefulSetSteps } from './pod-statefulset.ts';
import { transition } from './steps.ts';

type PodStep =
  | 'podSync'
  | 'podFreeze'
  | 'podCheckpoint'
  | 'podSend'
  | 'podImport'
  | 'podVolumes'
  | 'podRemoveImages'
  | 'podThaw'
  | 'podCleanupSource'
  | 'podCleanupTarget'
  | 'podImportSource'
  | 'podVolumesSource'
  | 'podRemoveImagesSource';

const s = stepSpec<PodStep>;

/** The agents' steps; the phases without one are the controller's own (their gates below). */
export const POD_STEPS: Partial<Record<Phase, readonly StepSpec[]>> = {
  // While the pod runs: its emptyDirs whole to the target (a pod without any skips the phase).
  Syncing: [s('podSync', 'source')],
  Checkpointing: [s('podFreeze', 'source'), s('podCheckpoint', 'source', ['podFreeze'])],
  Transferring: [s('podSend', 'source')],
  // The replacement's emptyDirs, once the gate created it (its uid names their folders).
  Restoring: [s('podImport', 'target'), { ...s('podVolumes', 'target', ['podImport']), afterGate: true }],
  CleaningUp: [s('podCleanupSource', 'source'), s('podCleanupTarget', 'target')],
  // Newest first, the source thawed last, once nothing else of the move can run.
  RollingBack: [
    // Images in use by a replacement cannot go: they wait until it is deleted (the gate).
    { ...s('podRemoveImages', 'target'), afterGate: true },
    s('podCleanupTarget', 'target', ['podRemoveImages']),
    s('podCleanupSource', 'source'),
    s('podThaw', 'source', ['podRemoveImages', 'podCleanupTarget', 'podCleanupSource']),
  ],
};

const where = (m: StoredMigration) => `pod ${m.metadata.namespace}/${m.spec.source.pod}`;
export const targetPodOf = (m: StoredMigration): string =>
  m.status.migrationState?.targetPod ?? replacementPodName(m.spec.source.pod!, m.metadata.uid);

/** The runtime the source pod's containerIDs name, as a job field; none when the pod is gone. */
function runtimeOf(pod: V1Pod | undefined): { runtime?: 'containerd' | 'cri-o' } {
  const id = pod?.status?.containerStatuses?.find((s) => s.containerID)?.containerID ?? '';
  const scheme = id.split('://')[0];
  return scheme === 'containerd' || scheme === 'cri-o' ? { runtime: scheme } : {};
}

/** The source pod's container names, from its spec (there whether or not it is frozen). */
const names = (pod: V1Pod | undefined): string[] => (pod?.spec?.containers ?? []).map((c) => c.name);

const bandwidthOf = (m: StoredMigration) =>
  m.spec.strategy.bandwidth ? { bandwidth: parseQuantity(m.spec.strategy.bandwidth) } : {};

/**
 * Whether the dump streams its pages to the target: a containerd pod's, which the agent dumps
 * itself. Not a StatefulSet's: after its hand-over the source has no pod left, and the checkpoint
 * the source holds too (podImportSource) is what a rollback restores there, so it must be whole on
 * both nodes. Not CRI-O's: the kubelet's checkpoint API writes the archive whole. Pure.
 */
export const streamsPages = (m: StoredMigration, runtime: string | undefined): boolean =>
  runtime === 'containerd' && !m.status.migrationState?.statefulSet;

function build(step: StepName, m: StoredMigration, facts: Facts, targetNode: string): Job {
  const migration = { uid: m.metadata.uid, name: m.metadata.name, workload: 'container' as const };
  const source = facts.pods?.source;
  // A StatefulSet's source is gone after the hand-over: its pod created again has the same spec.
  const basis = source ?? facts.pods?.replacement;
  const runtime = runtimeOf(basis);
  const emptyDirs = emptyDirsOf(basis);
  const images = names(basis).map((c) => ({
    container: c,
    file: `pod-images/${c}.tar`,
    ref: checkpointImageRef(m.metadata.uid, c),
  }));
  switch (step) {
    case 'podFreeze':
    case 'podThaw':
      return { kind: step, migration, ids: runtimeContainers(source ?? {}).map((c) => c.id), ...runtime };
    case 'podSync':
      return {
        kind: step,
        migration,
        targetNode,
        podUid: source?.metadata?.uid ?? '',
        emptyDirs,
        ...bandwidthOf(m),
        compress: m.spec.strategy.compression === 'Zstd',
      };
    case 'podCheckpoint': {
      const ids = new Map(runtimeContainers(source ?? {}).map((c) => [c.name, c.id]));
      return {
        kind: step,
        migration,
        namespace: m.metadata.namespace,
        pod: m.spec.source.pod!,
        containers: images.map((i) => ({ name: i.container, ref: i.ref, id: ids.get(i.container) })),
        ...runtime,
        podUid: source?.metadata?.uid,
        emptyDirs,
        ...(streamsPages(m, runtime.runtime) ? { stream: { targetNode, ...bandwidthOf(m) } } : {}),
      };
    }
    case 'podSend':
      return {
        kind: step,
        migration,
        targetNode,
        files: [...images.map((i) => i.file), ...emptyDirs.map((v) => podVolumeFile(v, 1))],
        ...bandwidthOf(m),
        compress: m.spec.strategy.compression === 'Zstd',
      };
    case 'podImport': {
      // A streamed dump's pages came into pod-N (N the container's place in the pod): the target
      // builds its image from them and the archive.
      const streamed = streamsPages(m, runtime.runtime);
      return {
        kind: 'podImport',
        migration,
        images: images.map((img, i) => ({
          file: img.file,
          ref: img.ref,
          ...(streamed ? { pages: `pod-${i}` } : {}),
        })),
        ...runtime,
      };
    }
    case 'podImportSource':
      return {
        kind: 'podImport',
        migration,
        images: images.map((i) => ({ file: i.file, ref: i.ref })),
        ...runtime,
      };
    case 'podRemoveImages':
    case 'podRemoveImagesSource':
      return { kind: 'podRemoveImages', migration, refs: images.map((i) => i.ref), ...runtime };
    case 'podVolumes':
    case 'podVolumesSource': {
      const uid = facts.pods?.replacement?.metadata?.uid;
      if (!uid) throw new FerryError('Internal', `replacement pod ${targetPodOf(m)} has no uid yet`);
      return { kind: 'podVolumes', migration, podUid: uid, emptyDirs };
    }
    case 'podCleanupSource':
      return { kind: 'podCleanup', migration, rollback: false };
    case 'podCleanupTarget':
      // Rolling back: the emptyDir folders written for the replacement, now deleted, go too.
      return { kind: 'podCleanup', migration, rollback: m.status.phase === 'RollingBack' };
    default:
      throw new Error(`the pod route has no step ${step}`);
  }
}

const pass: Gate = { actions: [], failures: [], done: true };
const fail = (m: StoredMigration, why: string): Gate => ({
  actions: [],
  failures: [`${m.status.phase}: ${why}`],
  done: false,
});

/** Before anything is frozen: the pod is where the Migration says, and nothing keeps it from moving. */
function preflightGate(m: StoredMigration, facts: Facts, state: MigrationState): Gate {
  const source = facts.pods?.source;
  if (!source) return fail(m, `ContainerNotFound: ${where(m)} does not exist`);
  if (source.spec?.nodeName !== m.spec.source.node)
    return fail(
      m,
      `NodeNotFound: ${where(m)} runs on ${source.spec?.nodeName ?? 'no node'}, not ${m.spec.source.node}`,
    );
  if (state.targetNode === m.spec.source.node)
    return fail(m, `InvalidInput: ${where(m)} is already on ${state.targetNode}`);
  const problem = podProblem(source) ?? claimProblem(source, facts.pods?.claims ?? {});
  if (problem) return fail(m, `UnsupportedWorkload: ${problem}`);
  try {
    runtimeContainers(source);
  } catch (err) {
    return fail(m, errorMessage(err));
  }
  return pass;
}

/** Once the images are in the target's store: the replacement pod, bound to the target. */
function restoringGate(m: StoredMigration, facts: Facts, state: MigrationState): Gate {
  if (facts.jobs.podImport?.state !== 'completed') return { ...pass, done: false };
  if (facts.pods?.replacement) return pass;
  const source = facts.pods?.source;
  if (!source) return fail(m, `ContainerNotFound: ${where(m)} is gone`);
  const pod = replacementPod(source, {
    targetNode: state.targetNode!,
    migration: m.metadata.name,
    migrationUid: m.metadata.uid,
    gated: emptyDirsOf(source).length > 0,
  });
  return { actions: [{ type: 'createPod', pod }], failures: [], done: false };
}

/** The replacement runs and is ready, or says why it cannot (the progress timeout bounds the wait). */
function verifyingGate(m: StoredMigration, facts: Facts, state: MigrationState): Gate {
  // Its emptyDirs are written (Restoring): it may be scheduled now.
  const release = ungated(facts.pods?.replacement);
  if (release) return update(release);
  const r = podRunning(facts.pods?.replacement);
  if (r.running) return pass;
  if (r.problem)
    return fail(
      m,
      `CriuRestoreFailed: replacement pod ${targetPodOf(m)} on ${state.targetNode}: ${r.problem}`,
    );
  return { ...pass, done: false };
}

/** Deletes a pod the pass still saw, and is done once it is gone. */
function gone(m: StoredMigration, pod: V1Pod | undefined): Gate {
  if (!pod) return pass;
  const name = pod.metadata?.name ?? '';
  const del: Action = { type: 'deletePod', namespace: m.metadata.namespace, name };
  return { actions: [del], failures: [], done: false };
}

const update = (pod: V1Pod): Gate => ({ actions: [{ type: 'updatePod', pod }], failures: [], done: false });

/**
 * The replacement runs: a ReplicaSet's pod hands over first (the source made the one its
 * ReplicaSet removes first, then the replacement given the labels and owner that make it a member:
 * pod-spec.ts), so the ReplicaSet never counts fewer ready pods than before nor makes one of its
 * own; then, and only then, the source goes.
 */
function cleanUpGate(m: StoredMigration, facts: Facts): Gate {
  const { source, replacement } = facts.pods ?? {};
  const joined = adopted(replacement);
  if (joined) {
    const cheapest = source && withDeletionCost(source, true);
    return update(cheapest ?? joined);
  }
  return gone(m, source);
}

/** The replacement goes; a source that was to hand over gets its deletion cost back. */
function rollBackGate(m: StoredMigration, facts: Facts): Gate {
  const g = gone(m, facts.pods?.replacement);
  if (!g.done) return g;
  const restored = facts.pods?.source && withDeletionCost(facts.pods.source, false);
  return restored ? update(restored) : pass;
}

function gate(m: StoredMigration, facts: Facts, state: MigrationState): Gate | undefined {
  const sts = state.statefulSet ? statefulSetGate(m, facts, state, (why) => fail(m, why)) : undefined;
  if (sts) return sts;
  switch (m.status.phase) {
    case 'Preflight':
      return preflightGate(m, facts, state);
    case 'Restoring':
      return restoringGate(m, facts, state);
    case 'Verifying':
      return verifyingGate(m, facts, state);
    case 'CleaningUp':
      return cleanUpGate(m, facts);
    case 'RollingBack':
      return rollBackGate(m, facts);
    default:
      return undefined;
  }
}

/**
 * What of spec.strategy cannot apply to a pod, said as a warning (never ignored in silence): pods
 * move StopAndCopy. (bandwidth and compression Zstd apply to
 * the images sent; Auto compression has no measured link to weigh, so it sends them as they are.)
 * Pure.
 */
export function podStrategyWarnings(strategy: StoredMigration['spec']['strategy']): string[] {
  return strategy.mode === 'PreCopy' || strategy.mode === 'PostCopy'
    ? [
        `strategy.mode ${strategy.mode} cannot apply to a pod: pods move StopAndCopy (frozen, checkpointed whole, copied, restored by the runtime)`,
      ]
    : [];
}

function afterPreflight(m: StoredMigration, facts: Facts, state: MigrationState): Decision {
  const warnings = podStrategyWarnings(m.spec.strategy);
  const source = facts.pods?.source;
  const statefulSet = statefulSetOwner(source)?.name;
  return {
    // emptyDirs go whole while the pod runs (Syncing), so that the freeze sends what changed.
    status: transition(m.status, emptyDirsOf(source).length ? 'Syncing' : 'Checkpointing', facts.now, {
      migrationState: {
        ...state,
        sourcePod: m.spec.source.pod!,
        // A StatefulSet's pod keeps its name: the uid tells the source from its replacement.
        targetPod: statefulSet ? m.spec.source.pod! : targetPodOf(m),
        ...(source?.metadata?.uid ? { sourcePodUid: source.metadata.uid } : {}),
        ...(statefulSet ? { statefulSet } : {}),
        mode: 'StopAndCopy',
        modeReason: `pods move StopAndCopy (${
          streamsPages(m, runtimeOf(source).runtime) && !statefulSet
            ? 'memory streamed to the target while CRIU dumps, the checkpoint image built there'
            : statefulSet
              ? 'a StatefulSet pod: its checkpoint is made whole and kept on both nodes, since a rollback after the hand-over restores it on the source'
              : 'checkpointed whole through the kubelet, then copied'
        }); maxDowntime (${m.spec.strategy.maxDowntime}) is not estimated for them`,
      },
      ...(warnings.length ? { warnings: [...(m.status.warnings ?? []), ...warnings] } : {}),
    }),
    actions: [],
  };
}

function record(phase: Phase, state: MigrationState, facts: Facts): MigrationState {
  const synced = facts.jobs.podSync?.result;
  const frozen = facts.jobs.podFreeze?.result;
  const dumped = facts.jobs.podCheckpoint?.result;
  const sent = facts.jobs.podSend?.result;
  if (phase === 'Syncing' && synced) return { ...state, bytesBeforeFreeze: synced.bytes };
  if (phase === 'Checkpointing' && frozen)
    return {
      ...state,
      frozenAt: frozen.frozenAt,
      ...(dumped?.dumpMs !== undefined ? { dumpMs: dumped.dumpMs } : {}),
      ...(dumped?.streamedBytes !== undefined ? { bytesDuringFreeze: dumped.streamedBytes } : {}),
    };
  if (phase === 'Transferring' && sent)
    return { ...state, bytesDuringFreeze: (state.bytesDuringFreeze ?? 0) + sent.bytes };
  // Both nodes hold the images: a StatefulSet's source may go (pod-statefulset.ts).
  if (phase === 'Restoring' && state.statefulSet) return { ...state, handedOver: true };
  if (phase === 'Verifying') {
    // Running and ready, as the controller saw it: the freeze ends here.
    const downtimeMs = state.frozenAt ? Date.parse(facts.now) - Date.parse(state.frozenAt) : undefined;
    return { ...state, restoredAt: facts.now, ...(downtimeMs !== undefined ? { downtimeMs } : {}) };
  }
  return state;
}

export const podRoute: Route = {
  steps: (m, phase) =>
    (m.status.migrationState?.statefulSet ? statefulSetSteps(m, phase) : undefined) ?? POD_STEPS[phase] ?? [],
  next: {
    Preflight: 'Checkpointing',
    Syncing: 'Checkpointing',
    Checkpointing: 'Transferring',
    Transferring: 'Restoring',
    Restoring: 'Verifying',
    Verifying: 'CleaningUp',
    CleaningUp: 'Succeeded',
  },
  sending: { Syncing: 'podSync', Checkpointing: 'podCheckpoint', Transferring: 'podSend' },
  build,
  gate,
  refuse: (facts) =>
    facts.kube
      ? undefined
      : 'InvalidInput: spec.source.pod: pods move on a Kubernetes cluster only; this controller serves a local cluster, so name the container instead',
  afterPreflight,
  record,
};
