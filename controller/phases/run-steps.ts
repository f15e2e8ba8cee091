// The steps of the current phase, walked once: which jobs to enqueue, which failed, which a gone
// node will never finish, and the route's own work in the phase (its gate). Pure; outcome.ts decides
// what the walk means for the phase.
import type { StoredMigration } from '../../api/v1alpha1/migration.ts';
import { formatFailure } from '../../lib/errors.ts';
import { keyspace } from '../../lib/keyspace.ts';
import { errorMessage } from '../../lib/errors.ts';
import type { MigrationState } from '../../api/v1alpha1/migration.ts';
import type { Action, Facts, JobFact, StepName } from './facts.ts';
import { routeOf } from './routes.ts';

export interface Walk {
  actions: Action[];
  /** One line per failed step: "step on node failed: Code: message". */
  failures: string[];
  warnings: string[];
  /** Silent nodes the phase waits for (to answer or be fenced), each said once in status. */
  waiting: string[];
  /** Steps of a gone node: neither running nor ever to finish. */
  gone: Set<StepName>;
  allDone: boolean;
}

/**
 * Whether a silent node must be waited for rather than acted around: a target from the hand-over
 * on (it may restore, or run, the workload) and a source while rolling back (it holds the frozen
 * copy, the only one). Before the hand-over a silent target cannot restore: the source resumes.
 */
export function waitsForSilentNode(phase: string, side: 'source' | 'target', state: MigrationState): boolean {
  if (side === 'target')
    return (
      phase === 'Restoring' || phase === 'Verifying' || (phase === 'RollingBack' && state.handedOver === true)
    );
  return phase === 'RollingBack';
}

const unclaimed = (fact: JobFact | undefined): boolean =>
  !fact || fact.state === 'waiting' || fact.state === 'delayed';

export function walkSteps(m: StoredMigration, facts: Facts, state: MigrationState): Walk {
  const phase = m.status.phase;
  const src = m.spec.source.node;
  const target = state.targetNode!;
  const route = routeOf(m);
  const gate = route.gate?.(m, facts, state);
  const w: Walk = {
    actions: [...(gate?.actions ?? [])],
    failures: [...(gate?.failures ?? [])],
    warnings: [],
    waiting: [],
    gone: new Set(),
    allDone: gate?.done ?? true,
  };
  const skipped = new Set<StepName>();
  for (const { step, side, after = [], afterGate, ready } of route.steps(m, phase)) {
    const fact = facts.jobs[step] as JobFact | undefined;
    const node = side === 'source' ? src : target;
    const jobId = keyspace.jobId(m.metadata.uid, step);
    // A node whose agent stopped beating (lease expired, plus a grace) is silent, not dead: a paused
    // agent comes back and finishes what it started. Where it could still make a second copy (a
    // target that may restore, a source holding the frozen workload) nothing acts around it until
    // it answers or an operator fences it (docs/fencing.md). Elsewhere a step nobody there finished
    // fails the migration at once; while rolling back or cleaning up, the target's steps are
    // skipped. A job a silent node had taken stays with it: no worker there will see it stall.
    if (!facts.nodes.has(node) && (unclaimed(fact) || fact!.state === 'active')) {
      const fenced = facts.fenced?.has(node) ?? false;
      if (!fenced && waitsForSilentNode(phase, side, state)) {
        w.waiting.push(
          `node ${node} went silent during ${phase} (no agent heartbeat): ferry waits for it to answer or be fenced (ferry node fence ${node}) and acts on no silence`,
        );
        w.allDone = false;
        continue;
      }
      const gone = fenced
        ? `node ${node} is fenced (declared dead)`
        : `node ${node} is gone (no agent heartbeat)`;
      if (fact && unclaimed(fact)) w.actions.push({ type: 'cancel', step, node, jobId });
      if ((phase === 'RollingBack' && side === 'target') || phase === 'CleaningUp') {
        skipped.add(step);
        w.warnings.push(`${step} skipped: ${gone}; its agent removes the leftovers when it returns`);
      } else w.failures.push(`${step} on ${node} failed: NodeNotFound: ${gone}`);
      w.gone.add(step);
      continue;
    }
    const waiting = after.some((a) => facts.jobs[a]?.state !== 'completed' && !skipped.has(a));
    if (!fact && (waiting || (afterGate && !gate?.done) || (ready && !ready(facts, m)))) {
      w.allDone = false; // waits for the step (or the controller's work) whose result it needs
    } else if (!fact) {
      try {
        const job = route.build(step, m, facts, target);
        w.actions.push({ type: 'enqueue', step, node, jobId, job });
      } catch (err) {
        w.failures.push(`${step} on ${node} cannot start: ${errorMessage(err)}`);
      }
      w.allDone = false;
    } else if (fact.state === 'failed') {
      const failure = fact.failure ?? { code: 'Internal' as const, message: 'unknown error' };
      w.failures.push(`${step} on ${node} failed: ${formatFailure(failure)}`);
    } else if (fact.state !== 'completed') {
      w.allDone = false;
    }
  }
  return w;
}

/** Whether a step of the phase still runs (neither ended nor lost with its node). */
export function unsettled(m: StoredMigration, facts: Facts, gone: Set<StepName>): boolean {
  return routeOf(m)
    .steps(m, m.status.phase)
    .some(({ step: s }) => {
      const f = facts.jobs[s];
      return !gone.has(s) && f !== undefined && f.state !== 'completed' && f.state !== 'failed';
    });
}
