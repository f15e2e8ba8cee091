// An agent removes what ended migrations left on its node, at start-up and with each watchdog pass
// (fencing/watchdog.ts). A migration's files live only while the controller says it runs
// (lib/live-migrations.ts); they outlive it when the node was silent as the migration ended (its
// steps were skipped) or the agent died in the middle of a clean-up. Images kept on purpose
// (sourcePolicy KeepImages) stay, and so does whatever a node-local record still needs
// (fencing/records.ts) or a job running here now.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { errorMessage } from '../lib/errors.ts';
import { isLive } from '../lib/live-migrations.ts';
import { readRecord } from './fencing/records.ts';
import type { AgentContext } from './context.ts';
import { exists } from './snapshot/btrfs.ts';
import { dropMigrationFiles, KEPT } from './migration-files.ts';

const UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

/** Resolves to the uids whose leftovers it removed. */
export async function sweepEnded(ctx: AgentContext): Promise<string[]> {
  const { layout } = ctx;
  const found = new Set<string>();
  for (const dir of [ctx.config.imagesDir, path.dirname(layout.incoming('x')), layout.snapshots])
    for (const e of await readdir(dir).catch(() => [] as string[])) {
      const uid = UID.exec(e)?.[0];
      if (uid) found.add(uid);
    }
  if (!found.size) return [];
  const swept: string[] = [];
  for (const uid of found) {
    if (ctx.inFlight.has(uid) || (await readRecord(ctx, uid))) continue;
    if (await exists(path.join(layout.images(uid), KEPT))) continue;
    if (await isLive(ctx.redis, ctx.config.cluster, uid)) continue;
    try {
      await dropMigrationFiles(ctx, uid);
      swept.push(uid);
    } catch (err) {
      ctx.log.warn(
        { migration: uid, err: errorMessage(err) },
        'could not remove an ended migration’s leftovers',
      );
    }
  }
  if (swept.length) ctx.log.info({ migrations: swept }, 'removed the leftovers of ended migrations');
  return swept;
}
