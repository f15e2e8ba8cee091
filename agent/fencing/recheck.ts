// After every long step (a dump, a restore, a frozen send), before it counts: is this agent still
// the one expected to act? Its lease must be held now, its node not fenced, and the migration live
// in the phase the step belongs to; an agent that was paused past its lease, or finds the store
// wiped or the migration moved on (rolled back around it), undoes what the step did and fails it.
// A store that does not answer counts as no: nothing is kept that cannot be confirmed.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Phase } from '../../api/v1alpha1/migration.ts';
import { FerryError, errorMessage } from '../../lib/errors.ts';
import { isFenced } from '../../lib/fences.ts';
import { liveOf } from '../../lib/live-migrations.ts';
import type { AgentContext } from '../context.ts';

/** Why this agent may not keep what the step did, or undefined when it may. */
export async function notExpected(ctx: AgentContext, uid: string, phase: Phase): Promise<string | undefined> {
  // Just back from a pause, the heartbeat's overdue renewal is a moment away: give it one beat.
  for (let i = 0; i < 25 && !ctx.lease.held(); i++) await sleep(100);
  if (!ctx.lease.held())
    return `${ctx.config.node}'s lease is not held (paused, or the store is unreachable)`;
  try {
    const { redis, config } = ctx;
    const [fenced, live] = await Promise.all([
      isFenced(redis, config.cluster, config.node),
      liveOf(redis, config.cluster, uid),
    ]);
    if (fenced) return `${config.node} is fenced`;
    if (!live) return 'the migration is no longer live (ended, or the store lost it)';
    if (live.phase && live.phase !== phase) return `the migration moved on to ${live.phase}`;
    return undefined;
  } catch (err) {
    return `the store cannot confirm it: ${errorMessage(err)}`;
  }
}

/**
 * Runs `undo` and fails the step when this agent is no longer expected to act for `phase`. The
 * undo's own failure is logged, and the step still fails: the watchdog retries from the record.
 */
export async function recheck(
  ctx: AgentContext,
  job: { migration: { uid: string; name: string }; kind: string },
  phase: Phase,
  undo: () => Promise<string>,
): Promise<void> {
  const why = await notExpected(ctx, job.migration.uid, phase);
  if (!why) return;
  let undone: string;
  try {
    undone = await undo();
  } catch (err) {
    undone = `undoing it failed (${errorMessage(err)}); the watchdog tries again from the node's record`;
  }
  ctx.log.warn({ migration: job.migration.name, why, undone }, `${job.kind} not kept: fenced`);
  throw new FerryError('Fenced', `${job.kind} on ${ctx.config.node} not kept: ${why}; ${undone}`);
}
