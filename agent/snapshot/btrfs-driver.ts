// The btrfs driver: a volume is a subvolume. Running, a read-only snapshot goes in full (`btrfs
// send`), and a second, incremental round when the first was long; frozen, a last snapshot goes as
// an increment against the newest one the target has (`send -p`). The target receives each stream
// as a subvolume and takes a writable snapshot of the final one where the volume lives.
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../../lib/exec.ts';
import { deleteSubvolume, exists, snapshot } from './btrfs.ts';
import { volumePaths, type VolumeDriver } from './volume-driver.ts';

/**
 * Whether a first running send was long enough that a second running round pays: more than a
 * second, or more than 64 MiB, is time in which the workload may have written much that would
 * otherwise cross while it is frozen. Pure.
 */
export function anotherRound(firstBytes: number, firstMs: number): boolean {
  return firstMs > 1000 || firstBytes > 64 * 1024 * 1024;
}

export async function duBytes(p: string): Promise<number> {
  const r = await exec('du', ['-sb', p]);
  return r.code === 0 ? Number(r.stdout.split('\t')[0]) : 0;
}

export const btrfsDriver: VolumeDriver = {
  name: 'btrfs',
  steps: { running: 'read-only snapshot, sent in full', frozen: 'last snapshot, `send -p` increment' },
  sendsWhileRunning: true,

  spaceEstimate: (ctx, v) => duBytes(volumePaths(ctx, v).live),

  async sendRunning(ctx, v, out) {
    const p = volumePaths(ctx, v);
    const s = out.session;
    const compress = await out.compress();
    const base = p.snapshot('base');
    await snapshot(p.live, base, { readonly: true });
    const t = Date.now();
    let bytes = await s.sendBtrfs(base, path.basename(base), undefined, { compress });
    if (!anotherRound(bytes, Date.now() - t)) return { bytes, rounds: 1 };
    // What the workload wrote during a long first send goes now, still running, so the frozen
    // increment only holds what it writes from here on.
    const sync2 = p.snapshot('sync2');
    await snapshot(p.live, sync2, { readonly: true });
    bytes += await s.sendBtrfs(
      sync2,
      path.basename(sync2),
      { path: base, name: path.basename(base) },
      { compress },
    );
    return { bytes, rounds: 2 };
  },

  async snapshotFrozen(ctx, v) {
    const p = volumePaths(ctx, v);
    await snapshot(p.live, p.snapshot('final'), { readonly: true });
  },

  async sendFrozen(ctx, v, out) {
    const p = volumePaths(ctx, v);
    // The increment goes against the newest running snapshot the target has.
    const parent = (await exists(p.snapshot('sync2'))) ? p.snapshot('sync2') : p.snapshot('base');
    const final = p.snapshot('final');
    return out.session.sendBtrfs(
      final,
      path.basename(final),
      { path: parent, name: path.basename(parent) },
      {
        compress: await out.compress(),
      },
    );
  },

  received: (ctx, v) => exists(volumePaths(ctx, v).received('final')),

  async restore(ctx, v) {
    const p = volumePaths(ctx, v);
    await mkdir(path.dirname(p.live), { recursive: true, mode: 0o700 });
    await snapshot(p.received('final'), p.live, { readonly: false });
  },

  async cleanup(ctx, uid) {
    const { layout } = ctx;
    // Source: the snapshots carry the uid in their names (rootfs and every volume).
    for (const e of await readdir(layout.snapshots).catch(() => [] as string[]))
      if (e.startsWith(`${uid}-`)) await deleteSubvolume(path.join(layout.snapshots, e));
    // Target: received subvolumes, children first (each later one was received against the one before).
    const dir = layout.incoming(uid);
    for (const e of (await readdir(dir).catch(() => [] as string[])).sort().reverse())
      await deleteSubvolume(path.join(dir, e));
  },
};
