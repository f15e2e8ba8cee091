// Pending: both nodes live, a target placed, and room under the cluster's limits. Pure.
import type { MigrationState, StoredMigration } from '../../api/v1alpha1/migration.ts';
import { workloadKey, type Decision, type Facts } from './facts.ts';
import { pickTarget } from './placement.ts';
import { routeOf } from './routes.ts';
import { transition } from './steps.ts';

/** Why the migration must wait for the cluster's limits, if it must. */
function queuedBy(source: string, facts: Facts): string | undefined {
  const { load, limits } = facts;
  if (load.running >= limits.maxRunning)
    return `${load.running} migrations are running in the cluster (limit ${limits.maxRunning})`;
  const out = load.outbound[source] ?? 0;
  if (out >= limits.maxOutboundPerNode)
    return `${out} migrations are leaving ${source} (limit ${limits.maxOutboundPerNode} per node)`;
  return undefined;
}

export function admit(m: StoredMigration, facts: Facts, state: MigrationState): Decision {
  const status = m.status;
  const src = m.spec.source.node;
  const fail = (reason: string): Decision => ({
    status: transition(status, 'Failed', facts.now, { migrationState: state, failureReason: reason }),
    actions: [],
  });
  const refused = routeOf(m).refuse?.(facts);
  if (refused) return fail(refused);
  // One move per workload at a time: two would freeze and dump the same processes at once.
  const key = workloadKey(m);
  const holder = facts.load.moving?.[key];
  if (holder && holder !== `${m.metadata.namespace}/${m.metadata.name}`)
    return fail(`WorkloadBusy: ${key} is being moved by Migration ${holder}; apply again once it has ended`);
  if (!facts.nodes.has(src))
    return fail(`NodeNotFound: source node ${src} is not registered (no agent heartbeat)`);
  const placed = pickTarget(m.spec, facts.nodes, facts.load);
  if ('error' in placed) return fail(placed.error);
  const queued = queuedBy(src, facts);
  if (queued) return { status, actions: [], queued };
  return {
    status: transition(status, 'Preflight', facts.now, {
      migrationState: { ...state, targetNode: placed.node },
    }),
    actions: [],
  };
}
