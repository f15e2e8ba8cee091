// The volume drivers by name (the seam is volume-driver.ts). A job names each volume's driver;
// the source's preflight chose it from what the volume lives on: a btrfs subvolume (snapshots and
// send/receive), an overlay mount (the upper directory as a rootfs diff) or a dm-thin device
// (changed blocks). The choice is pure; finding the filesystem is not.
// Adding a driver: a file beside this one implementing VolumeDriver, its name in
// api/v1alpha1/migration.ts's VOLUME_DRIVERS, and one line in DRIVERS below.
import type { VolumeDriverName } from '../../api/v1alpha1/migration.ts';
import { FerryError } from '../../lib/errors.ts';
import { btrfsDriver } from './btrfs-driver.ts';
import { DmThinDriver } from './dm-thin-driver.ts';
import { overlayDriver } from './overlay-driver.ts';
import type { VolumeDriver } from './volume-driver.ts';

export { filesystemOf } from './fs-type.ts';

const DRIVERS: Record<VolumeDriverName, VolumeDriver> = {
  btrfs: btrfsDriver,
  overlay: overlayDriver,
  'dm-thin': new DmThinDriver(),
};

export function volumeDriver(name: VolumeDriverName): VolumeDriver {
  const d = DRIVERS[name];
  if (!d) throw new FerryError('InvalidInput', `no volume driver ${name}`);
  return d;
}

/** Every driver: a clean-up of a migration asks each for what it made (gc.ts, rollbacks). */
export const allVolumeDrivers = (): VolumeDriver[] => Object.values(DRIVERS);

/**
 * The driver for a volume, or why there is none. A block device is dm-thin's when the node has
 * dm-thin; otherwise the filesystem decides. Pure.
 */
export function chooseDriver(
  v: { fsType: string; blockDevice?: boolean },
  node: { thinProblem?: string | undefined },
): { driver?: VolumeDriverName; reason: string } {
  if (v.blockDevice)
    return node.thinProblem
      ? { reason: `a block volume needs dm-thin, and ${node.thinProblem}` }
      : { driver: 'dm-thin', reason: 'a thin device' };
  if (v.fsType === 'btrfs') return { driver: 'btrfs', reason: 'a btrfs subvolume' };
  if (v.fsType === 'overlayfs') return { driver: 'overlay', reason: 'an overlay mount' };
  return { reason: `a volume on ${v.fsType} has no snapshot driver (btrfs, overlay or dm-thin)` };
}
