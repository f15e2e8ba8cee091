// The pod path on a real cluster: which pods can move, and the replacement pod that runs the
// checkpoint images on the target node. Pure; controller/kube/pod-migration.ts does the moving.
import type { V1Pod } from '@kubernetes/client-node';
import { FerryError } from '../../lib/errors.ts';

export const MIGRATED_FROM = 'ferry.dev/migrated-from';
export const MIGRATION = 'ferry.dev/migration';

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
  opts: { targetNode: string; images: Record<string, string>; migration: string; migrationUid: string },
): V1Pod {
  const meta = source.metadata ?? {};
  const spec = structuredClone(source.spec ?? { containers: [] });
  for (const c of spec.containers) {
    const image = opts.images[c.name];
    if (!image) throw new FerryError('Internal', `no checkpoint image for container ${c.name}`);
    c.image = image;
    c.imagePullPolicy = 'Never';
  }
  delete spec.initContainers;
  delete spec.nodeSelector;
  if (spec.affinity) delete spec.affinity.nodeAffinity;
  delete spec.schedulingGates;
  spec.nodeName = opts.targetNode;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: replacementPodName(meta.name ?? 'pod', opts.migrationUid),
      namespace: meta.namespace ?? 'default',
      ...(meta.labels ? { labels: { ...meta.labels } } : {}),
      annotations: {
        ...meta.annotations,
        [MIGRATED_FROM]: `${source.spec?.nodeName ?? '?'}/${meta.name}`,
        [MIGRATION]: opts.migration,
      },
    },
    spec,
  };
}
