// Pods through the Kubernetes API (CoreV1Api): what the pod path and `ferry drain` read and write.
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';

/** The pod operations the pod path needs; KubePodApi on a real cluster, a fake in unit tests. */
export interface PodApi {
  get(namespace: string, name: string): Promise<V1Pod | undefined>;
  create(pod: V1Pod): Promise<void>;
  /** Writes a pod as read and changed (its resourceVersion guards it); gone or changed since: no-op. */
  update(pod: V1Pod): Promise<void>;
  delete(namespace: string, name: string): Promise<void>;
  /** A PersistentVolumeClaim's access modes (spec.accessModes), or undefined when it is not there. */
  claimAccessModes(namespace: string, name: string): Promise<string[] | undefined>;
}

const status = (err: unknown): number | undefined =>
  (err as { code?: number; statusCode?: number }).code ?? (err as { statusCode?: number }).statusCode;

export class KubePodApi implements PodApi {
  private readonly core: CoreV1Api;
  constructor(kc: KubeConfig) {
    this.core = kc.makeApiClient(CoreV1Api);
  }

  async get(namespace: string, name: string): Promise<V1Pod | undefined> {
    try {
      return await this.core.readNamespacedPod({ namespace, name });
    } catch (err) {
      if (status(err) === 404) return undefined;
      throw err;
    }
  }

  /** Every pod bound to a node, in all namespaces. */
  async onNode(node: string): Promise<V1Pod[]> {
    const list = await this.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}` });
    return list.items.filter((p) => p.spec?.nodeName === node); // API servers that ignore the selector
  }

  async create(pod: V1Pod): Promise<void> {
    try {
      await this.core.createNamespacedPod({ namespace: pod.metadata!.namespace!, body: pod });
    } catch (err) {
      // A retried step (a new leader) finds its own replacement already there.
      if (status(err) !== 409) throw err;
    }
  }

  async update(pod: V1Pod): Promise<void> {
    const { namespace, name } = pod.metadata as { namespace: string; name: string };
    try {
      await this.core.replaceNamespacedPod({ namespace, name, body: pod });
    } catch (err) {
      // Changed or gone since it was read: the next pass reads it again and decides anew.
      if (status(err) !== 409 && status(err) !== 404) throw err;
    }
  }

  async claimAccessModes(namespace: string, name: string): Promise<string[] | undefined> {
    try {
      const pvc = await this.core.readNamespacedPersistentVolumeClaim({ namespace, name });
      return pvc.spec?.accessModes ?? [];
    } catch (err) {
      if (status(err) === 404) return undefined;
      throw err;
    }
  }

  async delete(namespace: string, name: string): Promise<void> {
    try {
      await this.core.deleteNamespacedPod({ namespace, name });
    } catch (err) {
      if (status(err) !== 404) throw err;
    }
  }
}
