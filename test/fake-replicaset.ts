// FAKE ReplicaSet controller, for tests only (test/fake-apiserver.ts runs it after every write of a
// pod or a ReplicaSet): no kube-controller-manager runs on these machines. It emulates exactly what
// the pod path's tests rely on, as kube-controller-manager's ReplicaSet controller does it: the
// active pods (not being deleted, not Succeeded or Failed) whose labels its selector's matchLabels
// match, owned by it or by no controller; orphans among them adopted (its controller reference set);
// the excess removed in Kubernetes' order (not bound to a node, then not Running, then not ready,
// then the lowest controller.kubernetes.io/pod-deletion-cost, then the newest); what is missing
// created from its template, with generateName. Not emulated: matchExpressions, expectations and
// back-off, status, rank by co-located pods or restarts.
type Obj = Record<string, unknown> & { metadata: Record<string, unknown> };
interface OwnerRef {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
}

export type ReplicaSetChange =
  { type: 'adopt'; pod: Obj; owner: OwnerRef } | { type: 'delete'; pod: Obj } | { type: 'create'; pod: Obj };

const controllerOf = (o: Obj) =>
  (o.metadata.ownerReferences as OwnerRef[] | undefined)?.find((r) => r.controller);
const labels = (o: Obj) => (o.metadata.labels ?? {}) as Record<string, string>;
const annotations = (o: Obj) => (o.metadata.annotations ?? {}) as Record<string, string>;
const status = (o: Obj) =>
  (o.status ?? {}) as { phase?: string; conditions?: Array<{ type: string; status: string }> };
const ready = (o: Obj) =>
  status(o).conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

/** Kubernetes' order of removal: the pod that goes first sorts first. */
function removalOrder(a: Obj, b: Obj): number {
  const keys = (o: Obj) => [
    (o.spec as { nodeName?: string } | undefined)?.nodeName ? 1 : 0,
    status(o).phase === 'Running' ? 1 : 0,
    ready(o) ? 1 : 0,
    Number(annotations(o)['controller.kubernetes.io/pod-deletion-cost'] ?? 0),
    -Date.parse(String(o.metadata.creationTimestamp)),
  ];
  const [x, y] = [keys(a), keys(b)];
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return 0;
}

/** What the ReplicaSet controller does next about one ReplicaSet, given every pod of its namespace. */
export function replicaSetChanges(rs: Obj, pods: Obj[]): ReplicaSetChange[] {
  const spec = rs.spec as {
    replicas?: number;
    selector?: { matchLabels?: Record<string, string> };
    template?: { metadata?: { labels?: Record<string, string> }; spec?: unknown };
  };
  const selector = Object.entries(spec.selector?.matchLabels ?? {});
  const owner: OwnerRef = {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    name: String(rs.metadata.name),
    uid: String(rs.metadata.uid),
    controller: true,
  };
  const mine = pods.filter(
    (p) =>
      !p.metadata.deletionTimestamp &&
      !['Succeeded', 'Failed'].includes(status(p).phase ?? '') &&
      selector.length > 0 &&
      selector.every(([k, v]) => labels(p)[k] === v) &&
      (controllerOf(p)?.uid ?? owner.uid) === owner.uid,
  );
  const changes: ReplicaSetChange[] = mine
    .filter((p) => !controllerOf(p))
    .map((pod) => ({ type: 'adopt', pod, owner }));
  const want = spec.replicas ?? 1;
  if (mine.length > want)
    for (const pod of [...mine].sort(removalOrder).slice(0, mine.length - want))
      changes.push({ type: 'delete', pod });
  for (let i = mine.length; i < want; i++)
    changes.push({
      type: 'create',
      pod: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          generateName: `${owner.name}-`,
          namespace: rs.metadata.namespace,
          labels: { ...spec.template?.metadata?.labels },
          ownerReferences: [owner],
        },
        spec: structuredClone(spec.template?.spec ?? {}),
      },
    });
  return changes;
}
