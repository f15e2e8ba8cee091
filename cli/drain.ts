// `ferry drain NODE`: moves every workload off a node. Each becomes an ordinary Migration (so the
// controller's concurrency limits apply: the rest wait in Pending), to a named node or the least
// busy other one. A workload that cannot move says why and keeps running where it was: a failed
// migration rolls back, and the drain checks afterwards that nothing was left stopped.
import { randomBytes } from 'node:crypto';
import { API_VERSION, type Mode, type StoredMigration } from '../api/v1alpha1/migration.ts';
import type { Client } from './client.ts';
import { waitForMigration } from './watch.ts';

export interface DrainOptions {
  /** A node to move everything to; otherwise each goes to the least busy other node. */
  to?: string | undefined;
  mode?: Mode | undefined;
  say: (line: string) => void;
  /** Which of the node's containers to drain (all by default). */
  select?: (container: string) => boolean;
  timeoutMs?: number;
}

export interface DrainReport {
  moved: Array<{ container: string; to: string; downtimeMs?: number | undefined }>;
  failed: Array<{ container: string; reason: string; runningOnSource: boolean }>;
}

/** What a finished migration means for the drain. Pure. */
export function outcome(m: StoredMigration): { moved: true; to: string } | { moved: false; reason: string } {
  if (m.status.phase === 'Succeeded') return { moved: true, to: m.status.migrationState?.targetNode ?? '?' };
  return { moved: false, reason: m.status.failureReason ?? `ended ${m.status.phase}` };
}

export async function drain(c: Client, node: string, o: DrainOptions): Promise<DrainReport> {
  const running = (await c.bus.call(node, { kind: 'list' })).filter(
    (x) => (x.status === 'running' || x.status === 'paused') && (o.select?.(x.id) ?? true),
  );
  o.say(`draining ${node}: ${running.length} workload(s)${o.to ? ` to ${o.to}` : ''}`);
  const names = running.map((x) => ({
    container: x.id,
    name: `drain-${node}-${x.id}-${randomBytes(2).toString('hex')}`.slice(0, 63),
  }));
  for (const { container, name } of names) {
    await c.store.create({
      apiVersion: API_VERSION,
      kind: 'Migration',
      metadata: { name, namespace: 'default', annotations: { 'ferry.dev/drain': node } },
      spec: {
        source: { node, container },
        target: o.to ? { node: o.to } : { nodeSelector: {} },
        ...(o.mode ? { strategy: { mode: o.mode } } : {}),
      },
    });
  }
  const ended = await Promise.all(
    names.map(async ({ container, name }) => {
      const m = await waitForMigration(c, 'default', name, () => undefined, o.timeoutMs ?? 1_800_000);
      const r = outcome(m);
      o.say(r.moved ? `  ${container}: moved to ${r.to}` : `  ${container}: not moved: ${r.reason}`);
      return { container, m, r };
    }),
  );
  const after = await c.bus.call(node, { kind: 'list' });
  const report: DrainReport = { moved: [], failed: [] };
  for (const { container, m, r } of ended) {
    if (r.moved) report.moved.push({ container, to: r.to, downtimeMs: m.status.migrationState?.downtimeMs });
    else {
      const runningOnSource = after.some((x) => x.id === container && x.status === 'running');
      if (!runningOnSource) o.say(`  ${container}: WARNING: not running on ${node} after its failed move`);
      report.failed.push({ container, reason: r.reason, runningOnSource });
    }
  }
  o.say(`${node}: ${report.moved.length} moved, ${report.failed.length} could not move`);
  return report;
}
