// FAKE PodDisruptionBudget controller, for tests only (test/fake-apiserver.ts computes a budget's
// status each time one is read): no kube-controller-manager runs on these machines. It emulates
// what `ferry drain`'s tests rely on, as the disruption controller computes it: the pods of the
// budget's namespace whose labels its selector's matchLabels match (not being deleted, not
// Succeeded or Failed) are expected; those Ready are healthy; the desired healthy count is
// minAvailable (a number or a percentage of expected, rounded up) or expected less maxUnavailable
// (rounded up); disruptionsAllowed is healthy less desired, never below zero. Not emulated:
// matchExpressions, the scale of a pod's controller as the expected count, disruptedPods,
// unhealthyPodEvictionPolicy, observedGeneration.
type Obj = Record<string, unknown> & { metadata: Record<string, unknown> };

const ready = (p: Obj) =>
  ((p.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? []).some(
    (c) => c.type === 'Ready' && c.status === 'True',
  );

/** An IntOrString of a budget against `of` pods: a number, or a percentage rounded up. Pure. */
function count(v: number | string, of: number): number {
  if (typeof v === 'number') return v;
  return Math.ceil((Number(v.replace(/%$/, '')) * of) / 100);
}

/** A budget's status, from the pods there are now. Pure. */
export function budgetStatus(pdb: Obj, pods: Obj[]): Record<string, number> {
  const spec = (pdb.spec ?? {}) as {
    selector?: { matchLabels?: Record<string, string> };
    minAvailable?: number | string;
    maxUnavailable?: number | string;
  };
  const match = spec.selector?.matchLabels ?? {};
  const mine = pods.filter((p) => {
    const labels = (p.metadata.labels ?? {}) as Record<string, string>;
    const phase = (p.status as { phase?: string } | undefined)?.phase;
    return (
      p.metadata.namespace === pdb.metadata.namespace &&
      !p.metadata.deletionTimestamp &&
      phase !== 'Succeeded' &&
      phase !== 'Failed' &&
      Object.entries(match).every(([k, v]) => labels[k] === v)
    );
  });
  const expectedPods = mine.length;
  const currentHealthy = mine.filter(ready).length;
  const desiredHealthy =
    spec.minAvailable !== undefined
      ? count(spec.minAvailable, expectedPods)
      : Math.max(0, expectedPods - count(spec.maxUnavailable ?? 0, expectedPods));
  return {
    expectedPods,
    currentHealthy,
    desiredHealthy,
    disruptionsAllowed: Math.max(0, currentHealthy - desiredHealthy),
  };
}
