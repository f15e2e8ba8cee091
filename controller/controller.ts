// The controller loop: observe each live Migration's jobs, the nodes and the cluster's load, let
// decide() choose, then act and write status. All state is in the store and the bus, so a
// restarted controller carries on where the last one stopped; deterministic job ids make repeated
// steps no-ops. It acts only while it holds the leader lease.
import { isDeepStrictEqual } from 'node:util';
import type { Redis } from 'ioredis';
import type { RedisConfig } from '../api/v1alpha1/cluster.ts';
import { TERMINAL_PHASES, type StoredMigration } from '../api/v1alpha1/migration.ts';
import { keyspace } from '../lib/keyspace.ts';
import { logOutages } from '../lib/redis.ts';
import type { Logger } from '../lib/logger.ts';
import { Bus } from '../lib/bus.ts';
import { addLoad, isRunning, loadOf } from './load.ts';
import { markEnded, markLive } from '../lib/live-migrations.ts';
import type { PodApi } from '../lib/kube/pods.ts';
import { targetPodOf } from './phases/pod-route.ts';
import { readyNodes } from '../lib/node-registry.ts';
import {
  DEFAULT_LIMITS,
  decide,
  routeOf,
  sideNode,
  type Action,
  type Decision,
  observeJob,
  type StepFacts,
  type Limits,
  type NodeFact,
  type PodFacts,
} from './reconcile.ts';
import type { MigrationStore } from '../lib/store/migration-store.ts';

export interface ControllerOptions {
  cluster: string;
  redis: Redis;
  redisConfig: RedisConfig;
  store: MigrationStore;
  log: Logger;
  limits?: Limits;
  /** Longest wait between passes when nothing wakes the loop. */
  resyncMs?: number;
  /** Whether this replica may act now (leader election); always true when absent. */
  isLeader?: () => boolean;
  /** Test-only crash points (fault hooks), checked after each status write. */
  afterStatusWrite?: (m: StoredMigration, phase: string) => Promise<void>;
  /** Told of every phase change written (metrics). */
  onPhaseChange?: (next: StoredMigration['status']) => void;
  /** Pods through the Kubernetes API (Kubernetes only): without it, pod Migrations are refused. */
  pods?: PodApi;
}

/** Equal as documents: key order and undefined fields do not count (stores reorder keys). */
export function sameStatus(a: StoredMigration['status'], b: StoredMigration['status']): boolean {
  const norm = (x: unknown) => JSON.parse(JSON.stringify(x)) as unknown;
  return isDeepStrictEqual(norm(a), norm(b));
}

export class Controller {
  readonly bus: Bus;
  private stopped = false;
  private wake: (() => void) | undefined;
  private readonly watched = new Set<string>();
  private readonly limits: Limits;

  constructor(private readonly opts: ControllerOptions) {
    this.bus = new Bus(opts.redis, opts.redisConfig, opts.cluster, logOutages(opts.log));
    this.limits = opts.limits ?? DEFAULT_LIMITS;
  }

  private dirty = false;

  /** Something changed: end the current wait, or run another pass after the current one. */
  poke = (): void => {
    this.dirty = true;
    this.wake?.();
  };

  private watchNode(node: string): void {
    if (this.watched.has(node)) return;
    this.watched.add(node);
    const ev = this.bus.queueEvents(node);
    ev.on('completed', this.poke);
    ev.on('failed', this.poke);
  }

  private async jobFacts(m: StoredMigration): Promise<StepFacts> {
    const jobs: StepFacts = {};
    for (const { step, side } of routeOf(m).steps(m, m.status.phase)) {
      const node = sideNode(m, side);
      if (!node) continue;
      const raw = await this.bus.fact(node, keyspace.jobId(m.metadata.uid, step));
      if (raw) Object.assign(jobs, { [step]: observeJob(step, raw) });
    }
    return jobs;
  }

  /** A pod Migration's pods as the API shows them now; undefined for containers or off Kubernetes. */
  private async podFacts(m: StoredMigration): Promise<PodFacts | undefined> {
    const api = this.opts.pods;
    if (!api || !m.spec.source.pod || m.status.phase === 'Pending') return undefined;
    const ns = m.metadata.namespace;
    const [source, replacement] = await Promise.all([
      api.get(ns, m.spec.source.pod),
      api.get(ns, targetPodOf(m)),
    ]);
    return { ...(source ? { source } : {}), ...(replacement ? { replacement } : {}) };
  }

  private async act(m: StoredMigration, actions: Action[]): Promise<void> {
    const log = this.opts.log.child({ migration: m.metadata.name });
    for (const a of actions) {
      if (a.type === 'enqueue') {
        log.debug({ step: a.step, node: a.node }, 'enqueue');
        await this.bus.enqueue(a.node, a.jobId, a.job);
      } else if (a.type === 'cancel') {
        log.info({ step: a.step, node: a.node }, 'withdraw job');
        await this.bus.cancel(a.node, a.jobId);
      } else if (a.type === 'createPod') {
        log.info({ pod: a.pod.metadata?.name, node: a.pod.spec?.nodeName }, 'create the replacement pod');
        await this.opts.pods!.create(a.pod);
      } else if (a.type === 'deletePod') {
        log.info({ pod: a.name }, 'delete pod');
        await this.opts.pods!.delete(a.namespace, a.name);
      } else {
        log.info('deleted migration ended: releasing it');
        await this.opts.store.release(m.metadata.namespace, m.metadata.name);
      }
    }
  }

