// What a migration leaves on a node, and how it all goes: every volume driver's snapshots and
// received copies, the incoming folder, the images. The source's clean-up and resume, the target's
// clean-up and rollback, and the start-up sweep (gc.ts) share it.
import { rm } from 'node:fs/promises';
import type { AgentContext } from './context.ts';
import { allVolumeDrivers } from './snapshot/drivers.ts';

/** Marks a migration's images as kept after it ended (sourcePolicy KeepImages). */
export const KEPT = '.kept';

/** Everything migration `uid` left on this node; what is not there is skipped. */
export async function dropMigrationFiles(ctx: AgentContext, uid: string): Promise<void> {
  for (const d of allVolumeDrivers()) await d.cleanup(ctx, uid);
  await rm(ctx.layout.incoming(uid), { recursive: true, force: true });
  await rm(ctx.layout.images(uid), { recursive: true, force: true });
}
