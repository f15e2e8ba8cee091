// Gathers what the dashboard shows: Migrations from the store, nodes from the registry, job counts
// from the bus, and each Migration's status.progress, sampled on every snapshot so the page can
// draw the transfer rate over time.
import type { Redis } from 'ioredis';
import { TERMINAL_PHASES } from '../../api/v1alpha1/migration.ts';
import { QUEUE_STATES, type Bus } from '../../lib/bus.ts';
import { readyNodes } from '../../lib/node-registry.ts';
import type { MigrationStore } from '../../lib/store/migration-store.ts';
import { overview, RateHistory, type Overview, type QueueCounts } from './model.ts';

export class DashboardFeed {
  private readonly rates = new RateHistory();

  constructor(private readonly deps: { store: MigrationStore; bus: Bus; redis: Redis; cluster: string }) {}

  async snapshot(now = Date.now()): Promise<Overview> {
    const { store, bus, redis, cluster } = this.deps;
    const migrations = await store.list();
    for (const m of migrations) {
      const p = m.status.progress;
      if (!p || TERMINAL_PHASES.includes(m.status.phase)) continue;
      this.rates.record(m.metadata.uid, p.step, p, now);
    }
    this.rates.retain(new Set(migrations.map((m) => m.metadata.uid)));
    const nodes = await readyNodes(redis, cluster);
    const queues = new Map<string, QueueCounts>();
    for (const node of nodes.keys()) {
      const c = await bus.queue(node).getJobCounts(...QUEUE_STATES);
      queues.set(node, {
        waiting: c.waiting ?? 0,
        active: c.active ?? 0,
        delayed: c.delayed ?? 0,
        failed: c.failed ?? 0,
      });
    }
    return overview({ cluster, now, migrations, nodes, queues, rates: (uid) => this.rates.of(uid) });
  }
}
