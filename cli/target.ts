// Which cluster a command talks to, the way kubectl users expect and without a local cluster when
// Kubernetes is meant:
//   1. --kubeconfig FILE, or --context NAME: Kubernetes (that file, or the default chain);
//   2. --cluster NAME (or FERRY_CLUSTER): that local cluster;
//   3. KUBECONFIG set: Kubernetes, as kubectl reads it;
//   4. the local cluster "local", when it is up;
//   5. ~/.kube/config: Kubernetes, its current context;
//   otherwise an error that says how to get either. Pure.
export type Target =
  | { kind: 'local'; cluster: string }
  | { kind: 'kube'; kubeconfig?: string | undefined; context?: string | undefined };

export interface TargetFlags {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  cluster: string;
  /** Whether --cluster (or FERRY_CLUSTER) was given, not left to its default. */
  clusterChosen: boolean;
}

export function chooseTarget(
  o: TargetFlags,
  env: { KUBECONFIG?: string | undefined },
  facts: { localUp: boolean; homeKubeconfig: boolean },
): Target | { error: string } {
  if (o.kubeconfig || o.context) return { kind: 'kube', kubeconfig: o.kubeconfig, context: o.context };
  if (o.clusterChosen) return { kind: 'local', cluster: o.cluster };
  if (env.KUBECONFIG) return { kind: 'kube' };
  if (facts.localUp) return { kind: 'local', cluster: o.cluster };
  if (facts.homeKubeconfig) return { kind: 'kube' };
  return {
    error: `no local cluster is up (\`ferry cluster up\` makes one) and no kubeconfig names a Kubernetes cluster (--kubeconfig FILE, KUBECONFIG, or ~/.kube/config)`,
  };
}
