// ferry's mutating admission webhook for pods (charts/ferry templates/webhook.yaml): how a
// StatefulSet's pod moves with its name. Once the target holds the checkpoint images, ferry deletes
// the frozen source; the StatefulSet creates the pod again under the same name, and this webhook
// makes that pod the replacement before it exists (checkpoint images, the volumes gate, placed on
// the target: pod-spec.ts restoredStatefulSetPod). On a rollback after that hand-over, the pod is
// created again on the source from the same checkpoint. Every other pod is let through unchanged.
// Pure: the controller's HTTPS server (controller/webhook.ts) feeds it the Migrations it stores.
import type { V1Pod } from '@kubernetes/client-node';
import type { StoredMigration } from '../../api/v1alpha1/migration.ts';
import { restoredStatefulSetPod } from './pod-spec.ts';

export interface AdmissionReview {
  apiVersion: string;
  kind: 'AdmissionReview';
  request?: {
    uid: string;
    operation?: string;
    namespace?: string;
    kind?: { kind?: string };
    object?: V1Pod;
  };
}

/** Where a StatefulSet pod being created must run, and for which Migration; undefined: not ferry's. */
export function placement(
  pod: V1Pod,
  namespace: string,
  migrations: readonly StoredMigration[],
): { node: string; migration: StoredMigration } | undefined {
  const name = pod.metadata?.name;
  for (const m of migrations) {
    const st = m.status.migrationState;
    if (!st?.statefulSet || !st.handedOver || m.metadata.namespace !== namespace) continue;
    if (m.spec.source.pod !== name) continue;
    if (m.status.phase === 'Verifying' && st.targetNode) return { node: st.targetNode, migration: m };
    if (m.status.phase === 'RollingBack') return { node: m.spec.source.node, migration: m };
  }
  return undefined;
}

/** The webhook's answer: allowed always; a JSON patch for a pod ferry places. Pure. */
export function admissionResponse(review: AdmissionReview, migrations: readonly StoredMigration[]) {
  const req = review.request;
  const answer = (patch?: unknown[]) => ({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: {
      uid: req?.uid ?? '',
      allowed: true,
      ...(patch
        ? { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') }
        : {}),
    },
  });
  const pod = req?.object;
  if (!req || req.operation !== 'CREATE' || req.kind?.kind !== 'Pod' || !pod) return answer();
  const ns = req.namespace ?? pod.metadata?.namespace ?? 'default';
  const where = placement(pod, ns, migrations);
  if (!where) return answer();
  const m = where.migration;
  const restored = restoredStatefulSetPod(pod, {
    node: where.node,
    from: `${m.spec.source.node}/${m.spec.source.pod}`,
    migration: m.metadata.name,
    migrationUid: m.metadata.uid,
  });
  return answer([
    { op: 'replace', path: '/spec', value: restored.spec },
    { op: 'add', path: '/metadata/annotations', value: restored.metadata!.annotations },
  ]);
}
