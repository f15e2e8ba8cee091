// The pod path on a real cluster: which pods can move, and the replacement pod that runs the
// checkpoint images on the target node. Pure; controller/kube/pod-migration.ts does the moving.
import type { V1OwnerReference, V1Pod } from '@kubernetes/client-node';
import { FerryError } from '../../lib/errors.ts';

export const MIGRATED_FROM = 'ferry.dev/migrated-from';
export const MIGRATION = 'ferry.dev/migration';
/**
 * On the replacement of a ReplicaSet's pod until it runs: the labels and controller reference it
 * takes then (adoption). Without its labels the ReplicaSet does not count it: created at once as
 * its member, not yet ready, it is the pod the ReplicaSet would remove first.
 */
export const ADOPT = 'ferry.dev/adopt';
/** Kubernetes' own: among ready pods, a ReplicaSet scaling down removes the lowest cost first. */
export const DELETION_COST = 'controller.kubernetes.io/pod-deletion-cost';
export const LOWEST_COST = String(-(2 ** 31));
/** What the source's deletion cost was before ferry lowered it ('' for none), for a rollback. */
export const COST_WAS = 'ferry.dev/deletion-cost-was';
/**
 * The scheduling gate that holds a replacement with emptyDirs until their contents are in its
 * folders on the target: the kubelet's folders are named by the pod's uid, which only the created
 * pod has, and the kubelet must not start it before. A gated pod cannot be bound by nodeName, so
 * it names the target through a required node affinity instead, as DaemonSet pods do.
 */
export const VOLUMES_GATE = 'ferry.dev/volumes';

export interface RuntimeContainer {
  name: string;
  /** The runtime that runs it, from the containerID's scheme. */
  runtime: 'containerd' | 'cri-o';
  /** The runtime's id for it: runc's container id under the runtime's runc root. */
  id: string;
}

/** The pod's containers as the node's runtime knows them, or why they cannot be checkpointed. */
export function runtimeContainers(pod: V1Pod): RuntimeContainer[] {
  const where = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
  const statuses = pod.status?.containerStatuses ?? [];
  return (pod.spec?.containers ?? []).map((c) => {
    const st = statuses.find((s) => s.name === c.name);
    if (!st?.state?.running || !st.containerID)
      throw new FerryError('ContainerNotFound', `container ${c.name} of pod ${where} is not running`);
    const m = /^(containerd|cri-o):\/\/([0-9a-f]{12,64})$/.exec(st.containerID);
    if (!m)
      throw new FerryError(
        'UnsupportedWorkload',
        `container ${c.name} of pod ${where} runs in ${st.containerID.split(':')[0]}: ferry checkpoints CRI-O and containerd containers`,
      );
    return { name: c.name, runtime: m[1] as 'containerd' | 'cri-o', id: m[2]! };
  });
}

/** The first `n` letters and digits of a migration's uid: tags and names unique to it. */
const uidPart = (migrationUid: string, n: number): string =>
  migrationUid.replace(/[^a-z0-9]/g, '').slice(0, n);

/** An image reference for one container's checkpoint, unique to the migration. Pure. */
export function checkpointImageRef(migrationUid: string, container: string): string {
  return `localhost/ferry-checkpoint/${container}:${uidPart(migrationUid, 12)}`;
}

/** The replacement pod's name: the source's, with a suffix from the migration's uid. Pure. */
export const replacementPodName = (source: string, migrationUid: string): string =>
  replacementName(source, uidPart(migrationUid, 5));

/** A pod name with a suffix, within the 63 characters of a DNS label. */
export function replacementName(source: string, suffix: string): string {
  return `${source.slice(0, 62 - suffix.length).replace(/-+$/, '')}-${suffix}`;
}

/**
 * The pod that resumes the source pod on `targetNode`: the same spec, bound to the node (the
 * images exist only there, so no scheduler may choose), each container started from its
 * checkpoint image and never pulled, without init containers (their work is in the checkpoint
 * already) and without node constraints that named the old node. Labels and annotations carry
 * over, plus where it came from. Pure.
 */
