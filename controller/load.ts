// The cluster's load: migrations running (past Pending, not ended), by source and target node.
// Pure; admission (reconcile.ts) and the dashboard read it.
import { TERMINAL_PHASES, type StoredMigration } from '../api/v1alpha1/migration.ts';
import type { Load } from './reconcile.ts';

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
}
