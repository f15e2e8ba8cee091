// PreCopy: pre-dump rounds while the workload runs, each streamed to the target's page server and
// each sending only what the workload dirtied since the round before, until P.Haul's stop rule
// (controller/strategy.ts) says the rest is small enough to copy frozen. Needs soft-dirty tracking:
// without it (this project's machines) the controller refuses PreCopy in preflight, and this
// refuses too rather than dump everything every round.
import path from 'node:path';
import type { JobOf } from '../api/v1alpha1/jobs.ts';
import { FerryError } from '../lib/errors.ts';
import { precopyStop } from './precopy-rule.ts';
import type { AgentContext } from './context.ts';
import { withSession } from './peers.ts';

const PAGE = 4096;

export async function preDumpRounds(
  ctx: AgentContext,
  job: JobOf<'checkpoint'>,
): Promise<{ rounds: number; stopReason: string; parent: string }> {
  if (!ctx.features.memDirtyTrack)
    throw new FerryError(
      'FeatureUnsupported',
      `PreCopy needs soft-dirty memory tracking, and \`criu check --feature mem_dirty_track\` fails on ${ctx.config.node}`,
    );
  const uid = job.migration.uid;
  const dirty: number[] = [];
  let stopReason: string | undefined;
  await withSession(
    ctx,
    job.targetNode,
    uid,
    async (s) => {
      while (!stopReason) {
        const dir = `pre-${dirty.length + 1}`;
        const parent = dirty.length ? `pre-${dirty.length}` : undefined;
        const before = s.bytes;
        await s.streamDump(
          (port) =>
            ctx.runc.preDump(
              job.container,
              path.join(ctx.layout.images(uid), dir),
              ctx.layout.work(uid),
              port,
              parent,
            ),
          { dir, ...(parent ? { parent } : {}) },
        );
        dirty.push(Math.ceil((s.bytes - before) / PAGE));
        ctx.progress({ round: dirty.length, dirtyPages: dirty.at(-1)! });
        stopReason = precopyStop(dirty, job.maxIterations);
      }
    },
    { bandwidth: job.bandwidth },
  );
  ctx.log.info({ rounds: dirty.length, dirty, stopReason }, 'pre-copy rounds done');
  return { rounds: dirty.length, stopReason: stopReason!, parent: `pre-${dirty.length}` };
}
