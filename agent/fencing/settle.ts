// What an agent does with its own record of a migration (fencing/records.ts), from what the store
// says of it now. Pure: the watchdog (fencing/watchdog.ts) gathers the view and carries it out.
//
// The rule that keeps one copy: a source thaws only when the target cannot run the workload (no
// hand-over yet, or the target said it holds nothing, or the migration failed and was rolled back
// around it); a target keeps its copy only when the migration succeeded or, the store having
// forgotten it, when the copy runs here (then it tells the source so). Nothing acts while a job of
// the migration still runs here: that job re-checks and settles itself.
import type { Phase } from '../../api/v1alpha1/migration.ts';
import type { Verdict } from '../../lib/handover.ts';
import type { Outcome } from '../../lib/live-migrations.ts';
import type { NodeRecord } from './records.ts';

export interface SettleView {
  /** The migration's live mark, if the store has one. */
  live?: { phase?: Phase | undefined } | undefined;
  /** Its end mark, if it ended in the last week. */
  ended?: Outcome | undefined;
  /** An operator declared this node dead: the others act around it. */
  selfFenced: boolean;
  /** The target's answer, when this source asked (the store forgot the migration). */
  verdict?: Verdict | undefined;
  /** A job of this migration runs on this node now. */
  inFlight: boolean;
}

export type SettleAction =
  | { do: 'wait'; why: string }
  /** Thaw (or restore, for a process tree) the source copy; drop the migration's files. */
  | { do: 'resumeSource' }
  /** The workload runs on the target: remove the stopped source copy and the files. */
  | { do: 'removeSource' }
  /** The store forgot a handed-over migration: ask the target whether it runs the workload. */
  | { do: 'askTarget' }
  /** The copy here is the one: drop the migration's files, keep the workload. */
  | { do: 'keepTarget'; answer?: Verdict }
  /** Remove the copy this migration made here, and its files. */
  | { do: 'removeTarget'; answer?: Verdict }
  /** The store forgot it: keep the copy if it runs (and say so), else remove it. */
  | { do: 'keepTargetIfRunning' };

export function settle(r: NodeRecord, v: SettleView): SettleAction {
  if (v.inFlight) return { do: 'wait', why: 'a job of the migration runs here' };
  if (v.live) {
    // The controller drives a live migration; a fenced target's copy goes, since the controller
    // resumes the source around it. A fenced source keeps its copy frozen until the migration ends.
    if (v.selfFenced && r.role === 'target') return { do: 'removeTarget' };
    return { do: 'wait', why: `the migration is live (${v.live.phase ?? 'running'})` };
  }
  if (v.ended === 'Succeeded') return r.role === 'source' ? { do: 'removeSource' } : { do: 'keepTarget' };
  if (v.ended === 'Failed') return r.role === 'source' ? { do: 'resumeSource' } : { do: 'removeTarget' };
  // Neither live nor ended: the store lost it (wiped), or it ended more than a week ago.
  if (r.role === 'target')
    return r.state === 'restored'
      ? { do: 'keepTargetIfRunning' }
      : { do: 'removeTarget', answer: 'targetDropped' };
  if (r.state === 'frozen') return { do: 'resumeSource' }; // never handed over: no other copy
  if (v.verdict === 'targetRuns') return { do: 'removeSource' };
  if (v.verdict === 'targetDropped') return { do: 'resumeSource' };
  return r.peer ? { do: 'askTarget' } : { do: 'wait', why: 'no target to ask' };
}
