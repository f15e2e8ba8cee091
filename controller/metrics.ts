// Prometheus metrics of the controller, served at /metrics by controller/http.ts (prom-client). Counts and histograms are
// observed as migrations end (the controller calls `observe` on each phase change it writes);
// gauges are read from the store, the bus and the node registry when Prometheus scrapes.
import type { Redis } from 'ioredis';
import client from 'prom-client';
import { PHASES, TERMINAL_PHASES, type StoredMigration } from '../api/v1alpha1/migration.ts';
import { QUEUE_STATES, type Bus } from '../lib/bus.ts';
import { readyNodes } from '../lib/node-registry.ts';
import type { MigrationStore } from '../lib/store/migration-store.ts';

export class ControllerMetrics {
  readonly registry = new client.Registry();
  private readonly completed: client.Counter<'outcome'>;
  private readonly downtime: client.Histogram;
  private readonly duration: client.Histogram;
  private readonly bytes: client.Counter<'when'>;
  private readonly rate: client.Histogram;

  constructor(deps: { store: MigrationStore; bus: Bus; redis: Redis; cluster: string }) {
    const registers = [this.registry];
    new client.Gauge({
      name: 'ferry_migrations',
      help: 'Migrations in the store, by phase.',
      labelNames: ['phase'],
      registers,
      async collect() {
        const all = await deps.store.list();
        for (const p of PHASES) this.set({ phase: p }, all.filter((m) => m.status?.phase === p).length);
      },
    });
    this.completed = new client.Counter({
      name: 'ferry_migrations_completed_total',
      help: 'Migrations that ended, by outcome (succeeded, failed).',
      labelNames: ['outcome'],
      registers,
    });
    this.downtime = new client.Histogram({
      name: 'ferry_migration_downtime_seconds',
      help: 'Frozen on the source to running on the target, of succeeded migrations.',
      buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers,
    });
    this.duration = new client.Histogram({
      name: 'ferry_migration_duration_seconds',
      help: 'Created to ended, of every migration that ended.',
      buckets: [1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
      registers,
    });
    this.bytes = new client.Counter({
      name: 'ferry_migration_transferred_bytes_total',
      help: 'Bytes sent between agents by migrations that ended, before and during the freeze.',
      labelNames: ['when'],
      registers,
    });
    this.rate = new client.Histogram({
      name: 'ferry_migration_transfer_rate_bytes_per_second',
      help: 'Rate of the frozen transfer of each succeeded migration.',
      buckets: [1e6, 1e7, 5e7, 1e8, 2.5e8, 5e8, 1e9],
      registers,
    });
    new client.Gauge({
      name: 'ferry_queue_jobs',
      help: 'Jobs in each node agent queue, by state.',
      labelNames: ['node', 'state'],
      registers,
      async collect() {
        this.reset();
        for (const node of (await readyNodes(deps.redis, deps.cluster)).keys()) {
          const counts = await deps.bus.queue(node).getJobCounts(...QUEUE_STATES);
          for (const s of QUEUE_STATES) this.set({ node, state: s }, counts[s] ?? 0);
        }
      },
    });
    new client.Gauge({
      name: 'ferry_agent_up',
      help: 'Node agents with a live heartbeat (1), and whether CRIU works on them (criu_ok).',
      labelNames: ['node', 'criu_ok'],
      registers,
      async collect() {
        this.reset();
        for (const [node, info] of await readyNodes(deps.redis, deps.cluster))
          this.set({ node, criu_ok: info.criuProblem ? 'false' : 'true' }, 1);
      },
    });
  }

  /** Called after each phase change the controller writes; a terminal one is counted. */
  observe(next: StoredMigration['status']): void {
    if (!TERMINAL_PHASES.includes(next.phase)) return;
    const s = next.migrationState;
    const ok = next.phase === 'Succeeded';
    this.completed.inc({ outcome: ok ? 'succeeded' : 'failed' });
    const ts = next.phaseTransitionTimestamps;
    if (ts.length > 1) this.duration.observe((Date.parse(ts.at(-1)!.time) - Date.parse(ts[0]!.time)) / 1000);
    if (ok && s?.downtimeMs !== undefined) this.downtime.observe(s.downtimeMs / 1000);
    if (ok && s?.throughputBytesPerSecond) this.rate.observe(s.throughputBytesPerSecond);
    if (s?.bytesBeforeFreeze) this.bytes.inc({ when: 'before_freeze' }, s.bytesBeforeFreeze);
    if (s?.bytesDuringFreeze) this.bytes.inc({ when: 'during_freeze' }, s.bytesDuringFreeze);
  }
}
