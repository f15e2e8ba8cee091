// One snapshot interface, three drivers. Which one moves a volume follows from what it lives on:
// a btrfs subvolume (snapshots and send/receive), an overlay mount (the upper directory as a rootfs
// diff) or a dm-thin device (changed blocks). The choice is pure; finding the filesystem is not.
import { exec } from '../../lib/exec.ts';
import { unavailable as thinUnavailable } from './dm-thin.ts';

export type DriverName = 'btrfs' | 'dm-thin' | 'overlay';

/** What each driver does with a volume, in the order of a migration. */
export const DRIVER_STEPS: Record<DriverName, { running: string; frozen: string }> = {
  btrfs: { running: 'read-only snapshot, sent in full', frozen: 'second snapshot, `send -p` increment' },
  overlay: { running: 'nothing (the image is on every node)', frozen: 'rootfs-diff.tar + deleted.files' },
  'dm-thin': { running: 'thin snapshot, mapped blocks', frozen: 'thin snapshot, thin_delta blocks' },
};

/** `stat -f -c %T` of a path: btrfs, overlayfs, ext2/ext3, xfs, tmpfs… */
export async function filesystemOf(p: string): Promise<string> {
  return (await exec('stat', ['-f', '-c', '%T', p], { errorCode: 'Internal' })).stdout.trim();
}

/**
 * The driver for a volume, or why there is none. A block device is dm-thin's when the node has
 * dm-thin; otherwise the filesystem decides. Pure.
 */
export function chooseDriver(
  v: { fsType: string; blockDevice?: boolean },
  node: { thinProblem?: string | undefined },
): { driver?: DriverName; reason: string } {
  if (v.blockDevice)
    return node.thinProblem
      ? { reason: `a block volume needs dm-thin, and ${node.thinProblem}` }
      : { driver: 'dm-thin', reason: 'a thin device' };
  if (v.fsType === 'btrfs') return { driver: 'btrfs', reason: 'a btrfs subvolume' };
  if (v.fsType === 'overlayfs') return { driver: 'overlay', reason: 'an overlay mount' };
  return { reason: `a volume on ${v.fsType} has no snapshot driver (btrfs, overlay or dm-thin)` };
}

/** What this node can offer, checked once. */
export async function nodeDrivers(): Promise<{ thinProblem?: string | undefined }> {
  return { thinProblem: await thinUnavailable() };
}
