// The agent's watchdog: every few seconds, and at once when its lease is renewed after a lapse,
// settles its node-local records against the store (fencing/settle.ts), answers a source's question
// about a migration the store forgot (lib/handover.ts), and sweeps the files of ended migrations
// (gc.ts). It does nothing while the store does not answer: a silence is not an answer.
import { errorMessage } from '../../lib/errors.ts';
import { isFenced } from '../../lib/fences.ts';
import { answer, askTarget, asksFor, forgetVerdict, verdictOf } from '../../lib/handover.ts';
import { endedOf, liveOf } from '../../lib/live-migrations.ts';
import type { AgentContext } from '../context.ts';
import { sweepEnded } from '../gc.ts';
import { dropMigrationFiles } from '../migration-files.ts';
import { thawSource } from '../migration-source.ts';
import { cleanupTarget, removeCopy } from '../migration-target.ts';
import { stopBackground } from '../page-streams.ts';
import { workloadKind } from '../workloads/kinds.ts';
import { allRecords, dropRecord, jobOf, readRecord, type NodeRecord } from './records.ts';
import { settle, type SettleAction } from './settle.ts';

export const WATCHDOG_MS = 3000;

async function carryOut(ctx: AgentContext, r: NodeRecord, a: SettleAction): Promise<string | undefined> {
  const { redis, config } = ctx;
  const uid = r.migration.uid;
  switch (a.do) {
    case 'wait':
      return undefined;
    case 'askTarget':
      await askTarget(redis, config.cluster, r.peer!, uid);
      return `asked ${r.peer} whether it runs the workload`;
    case 'resumeSource': {
      // The same end as a rollback's resume (migration-source.ts); the release was settle's to judge.
      const res = await thawSource(ctx, jobOf(r, 'resumeSource'));
      await forgetVerdict(redis, config.cluster, uid);
      return res.wasFrozen ? 'resumed the frozen source' : 'the source runs';
    }
    case 'removeSource':
      await stopBackground(ctx, uid);
      await workloadKind(r).removeSource(ctx, { ...jobOf(r, 'cleanupSource'), keepImages: false });
      await dropMigrationFiles(ctx, uid);
      await dropRecord(ctx, uid);
      await forgetVerdict(redis, config.cluster, uid);
      return 'removed the stopped source: the workload runs on the target';
    case 'keepTarget':
      await cleanupTarget(ctx, jobOf(r, 'cleanupTarget'));
      if (a.answer) await answer(redis, config.cluster, config.node, uid, a.answer);
      return 'kept the restored copy';
    case 'removeTarget':
      await removeCopy(ctx, jobOf(r, 'rollbackTarget'));
      if (a.answer) await answer(redis, config.cluster, config.node, uid, a.answer);
      return 'removed the copy this migration made here';
    case 'keepTargetIfRunning': {
      const runs = await workloadKind(r)
        .verify(ctx, jobOf(r, 'verifyTarget'))
        .then(
          () => true,
          () => false,
        );
      return carryOut(
        ctx,
        r,
        runs ? { do: 'keepTarget', answer: 'targetRuns' } : { do: 'removeTarget', answer: 'targetDropped' },
      );
    }
  }
}

/** The last failure said for each migration: a retry that fails the same way is not said again. */
const said = new Map<string, string>();

/** One pass. Resolves once done; throws only when the store does not answer. */
export async function watchdogPass(ctx: AgentContext): Promise<void> {
  const { redis, config, log } = ctx;
  const selfFenced = await isFenced(redis, config.cluster, config.node);
  for (const r of await allRecords(ctx)) {
    const uid = r.migration.uid;
    const [live, ended, verdict] = await Promise.all([
      liveOf(redis, config.cluster, uid),
      endedOf(redis, config.cluster, uid),
      r.role === 'source' ? verdictOf(redis, config.cluster, uid) : undefined,
    ]);
    const action = settle(r, { live, ended, selfFenced, verdict, inFlight: ctx.inFlight.has(uid) });
    if (action.do === 'wait') continue;
    // A job may have started since the records were read: the record is re-read just before.
    if (ctx.inFlight.has(uid) || !(await readRecord(ctx, uid))) continue;
    try {
      const done = await carryOut(ctx, r, action);
      said.delete(uid);
      if (done && action.do !== 'askTarget')
        log.warn({ migration: r.migration.name, role: r.role }, `settled from the node's record: ${done}`);
    } catch (err) {
      const why = errorMessage(err);
      if (said.get(uid) === why) continue;
      said.set(uid, why);
      log.error(
        { migration: r.migration.name, err: why },
        `cannot settle from the node's record (${action.do}); trying again every ${WATCHDOG_MS / 1000}s`,
      );
    }
  }
  // A source asks about a migration the store forgot: this node holds no record of it, so no copy.
  for (const uid of await asksFor(redis, config.cluster, config.node)) {
    if (ctx.inFlight.has(uid) || (await readRecord(ctx, uid))) continue;
    await dropMigrationFiles(ctx, uid);
    await answer(redis, config.cluster, config.node, uid, 'targetDropped');
  }
  await sweepEnded(ctx);
}

export function startWatchdog(ctx: AgentContext): { run(): void; stop(): void } {
  let running = false;
  const run = () => {
    if (running) return;
    running = true;
    void watchdogPass(ctx)
      .catch((err: Error) => ctx.log.debug({ err: err.message }, 'watchdog pass skipped'))
      .finally(() => (running = false));
  };
  const timer = setInterval(run, WATCHDOG_MS);
  return { run, stop: () => clearInterval(timer) };
}
