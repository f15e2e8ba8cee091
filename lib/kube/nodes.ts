// A Kubernetes cluster's Nodes and PodDisruptionBudgets, as ferry reads and writes them: the
// controller places migrations by the Nodes' labels and never onto a cordoned Node; `ferry drain`
// cordons the Node it drains and moves a pod only while every budget selecting it allows a
// disruption (a move freezes the pod, however briefly: it counts as one, as an eviction does).
import { CoreV1Api, PolicyV1Api, type KubeConfig } from '@kubernetes/client-node';
import { selects } from './selectors.ts';

/** What placement reads of a Node. */
export interface NodeFacts {
  labels: Record<string, string>;
  /** Cordoned (spec.unschedulable): nothing new goes there. */
  unschedulable: boolean;
}

/** A PodDisruptionBudget selecting a pod, as its status says now. */
export interface Budget {
  name: string;
  disruptionsAllowed: number;
  currentHealthy: number;
  desiredHealthy: number;
}

export interface NodeApi {
  list(): Promise<Map<string, NodeFacts>>;
  /** Sets a Node's spec.unschedulable; resolves to whether it changed. */
  cordon(node: string, unschedulable: boolean): Promise<boolean>;
  /** The budgets of `namespace` whose selector selects a pod with `labels`. */
  budgets(namespace: string, labels: Record<string, string>): Promise<Budget[]>;
}

const status = (err: unknown): number | undefined =>
  (err as { code?: number; statusCode?: number }).code ?? (err as { statusCode?: number }).statusCode;

export class KubeNodeApi implements NodeApi {
  private readonly core: CoreV1Api;
  private readonly policy: PolicyV1Api;
  constructor(kc: KubeConfig) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.policy = kc.makeApiClient(PolicyV1Api);
  }

  async list(): Promise<Map<string, NodeFacts>> {
    const nodes = await this.core.listNode();
    return new Map(
      nodes.items.map((n) => [
        n.metadata!.name!,
        { labels: n.metadata?.labels ?? {}, unschedulable: n.spec?.unschedulable === true },
      ]),
    );
  }

  async cordon(node: string, unschedulable: boolean): Promise<boolean> {
    // Read, change, write with its resourceVersion; someone else's write in between: again.
    for (let attempt = 0; ; attempt++) {
      const n = await this.core.readNode({ name: node });
      if ((n.spec?.unschedulable === true) === unschedulable) return false;
      n.spec = { ...n.spec, unschedulable };
      try {
        await this.core.replaceNode({ name: node, body: n });
        return true;
      } catch (err) {
        if (status(err) !== 409 || attempt >= 5) throw err;
      }
    }
  }

  async budgets(namespace: string, labels: Record<string, string>): Promise<Budget[]> {
    const all = await this.policy.listNamespacedPodDisruptionBudget({ namespace });
    return all.items
      .filter((b) => selects(b.spec?.selector, labels))
      .map((b) => ({
        name: b.metadata!.name!,
        disruptionsAllowed: b.status?.disruptionsAllowed ?? 0,
        currentHealthy: b.status?.currentHealthy ?? 0,
        desiredHealthy: b.status?.desiredHealthy ?? 0,
      }));
  }
}