  private async announce(m: StoredMigration, next: StoredMigration['status']): Promise<void> {
    const failed = next.phase === 'Failed' || next.phase === 'RollingBack';
    const message =
      next.phase === 'Succeeded'
        ? `running on ${next.migrationState?.targetNode}; downtime ${next.migrationState?.downtimeMs ?? '?'} ms`
        : failed
          ? (next.failureReason ?? next.phase)
          : `${m.status.phase} -> ${next.phase}`;
    await this.opts.store.event(m, { type: failed ? 'Warning' : 'Normal', reason: next.phase, message });
  }

  /** One pass over every live Migration, oldest first. Returns how many changed phase. */
  async reconcileAll(): Promise<number> {
    const ready = await readyNodes(this.opts.redis, this.opts.cluster);
    const nodes = new Map<string, NodeFact>([...ready].map(([n, info]) => [n, { labels: info.labels }]));
    for (const n of nodes.keys()) this.watchNode(n);
    const all = await this.opts.store.list();
    const load = loadOf(all);
    let changed = 0;
    let batch = all.filter((m) => !TERMINAL_PHASES.includes(m.status.phase) || m.metadata.deletionTimestamp);
    // Rounds: a migration that changed phase usually has jobs to enqueue, so it is decided again
    // at once rather than a pass later. In each round, observing and acting run for all
    // migrations at once (Redis pipelines the requests); deciding stays sequential, oldest first,
    // because admission shares the cluster's load.
    for (let round = 0; round < 4 && batch.length; round++) {
      if (this.opts.isLeader && !this.opts.isLeader()) break;
      const observed = await Promise.all(batch.map((m) => this.jobFacts(m)));
      const pods = await Promise.all(batch.map((m) => this.podFacts(m)));
      const now = new Date().toISOString();
      const kube = this.opts.pods !== undefined;
      const decisions = batch.map((m, i) => {
        if (isRunning(m)) addLoad(load, m, -1); // facts describe the others
        const facts = { now, nodes, jobs: observed[i]!, load, limits: this.limits, kube };
        const d = decide(m, pods[i] ? { ...facts, pods: pods[i] } : facts);
        if (isRunning({ ...m, status: d.status })) addLoad(load, { ...m, status: d.status }, 1);
        return d;
      });
      const results = await Promise.all(batch.map((m, i) => this.apply(m, decisions[i]!)));
      batch = batch
        .map((m, i) => ({ m: { ...m, status: decisions[i]!.status }, moved: results[i] }))
        .filter(
          (x) => x.moved && (!TERMINAL_PHASES.includes(x.m.status.phase) || x.m.metadata.deletionTimestamp),
        )
        .map((x) => x.m);
      changed += results.filter(Boolean).length;
    }
    return changed;
  }

  /** Before a migration leaves Pending: it is live (its agents run its jobs, its target takes its streams). */
  private async markLiveIfStarted(m: StoredMigration, next: StoredMigration['status']): Promise<void> {
    const target = next.migrationState?.targetNode;
    if (
      m.status.phase !== 'Pending' ||
      next.phase === 'Pending' ||
      TERMINAL_PHASES.includes(next.phase) ||
      !target
    )
      return;
    await markLive(this.opts.redis, this.opts.cluster, {
      target,
      uid: m.metadata.uid,
      source: m.spec.source.node,
    });
  }

  /** Once it ended: nothing more runs or is accepted for it (a stalled job, a replayed stream). */
  private async markEndedIfOver(m: StoredMigration, next: StoredMigration['status']): Promise<void> {
    if (TERMINAL_PHASES.includes(next.phase))
      await markEnded(this.opts.redis, this.opts.cluster, m.metadata.uid);
  }

  /** Carries out one decision: its actions, then its status and an Event. True if the phase moved. */
  private async apply(m: StoredMigration, decision: Decision): Promise<boolean> {
    // Releasing a deleted Migration comes last: its final status, Event and end mark are written
    // first (released first, the write found no Migration and the live mark stayed for a week).
    const release = decision.actions.some((a) => a.type === 'release');
    await this.act(
      m,
      decision.actions.filter((a) => a.type !== 'release'),
    );
    const moved = await this.writeStatus(m, decision.status);
    if (release) {
      await markEnded(this.opts.redis, this.opts.cluster, m.metadata.uid);
      await this.act(m, [{ type: 'release' }]);
    }
    return moved;
  }

  /** Writes the next status if it changed; true if the phase moved. */
  private async writeStatus(m: StoredMigration, next: StoredMigration['status']): Promise<boolean> {
    if (sameStatus(next, m.status)) return false;
    await this.markLiveIfStarted(m, next);
    const written = await this.opts.store.updateStatus(m.metadata.namespace, m.metadata.name, next);
    if (!written || next.phase === m.status.phase) return false;
    this.opts.log.info(
      { migration: m.metadata.name, phase: m.status.phase, next: next.phase, reason: next.failureReason },
      'phase change',
    );
    await this.announce(m, next);
    this.opts.onPhaseChange?.(next);
    await this.markEndedIfOver(m, next);
    await this.opts.afterStatusWrite?.(m, next.phase);
    return true;
  }

  async run(): Promise<void> {
    const resync = this.opts.resyncMs ?? 1000;
    while (!this.stopped) {
      this.dirty = false;
      try {
        if (!this.opts.isLeader || this.opts.isLeader()) await this.reconcileAll();
      } catch (err) {
        this.opts.log.error(
          { err: err instanceof Error ? err.message : String(err) },
          'reconcile pass failed',
        );
      }
      // Something happened during the pass: go again at once; else wait for news or the resync.
      if (this.dirty || this.stopped) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, resync);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.poke();
    await this.bus.close();
  }
}
