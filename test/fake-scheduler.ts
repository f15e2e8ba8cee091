// The EMULATED kube-scheduler of the fake API server (test/fake-apiserver.ts), for tests only: no
// scheduler runs here. It does exactly what ferry's gated replacements rely on, nothing more: a pod
// with no spec.nodeName and no scheduling gates left, whose required node affinity names one node
// by metadata.name (as ferry's and DaemonSet pods do), is bound to that node. No resources, taints,
// spreading or other affinities are weighed. Pure.
type Obj = Record<string, unknown> & { metadata: Record<string, unknown> };

interface PodSpec {
  nodeName?: string;
  schedulingGates?: unknown[];
  affinity?: {
    nodeAffinity?: {
      requiredDuringSchedulingIgnoredDuringExecution?: {
        nodeSelectorTerms?: { matchFields?: { key: string; operator: string; values?: string[] }[] }[];
      };
    };
  };
}

/** The node a pod is bound to now, or undefined when it waits (bound, gated, or no node named). */
export function bindingFor(pod: Obj): string | undefined {
  const spec = pod.spec as PodSpec | undefined;
  if (!spec || spec.nodeName || spec.schedulingGates?.length || pod.metadata.deletionTimestamp)
    return undefined;
  const terms =
    spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  const field = terms?.[0]?.matchFields?.find((f) => f.key === 'metadata.name' && f.operator === 'In');
  return field?.values?.length === 1 ? field.values[0] : undefined;
}
