// The overlay driver, for root filesystems that are overlay mounts: the image below is on every
// node already, so nothing moves while the workload runs; frozen, the upper directory goes as a
// rootfs diff (rootfs-diff.tar and deleted.files, the files Podman and CRI-O put in their
// checkpoints). The target mounts the same image with a fresh upper directory and applies the diff.
import path from 'node:path';
import { mountContainerOverlay, upperOf } from '../runtime/containers.ts';
import { workloadImage } from '../workload.ts';
import { exists } from './btrfs.ts';
import { duBytes } from './btrfs-driver.ts';
import { applyRootfsDiff, DELETED_FILES, DIFF_TAR, writeRootfsDiff } from './overlay.ts';
import type { VolumeDriver } from './volume-driver.ts';

export const overlayDriver: VolumeDriver = {
  name: 'overlay',
  steps: { running: 'nothing (the image is on every node)', frozen: 'rootfs-diff.tar + deleted.files' },
  sendsWhileRunning: false,

  spaceEstimate: (ctx, v) => duBytes(upperOf(ctx, v.container)),

  sendRunning: async () => ({ bytes: 0, rounds: 0 }),

  async snapshotFrozen(ctx, v) {
    // Taken while frozen, so it holds every byte the workload wrote before the freeze.
    await writeRootfsDiff(upperOf(ctx, v.container), ctx.layout.images(v.uid));
  },

  async sendFrozen(ctx, v, out) {
    let bytes = 0;
    for (const f of [DIFF_TAR, DELETED_FILES]) {
      const file = path.join(ctx.layout.images(v.uid), f);
      bytes += await out.session.sendFile(file, f, { resume: true, compress: await out.compress(file) });
    }
    return bytes;
  },

  received: (ctx, v) => exists(path.join(ctx.layout.images(v.uid), DIFF_TAR)),

  async restore(ctx, v) {
    // The same image below, a fresh upper directory, and the source's changes applied through it.
    await mountContainerOverlay(ctx, v.container, await workloadImage(ctx));
    await applyRootfsDiff(ctx.layout.images(v.uid), ctx.layout.rootfs(v.container));
  },

  // The diff lives in the migration's image folder, which goes with it.
  cleanup: async () => undefined,
};
