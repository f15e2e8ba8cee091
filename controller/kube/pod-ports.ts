// The pod path's agents on a real cluster: the node agents through the work bus
// (agent/kube/pod-jobs.ts), bound to one migration. Pods go through lib/kube/pods.ts.
import type { Bus } from '../../lib/bus.ts';
import type { CheckpointedImage, PodAgents } from './pod-migration.ts';

/** How long each agent step may take: checkpoints and copies of large pods take minutes. */
const LONG = 30 * 60_000;

export function busPodAgents(bus: Bus, migration: { uid: string; name: string }): PodAgents {
  const ids = (cs: { id: string }[]) => cs.map((c) => c.id);
  const files = (images: CheckpointedImage[]) => images.map((i) => i.file);
  return {
    freeze: async (node, cs) => void (await bus.call(node, { kind: 'podFreeze', migration, ids: ids(cs) })),
    thaw: async (node, cs) => void (await bus.call(node, { kind: 'podThaw', migration, ids: ids(cs) })),
    checkpoint: async (node, req) =>
      (await bus.call(node, { kind: 'podCheckpoint', migration, ...req }, LONG)).images,
    send: async (node, target, images) =>
      (await bus.call(node, { kind: 'podSend', migration, targetNode: target, files: files(images) }, LONG))
        .bytes,
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
