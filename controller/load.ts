// The cluster's load: migrations running (past Pending, not ended), by source and target node.
// Pure; admission (phases/admit.ts) and the dashboard read it.
import { TERMINAL_PHASES, type StoredMigration } from '../api/v1alpha1/migration.ts';
import { workloadKey, type Load } from './phases/facts.ts';

/** Running migrations (past Pending, not ended) by cluster, source node and target node. */
export function loadOf(all: StoredMigration[]): Load {
  const load: Load = { running: 0, outbound: {}, inbound: {} };
  for (const m of all) if (isRunning(m)) addLoad(load, m, 1);
  return load;
}

export const isRunning = (m: StoredMigration): boolean =>
  m.status.phase !== 'Pending' && !TERMINAL_PHASES.includes(m.status.phase);

export function addLoad(load: Load, m: StoredMigration, n: number): void {
  load.running += n;
  const src = m.spec.source.node;
  load.outbound[src] = (load.outbound[src] ?? 0) + n;
  const dst = m.status.migrationState?.targetNode;
  if (dst) load.inbound[dst] = (load.inbound[dst] ?? 0) + n;
  // One move per workload at a time: admission refuses a second (phases/admit.ts).
  const moving = (load.moving ??= {});
  const key = workloadKey(m);
  if (n > 0) moving[key] = `${m.metadata.namespace}/${m.metadata.name}`;
  else if (moving[key] === `${m.metadata.namespace}/${m.metadata.name}`) delete moving[key];
}
