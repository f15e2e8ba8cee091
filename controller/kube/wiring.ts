// The controller's Kubernetes parts: Migrations as custom objects, the leader Lease, Pods and
// Nodes through the API. A module of its own, imported only when the controller serves
// Kubernetes: the client library alone costs a process about 100 MiB of memory, which a local
// cluster's controller has no use for (bench/controller-scale.ts measures its memory).
import type { Logger } from '../../lib/logger.ts';
import { KubeMigrationStore, loadKubeConfig } from '../../lib/store/kube-store.ts';
import { KubePodApi } from '../../lib/kube/pods.ts';
import { KubeNodeApi } from '../../lib/kube/nodes.ts';
import { LeaderElector } from '../leader.ts';
import { KubeLease } from '../store/kube-lease.ts';

export function kubeParts(opts: {
  kubeconfig: string | undefined;
  leaseNamespace: string;
  leaseMs: number;
  log: Logger;
}) {
  // Without a file, the default chain: KUBECONFIG, ~/.kube/config, or the pod's service account.
  const kc = loadKubeConfig(opts.kubeconfig);
  const store = new KubeMigrationStore(kc, opts.log);
  const lease = new KubeLease(kc, opts.leaseNamespace, 'ferry-controller');
  return {
    store,
    elector: new LeaderElector(lease, opts.log, opts.leaseMs),
    // Pods move only on Kubernetes: the controller reads and writes them through the API.
    pods: new KubePodApi(kc),
    // Placement reads the Nodes' labels and cordons there.
    nodes: new KubeNodeApi(kc),
  };
}
