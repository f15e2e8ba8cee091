// The pod path's ports on a real cluster: pods through the Kubernetes API (CoreV1Api), and the node
// agents through the work bus (agent/kube/pod-jobs.ts), bound to one migration.
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import type { Bus } from '../bus.ts';
import type { CheckpointedImage, PodAgents, PodApi } from './pod-migration.ts';

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

  async delete(namespace: string, name: string): Promise<void> {
    try {
      await this.core.deleteNamespacedPod({ namespace, name });
    } catch (err) {
      if (status(err) !== 404) throw err;
    }
  }
}

/** How long each agent step may take: checkpoints and copies of large pods take minutes. */
const LONG = 30 * 60_000;

export function busPodAgents(bus: Bus, migration: { uid: string; name: string }): PodAgents {
  const ids = (cs: { id: string }[]) => cs.map((c) => c.id);
  const files = (images: CheckpointedImage[]) => images.map((i) => i.file);
  return {
    freeze: async (node, cs) => void (await bus.call(node, { kind: 'podFreeze', migration, ids: ids(cs) })),
    thaw: async (node, cs) => void (await bus.call(node, { kind: 'podThaw', migration, ids: ids(cs) })),
    checkpoint: async (node, req) =>
      (
        await bus.call<{ images: CheckpointedImage[] }>(
          node,
          { kind: 'podCheckpoint', migration, ...req },
          LONG,
        )
      ).images,
    send: async (node, target, images) =>
      (
        await bus.call<{ bytes: number }>(
          node,
          { kind: 'podSend', migration, targetNode: target, files: files(images) },
          LONG,
        )
      ).bytes,
    importImages: async (node, images) =>
      void (await bus.call(
        node,
        { kind: 'podImport', migration, images: images.map((i) => ({ file: i.file, ref: i.ref })) },
        LONG,
      )),
    removeImages: async (node, images) =>
      void (await bus.call(node, { kind: 'podRemoveImages', migration, refs: images.map((i) => i.ref) })),
    cleanup: async (node) => void (await bus.call(node, { kind: 'podCleanup', migration })),
  };
}
