// The seam every volume moves through: a root filesystem or a node-local volume is moved by the
// driver its job names (btrfs, overlay, dm-thin), the way containerd picks a snapshotter by name.
// A driver snapshots the volume while the workload runs and sends what it can, captures the rest
// once frozen and sends the increment, and on the target makes the volume from what arrived. The
// wire is the transfer session's: files and btrfs streams, each checked by size and sha256 as it is
// received (agent/transfer/receiver.ts). Registry: drivers.ts. Adding a driver is a file here and
// a line there.
import path from 'node:path';
import type { VolumeDriverName } from '../../api/v1alpha1/migration.ts';
import type { AgentContext } from '../context.ts';
import type { TransferSession } from '../transfer/sender.ts';

/** One volume of one migration on this node. */
export interface VolumeAt {
  /** 'rootfs', or the name of a node-local volume. */
  name: string;
  container: string;
  /** The migration's uid: it names every snapshot and received copy. */
  uid: string;
}

/** Where a send goes, and whether each item is worth compressing (a file, or a stream). */
export interface Outbound {
  session: TransferSession;
  compress: (file?: string) => Promise<boolean>;
}

export interface VolumeDriver {
  readonly name: VolumeDriverName;
  /** What it does while the workload runs, and while it is frozen (for --help and the docs). */
  readonly steps: { running: string; frozen: string };
  /** Whether sendRunning sends anything: a driver that sends nothing early opens no session. */
  readonly sendsWhileRunning: boolean;
  /** Bytes the target must hold for this volume. */
  spaceEstimate(ctx: AgentContext, v: VolumeAt): Promise<number>;
  /** Running: snapshot the volume and send it (then maybe a second round); bytes and rounds sent. */
  sendRunning(ctx: AgentContext, v: VolumeAt, out: Outbound): Promise<{ bytes: number; rounds: number }>;
  /** Frozen: capture the volume's final state, holding everything written before the freeze. */
  snapshotFrozen(ctx: AgentContext, v: VolumeAt): Promise<void>;
  /** Frozen: send what changed since the running send; bytes sent. */
  sendFrozen(ctx: AgentContext, v: VolumeAt, out: Outbound): Promise<number>;
  /** Target: whether everything the restore needs has been received. */
  received(ctx: AgentContext, v: VolumeAt): Promise<boolean>;
  /** Target: the volume made from what arrived, in its place in the container's bundle. */
  restore(ctx: AgentContext, v: VolumeAt): Promise<void>;
  /** Either node: whatever this driver made for migration `uid` here (snapshots, received copies). */
  cleanup(ctx: AgentContext, uid: string): Promise<void>;
}

/** A volume's paths on a node: where it lives, and its snapshots and received copies by round. */
export function volumePaths(ctx: AgentContext, v: VolumeAt) {
  const { layout } = ctx;
  const rootfs = v.name === 'rootfs';
  const snapshot = (which: 'base' | 'sync2' | 'final') =>
    rootfs ? layout.snapshot(v.uid, which) : layout.volumeSnapshot(v.uid, v.name, which);
  return {
    live: rootfs ? layout.rootfs(v.container) : layout.volume(v.container, v.name),
    snapshot,
    /** The copy of a snapshot the target received, named as on the source. */
    received: (which: 'base' | 'sync2' | 'final') =>
      path.join(layout.incoming(v.uid), path.basename(snapshot(which))),
  };
}