export function replacementPod(
  source: V1Pod,
  opts: {
    targetNode: string;
    migration: string;
    migrationUid: string;
    /** Held by VOLUMES_GATE until its emptyDirs are written. */
    gated?: boolean;
  },
): V1Pod {
  const meta = source.metadata ?? {};
  const spec = structuredClone(source.spec ?? { containers: [] });
  for (const c of spec.containers) {
    c.image = checkpointImageRef(opts.migrationUid, c.name);
    c.imagePullPolicy = 'Never';
  }
  delete spec.initContainers;
  delete spec.nodeSelector;
  if (spec.affinity) delete spec.affinity.nodeAffinity;
  delete spec.schedulingGates;
  if (opts.gated) {
    delete spec.nodeName;
    spec.schedulingGates = [{ name: VOLUMES_GATE }];
    spec.affinity = {
      ...spec.affinity,
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            { matchFields: [{ key: 'metadata.name', operator: 'In', values: [opts.targetNode] }] },
          ],
        },
      },
    };
  } else spec.nodeName = opts.targetNode;
  const owner = replicaSetOwner(source);
  const annotations = { ...meta.annotations };
  delete annotations[DELETION_COST];
  delete annotations[COST_WAS];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: replacementPodName(meta.name ?? 'pod', opts.migrationUid),
      namespace: meta.namespace ?? 'default',
      // A ReplicaSet's pod: its labels (and owner) wait until it runs (ADOPT).
      ...(meta.labels && !owner ? { labels: { ...meta.labels } } : {}),
      annotations: {
        ...annotations,
        [MIGRATED_FROM]: `${source.spec?.nodeName ?? '?'}/${meta.name}`,
        [MIGRATION]: opts.migration,
        ...(owner ? { [ADOPT]: JSON.stringify({ labels: meta.labels ?? {}, owner }) } : {}),
      },
    },
    spec,
  };
}

/** The replacement without ferry's scheduling gate, or undefined when it has none. Pure. */
export function ungated(pod: V1Pod | undefined): V1Pod | undefined {
  const gates = pod?.spec?.schedulingGates;
  if (!gates?.some((g) => g.name === VOLUMES_GATE)) return undefined;
  const out = structuredClone(pod!);
  const rest = gates.filter((g) => g.name !== VOLUMES_GATE);
  if (rest.length) out.spec!.schedulingGates = rest;
  else delete out.spec!.schedulingGates;
  return out;
}

/** The StatefulSet that controls a pod, if one does. */
export const statefulSetOwner = (pod: V1Pod | undefined): V1OwnerReference | undefined =>
  pod?.metadata?.ownerReferences?.find((o) => o.controller && o.kind === 'StatefulSet');

/**
 * A StatefulSet's pod as it is being created again under its name, made the replacement (ferry's
 * admission webhook: admission.ts): its name, labels and owner kept, its spec the replacement's
 * (checkpoint images, held by the volumes gate, placed on `node`). Pure.
 */
export function restoredStatefulSetPod(
  pod: V1Pod,
  opts: { node: string; from: string; migration: string; migrationUid: string },
): V1Pod {
  const r = replacementPod(pod, {
    targetNode: opts.node,
    migration: opts.migration,
    migrationUid: opts.migrationUid,
    gated: true,
  });
  return {
    ...pod,
    metadata: {
      ...pod.metadata,
      annotations: { ...pod.metadata?.annotations, [MIGRATED_FROM]: opts.from, [MIGRATION]: opts.migration },
    },
    spec: r.spec!,
  };
}

/** The ReplicaSet that controls a pod, if one does. */
export const replicaSetOwner = (pod: V1Pod | undefined): V1OwnerReference | undefined =>
  pod?.metadata?.ownerReferences?.find((o) => o.controller && o.kind === 'ReplicaSet');

/**
 * The replacement as a member of its ReplicaSet, once it runs: the labels and controller reference
 * its ADOPT annotation holds; undefined when it holds none (not a ReplicaSet's, or adopted). Pure.
 */
export function adopted(replacement: V1Pod | undefined): V1Pod | undefined {
  const held = replacement?.metadata?.annotations?.[ADOPT];
  if (!replacement || held === undefined) return undefined;
  const { labels, owner } = JSON.parse(held) as { labels: Record<string, string>; owner: V1OwnerReference };
  const pod = structuredClone(replacement);
  delete pod.metadata!.annotations![ADOPT];
  pod.metadata!.labels = { ...pod.metadata!.labels, ...labels };
  pod.metadata!.ownerReferences = [owner];
  return pod;
}

/**
 * The source with the lowest deletion cost (`lowest`), so the ReplicaSet scales it down rather
 * than its replacement, or with the cost it had before (a rollback); undefined when it already is
 * so. Pure.
 */
export function withDeletionCost(source: V1Pod, lowest: boolean): V1Pod | undefined {
  const a = source.metadata?.annotations ?? {};
  if (lowest === (a[COST_WAS] !== undefined)) return undefined;
  const pod = structuredClone(source);
  const annotations = { ...a };
  if (lowest) {
    annotations[COST_WAS] = a[DELETION_COST] ?? '';
    annotations[DELETION_COST] = LOWEST_COST;
  } else {
    if (a[COST_WAS]) annotations[DELETION_COST] = a[COST_WAS];
    else delete annotations[DELETION_COST];
    delete annotations[COST_WAS];
  }
  pod.metadata = { ...pod.metadata, annotations };
  return pod;
}
