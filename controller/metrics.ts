// Prometheus metrics of the controller, served at /metrics by controller/http.ts (prom-client).
// Every replica serves:
// - ferry_controller_leader: 1 on the replica that leads, 0 on the others;
// - counters and histograms of the migrations it ended while leading (observed as it writes each
//   phase change). They are per process: they start at zero with each process and stop growing
//   when it stops leading, so the dashboard reads them through rate() and increase(), which sum
//   right across replicas and restarts;
// - its own process's metrics (ferry_controller_process_*, ferry_controller_nodejs_*).
// Only the leader serves the gauges read from shared state (the store, the bus, the node registry):
// a follower would serve the same values again and every sum over replicas would count them twice.
import type { Redis } from 'ioredis';
import client from 'prom-client';
import { PHASES, TERMINAL_PHASES, type StoredMigration } from '../api/v1alpha1/migration.ts';
import { QUEUE_STATES, type Bus } from '../lib/bus.ts';
import { readyNodes, seenNodes, type NodeInfo } from '../lib/node-registry.ts';
import type { MigrationStore } from '../lib/store/migration-store.ts';

/** A migration under way, as the in-flight gauges show it: its phase and, while a step sends, its bytes. Pure. */
export function inFlight(
  m: StoredMigration,
):
  | { namespace: string; name: string; phase: string; step?: string; processed?: number; remaining?: number }
  | undefined {
  const phase = m.status?.phase;
  if (!phase || TERMINAL_PHASES.includes(phase)) return undefined;
  const p = m.status.progress;
  const at = { namespace: m.metadata.namespace, name: m.metadata.name, phase };
  if (!p) return at;
  return {
    ...at,
    step: p.step,
    processed: p.bytes,
    ...(p.totalBytes !== undefined ? { remaining: Math.max(0, p.totalBytes - p.bytes) } : {}),
  };
}

/** Each agent ever seen: up (1) while its heartbeat lives, down (0) once it stopped. Pure. */
export function agentsUp(
  live: Map<string, NodeInfo>,
  seen: Map<string, number>,
): Array<{ node: string; criuOk: 'true' | 'false' | 'unknown'; up: 0 | 1 }> {
  const nodes = [...new Set([...seen.keys(), ...live.keys()])].sort();
  return nodes.map((node) => {
    const info = live.get(node);
    if (!info) return { node, criuOk: 'unknown' as const, up: 0 as const };
    return { node, criuOk: info.criuProblem ? ('false' as const) : ('true' as const), up: 1 as const };
  });
}

export class ControllerMetrics {
  readonly registry = new client.Registry();
  private readonly completed: client.Counter<'outcome'>;
  private readonly downtime: client.Histogram;
  private readonly duration: client.Histogram;
  private readonly bytes: client.Counter<'when'>;
  private readonly rate: client.Histogram;

  constructor(deps: {
    store: MigrationStore;
    bus: Bus;
    redis: Redis;
    cluster: string;
    isLeader: () => boolean;
  }) {
    const registers = [this.registry];
    const leading = deps.isLeader;
    client.collectDefaultMetrics({ register: this.registry, prefix: 'ferry_controller_' });
    new client.Gauge({
      name: 'ferry_controller_leader',
      help: 'Whether this controller replica leads (1) or follows (0). Only the leader serves the gauges of shared state (ferry_migrations, ferry_migration_*, ferry_queue_jobs, ferry_agent_up).',
      registers,
      collect() {
        this.set(leading() ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'ferry_migrations',
      help: 'Migrations in the store, by phase (served by the leader only).',
      labelNames: ['phase'],
      registers,
      async collect() {
        this.reset();
        if (!leading()) return;
        const all = await deps.store.list();
        for (const p of PHASES) this.set({ phase: p }, all.filter((m) => m.status?.phase === p).length);
      },
    });
    const phase = new client.Gauge({
      name: 'ferry_migration_phase',
      help: 'Each migration under way: 1 for its current phase (served by the leader only).',
      labelNames: ['namespace', 'name', 'phase'],
      registers,
    });
    const processed = new client.Gauge({
      name: 'ferry_migration_data_processed_bytes',
      help: 'Bytes the sending step of a migration under way has sent so far (served by the leader only).',
      labelNames: ['namespace', 'name', 'step'],
      registers,
    });
    new client.Gauge({
      name: 'ferry_migration_data_remaining_bytes',
      help: 'Bytes the sending step of a migration under way has still to send, when it knows its total (served by the leader only).',
      labelNames: ['namespace', 'name', 'step'],
      registers,
      // One read of the store for the three in-flight gauges.
      async collect() {
        for (const g of [this, phase, processed]) g.reset();
        if (!leading()) return;
        for (const f of (await deps.store.list()).map(inFlight)) {
          if (!f) continue;
          phase.set({ namespace: f.namespace, name: f.name, phase: f.phase }, 1);
          const at = { namespace: f.namespace, name: f.name, step: f.step ?? '' };
          if (f.processed !== undefined) processed.set(at, f.processed);
          if (f.remaining !== undefined) this.set(at, f.remaining);
        }
      },
    });
    this.completed = new client.Counter({
      name: 'ferry_migrations_completed_total',
      help: 'Migrations that ended, by outcome (succeeded, failed), counted by the replica leading then: read it with increase() or rate().',
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
      help: 'Jobs in each node agent queue, by state (served by the leader only).',
      labelNames: ['node', 'state'],
      registers,
      async collect() {
        this.reset();
        if (!leading()) return;
        for (const node of (await readyNodes(deps.redis, deps.cluster)).keys()) {
          const counts = await deps.bus.queue(node).getJobCounts(...QUEUE_STATES);
          for (const s of QUEUE_STATES) this.set({ node, state: s }, counts[s] ?? 0);
        }
      },
    });
    new client.Gauge({
      name: 'ferry_agent_up',
      help: 'Each node agent ever seen: 1 while its heartbeat lives, 0 once it stopped (until `ferry node forget`); criu_ok says whether CRIU works on it (served by the leader only).',
      labelNames: ['node', 'criu_ok'],
      registers,
      async collect() {
        this.reset();
        if (!leading()) return;
        const [live, seen] = await Promise.all([
          readyNodes(deps.redis, deps.cluster),
          seenNodes(deps.redis, deps.cluster),
        ]);
        for (const a of agentsUp(live, seen)) this.set({ node: a.node, criu_ok: a.criuOk }, a.up);
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
