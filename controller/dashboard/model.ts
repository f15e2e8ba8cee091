// What the ops dashboard shows, computed from the store's Migrations, the node registry, the
// queues and the progress samples. Pure: controller/dashboard/collect.ts gathers the inputs.
import { TERMINAL_PHASES, type StoredMigration } from '../../api/v1alpha1/migration.ts';
import type { NodeInfo } from '../../lib/node-registry.ts';
import type { Progress } from '../../api/v1alpha1/migration.ts';
import { loadOf } from '../load.ts';

export interface Segment {
  phase: string;
  /** From the migration's creation. */
  startMs: number;
  ms: number;
}

export interface RateSample {
  /** Milliseconds since the epoch. */
  t: number;
  step: string;
  bytes: number;
  bytesPerSecond: number;
  totalBytes?: number | undefined;
}

export interface MigrationRow {
  uid: string;
  namespace: string;
  name: string;
  phase: string;
  ended: boolean;
  mode?: string | undefined;
  source: string;
  target?: string | undefined;
  downtimeMs?: number | undefined;
  bytes: number;
  ageMs: number;
  failureReason?: string | undefined;
  timeline: Segment[];
  /** Transfer rate over time, while the migration sends (the last samples kept). */
  rates: RateSample[];
  /** Bytes still to send in the current step, when the step knows its total. */
  remainingBytes?: number | undefined;
}

export interface NodeRow {
  node: string;
  up: boolean;
  criuOk: boolean;
  criuVersion?: string | undefined;
  outbound: number;
  inbound: number;
}

export type QueueCounts = Record<'waiting' | 'active' | 'delayed' | 'failed', number>;

export interface Overview {
  time: string;
  cluster: string;
  migrations: MigrationRow[];
  nodes: NodeRow[];
  queues: (QueueCounts & { node: string })[];
}

/** Each phase's span from the phase transitions; the current one runs until `now`. */
export function timeline(m: StoredMigration, now: number): Segment[] {
  const ts = m.status.phaseTransitionTimestamps;
  if (!ts.length) return [];
  const t0 = Date.parse(ts[0]!.time);
  const ended = TERMINAL_PHASES.includes(m.status.phase);
  return ts
    .map((t, i) => {
      const start = Date.parse(t.time);
      const next = ts[i + 1];
      const end = next ? Date.parse(next.time) : ended ? start : now;
      return { phase: t.phase, startMs: start - t0, ms: Math.max(0, end - start) };
    })
    .filter((s, i, all) => s.ms > 0 || i === all.length - 1);
}

export function migrationRow(m: StoredMigration, now: number, rates: RateSample[] = []): MigrationRow {
  const s = m.status.migrationState;
  const src = m.spec.source;
  const ended = TERMINAL_PHASES.includes(m.status.phase);
  const last = rates.at(-1);
  return {
    uid: m.metadata.uid,
    namespace: m.metadata.namespace,
    name: m.metadata.name,
    phase: m.status.phase,
    ended,
    mode: s?.mode,
    source: `${src.node}/${src.container}${src.pid ? ` (pid ${src.pid})` : ''}`,
    target: s?.targetNode ?? m.spec.target.node,
    downtimeMs: s?.downtimeMs,
    bytes: (s?.bytesBeforeFreeze ?? 0) + (s?.bytesDuringFreeze ?? 0),
    ageMs: now - Date.parse(m.metadata.creationTimestamp),
    failureReason: m.status.failureReason,
    timeline: timeline(m, now),
    rates,
    remainingBytes:
      !ended && last?.totalBytes !== undefined ? Math.max(0, last.totalBytes - last.bytes) : undefined,
  };
}

/** Newest first: what a person watching a drain wants at the top. */
export function overview(input: {
  cluster: string;
  now: number;
  migrations: StoredMigration[];
  nodes: Map<string, NodeInfo>;
  queues: Map<string, QueueCounts>;
  rates: (uid: string) => RateSample[];
}): Overview {
  const load = loadOf(input.migrations);
  const names = new Set([...input.nodes.keys(), ...Object.keys(load.outbound), ...Object.keys(load.inbound)]);
  return {
    time: new Date(input.now).toISOString(),
    cluster: input.cluster,
    migrations: [...input.migrations]
      .sort((a, b) => b.metadata.creationTimestamp.localeCompare(a.metadata.creationTimestamp))
      .map((m) => migrationRow(m, input.now, input.rates(m.metadata.uid))),
    nodes: [...names].sort().map((node) => {
      const info = input.nodes.get(node);
      return {
        node,
        up: info !== undefined,
        criuOk: info !== undefined && !info.criuProblem,
        criuVersion: info?.criuVersion,
        outbound: load.outbound[node] ?? 0,
        inbound: load.inbound[node] ?? 0,
      };
    }),
    queues: [...input.queues].sort(([a], [b]) => a.localeCompare(b)).map(([node, q]) => ({ node, ...q })),
  };
}

/** Keeps the last samples of each sending migration's progress, one per poll. */
export class RateHistory {
  private readonly samples = new Map<string, RateSample[]>();
  constructor(private readonly keep = 120) {}

  record(
    uid: string,
    step: string,
    p: Pick<Progress, 'bytes' | 'bytesPerSecond' | 'totalBytes'> | undefined,
    t: number,
  ): void {
    if (!p?.bytes) return;
    const list = this.samples.get(uid) ?? [];
    const last = list.at(-1);
    if (last && last.step === step && last.bytes === p.bytes) return; // nothing moved since
    list.push({ t, step, bytes: p.bytes, bytesPerSecond: p.bytesPerSecond ?? 0, totalBytes: p.totalBytes });
    this.samples.set(uid, list.slice(-this.keep));
  }

  of(uid: string): RateSample[] {
    return this.samples.get(uid) ?? [];
  }

  /** Forgets migrations no longer in the store. */
  retain(uids: Set<string>): void {
    for (const uid of this.samples.keys()) if (!uids.has(uid)) this.samples.delete(uid);
  }
}
