// FAKE StatefulSet controller, for tests only (test/fake-apiserver.ts runs it after every write of
// a pod or a StatefulSet, and every half second): no kube-controller-manager runs on these
// machines. It emulates exactly what the StatefulSet pod tests rely on, as kube-controller-manager
// does it: each ordinal 0..replicas-1 whose pod (NAME-ORDINAL) is missing is created from the
// template under that name, with the StatefulSet as its controller, hostname and subdomain, and
// the labels statefulset.kubernetes.io/pod-name and apps.kubernetes.io/pod-index; the creation goes
// through admission like any other (the webhook the test configured). Not emulated: ordered
// start-up (OrderedReady waits for the lower ordinals), updates and revisions, scale-down, PVC
// creation from volumeClaimTemplates (their claims are named as Kubernetes names them), status.
type Obj = Record<string, unknown> & { metadata: Record<string, unknown> };

interface StatefulSetSpec {
  replicas?: number;
  serviceName?: string;
  template: {
    metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
    spec: Obj;
  };
  volumeClaimTemplates?: { metadata: { name: string } }[];
}

/** The pods a StatefulSet lacks, as it would create them. Pure. */
export function missingPods(sts: Obj, pods: Obj[]): Obj[] {
  const spec = sts.spec as StatefulSetSpec;
  const name = String(sts.metadata.name);
  const out: Obj[] = [];
  for (let i = 0; i < (spec.replicas ?? 1); i++) {
    const pod = `${name}-${i}`;
    if (pods.some((p) => p.metadata.name === pod)) continue;
    const podSpec = structuredClone(spec.template.spec) as Obj & { volumes?: unknown[] };
    // Each claim template becomes the pod's claim NAME-POD, as Kubernetes names it.
    for (const t of spec.volumeClaimTemplates ?? [])
      podSpec.volumes = [
        ...(podSpec.volumes ?? []),
        { name: t.metadata.name, persistentVolumeClaim: { claimName: `${t.metadata.name}-${pod}` } },
      ];
    out.push({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: pod,
        namespace: sts.metadata.namespace,
        labels: {
          ...spec.template.metadata?.labels,
          'statefulset.kubernetes.io/pod-name': pod,
          'apps.kubernetes.io/pod-index': String(i),
        },
        ...(spec.template.metadata?.annotations
          ? { annotations: { ...spec.template.metadata.annotations } }
          : {}),
        ownerReferences: [
          { apiVersion: 'apps/v1', kind: 'StatefulSet', name, uid: sts.metadata.uid, controller: true },
        ],
      },
      spec: { ...podSpec, hostname: pod, ...(spec.serviceName ? { subdomain: spec.serviceName } : {}) },
    });
  }
  return out;
}
