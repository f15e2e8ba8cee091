// The controller loop: observe each live Migration's jobs, the nodes and the cluster's load, let
// decide() choose, then act and write status. All state is in the store and the bus, so a
// restarted controller carries on where the last one stopped; deterministic job ids make repeated
// steps no-ops. It acts only while it holds the leader lease.
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
import type { NodeApi, NodeFacts } from '../lib/kube/nodes.ts';
import { targetPodOf } from './phases/pod-route.ts';
import { readyNodes, type NodeInfo } from '../lib/node-registry.ts';
import { fencedNodes } from '../lib/fences.ts';
import { errorMessage } from '../lib/errors.ts';
import { sameDocument } from '../lib/same-document.ts';
import { performance } from 'node:perf_hooks';
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
  type Elapsed,
} from './reconcile.ts';
import type { MigrationStore } from '../lib/store/migration-store.ts';

/**
 * How long a node whose lease (heartbeat key) expired still counts as present: the agent's own view
 * of its lease ends first (it counts from before its write, the store's from after), so by then it
 * has stopped acting on its own. Measured on this process's monotonic clock (docs/fencing.md).
 */
export const NODE_GRACE_MS = 4000;

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
  /** Nodes through the Kubernetes API (Kubernetes only): their labels place, a cordon excludes. */
  nodes?: NodeApi;
}

/** What every decision of one pass shares: the nodes present, the fenced ones, the cluster's load. */
interface Pass {
  nodes: Map<string, NodeFact>;
  fenced: Set<string>;
  load: ReturnType<typeof loadOf>;
}

/** How long the Nodes read from the API serve before they are read again (a cordon or a label counts after this). */
const NODES_FRESH_MS = 1000;

export class Controller {
  readonly bus: Bus;
  private stopped = false;
  private wake: (() => void) | undefined;
  private readonly watched = new Set<string>();
  private readonly limits: Limits;
  /** When each node was last seen in the registry, on the monotonic clock; from this start at least. */
  private readonly lastSeen = new Map<string, { at: number; info: NodeInfo }>();
  /** The Kubernetes Nodes as last read, and when (monotonic). */
  private kubeNodes: { at: number; nodes: Map<string, NodeFacts> } | undefined;
  private readonly started = performance.now();
  /** When this controller saw each migration enter its phase and Preflight, on its monotonic clock. */
  private readonly clocks = new Map<string, { phase: string; phaseAt: number; preflightAt?: number }>();
  /** The live Migrations of the last pass, to say when one vanished without being deleted. */
  private known = new Map<string, StoredMigration>();

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
    // Before anything is frozen: how each claim it mounts may be attached (pod-rules.ts).
    const claims: Record<string, string[] | undefined> = {};
    if (source && m.status.phase === 'Preflight')
      for (const v of source.spec?.volumes ?? [])
        if (v.persistentVolumeClaim)
          claims[v.persistentVolumeClaim.claimName] = await api.claimAccessModes(
            ns,
            v.persistentVolumeClaim.claimName,
          );
    // A StatefulSet's replacement has the source's name: the source's uid tells which one is here.
    const uid = m.status.migrationState?.sourcePodUid;
    const theSource = (p: typeof source) => !uid || p?.metadata?.uid === uid;
    return {
      ...(source && theSource(source) ? { source } : {}),
      ...(replacement && !(uid && replacement.metadata?.uid === uid) ? { replacement } : {}),
      ...(Object.keys(claims).length ? { claims } : {}),
    };
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
      } else if (a.type === 'updatePod') {
        log.info({ pod: a.pod.metadata?.name }, 'update pod');
        await this.opts.pods!.update(a.pod);
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
    // The outcome under the reasons operators filter on; every other phase under its own name.
    const reason =
      next.phase === 'Succeeded'
        ? 'MigrationSucceeded'
        : next.phase === 'Failed'
          ? 'MigrationFailed'
          : next.phase;
    await this.opts.store.event(m, { type: failed ? 'Warning' : 'Normal', reason, message });
  }

  /** Nodes present now, or silent for less than the grace; fenced ones are gone at once. */
  private async presentNodes(): Promise<{ nodes: Map<string, NodeFact>; fenced: Set<string> }> {
    const [ready, fences] = await Promise.all([
      readyNodes(this.opts.redis, this.opts.cluster),
      fencedNodes(this.opts.redis, this.opts.cluster),
    ]);
    const now = performance.now();
    for (const [n, info] of ready) this.lastSeen.set(n, { at: now, info });
    const kube = await this.readKubeNodes(now);
    const nodes = new Map<string, NodeFact>();
    for (const [n, seen] of this.lastSeen) {
      const silentFor = now - Math.max(seen.at, this.started);
      if (fences.has(n) || (!ready.has(n) && silentFor > NODE_GRACE_MS)) continue;
      // On Kubernetes the Node's own labels count too, and its cordon.
      const k = kube?.get(n);
      nodes.set(n, {
        labels: { ...seen.info.labels, ...k?.labels },
        ...(k?.unschedulable ? { unschedulable: true } : {}),
      });
    }
    return { nodes, fenced: new Set(fences.keys()) };
  }

  /** The Kubernetes Nodes, read at most every NODES_FRESH_MS; the last read if the API fails. */
  private async readKubeNodes(now: number): Promise<Map<string, NodeFacts> | undefined> {
    if (!this.opts.nodes) return undefined;
    if (this.kubeNodes && now - this.kubeNodes.at < NODES_FRESH_MS) return this.kubeNodes.nodes;
    try {
      this.kubeNodes = { at: now, nodes: await this.opts.nodes.list() };
    } catch (err) {
      this.opts.log.warn({ err: errorMessage(err) }, 'cannot read the Nodes: placing by the agents’ labels');
    }
    return this.kubeNodes?.nodes;
  }

  /**
   * How long `m` has been in its phase and since Preflight, on the monotonic clock. What started
   * before this controller saw it is taken from the status timestamps once, at first sight; after
   * that a wall clock that jumps changes nothing.
   */
  private elapsed(m: StoredMigration): Elapsed {
    const now = performance.now();
    const ts = m.status.phaseTransitionTimestamps;
    let c = this.clocks.get(m.metadata.uid);
    if (!c || c.phase !== m.status.phase) {
      // When something began, on the monotonic clock: its wall-clock age counts only at first sight.
      const firstSight = c === undefined;
      const began = (time: string | undefined) =>
        time === undefined ? undefined : now - (firstSight ? Math.max(0, Date.now() - Date.parse(time)) : 0);
      const preflightAt = c?.preflightAt ?? began(ts.find((t) => t.phase === 'Preflight')?.time);
      c = {
        phase: m.status.phase,
        phaseAt: began(ts.at(-1)?.time) ?? now,
        ...(preflightAt !== undefined ? { preflightAt } : {}),
      };
      this.clocks.set(m.metadata.uid, c);
    }
    return {
      phaseMs: now - c.phaseAt,
      ...(c.preflightAt !== undefined ? { sincePreflightMs: now - c.preflightAt } : {}),
    };
  }

  /** A live Migration gone from the store without a deletion: its Redis was wiped or lost. */
  private noticeVanished(all: StoredMigration[]): void {
    const now = new Map(all.map((m) => [m.metadata.uid, m]));
    for (const [uid, m] of this.known)
      if (!now.has(uid) && !m.metadata.deletionTimestamp)
        this.opts.log.error(
          { migration: `${m.metadata.namespace}/${m.metadata.name}`, phase: m.status.phase },
          'a running Migration vanished from the store (was its Redis wiped?): its agents undo what they froze or restored, from their own records',
        );
    this.known = new Map(
      all.filter((m) => !TERMINAL_PHASES.includes(m.status.phase)).map((m) => [m.metadata.uid, m]),
    );
    for (const uid of this.clocks.keys()) if (!this.known.has(uid)) this.clocks.delete(uid);
  }

  /** One pass over every live Migration, oldest first. Returns how many changed phase. */
  async reconcileAll(): Promise<number> {
    const { nodes, fenced } = await this.presentNodes();
    for (const n of nodes.keys()) this.watchNode(n);
    const all = await this.opts.store.list();
    this.noticeVanished(all);
    const pass: Pass = { nodes, fenced, load: loadOf(all) };
    const batch = all.filter(
      (m) => !TERMINAL_PHASES.includes(m.status.phase) || m.metadata.deletionTimestamp,
    );
    if (this.opts.isLeader && !this.opts.isLeader()) return 0;
    // Observing and acting run for all migrations at once (Redis pipelines the requests); deciding
    // stays sequential, oldest first, because admission shares the cluster's load.
    const [observed, pods] = await Promise.all([
      Promise.all(batch.map((m) => this.jobFacts(m))),
      Promise.all(batch.map((m) => this.podFacts(m))),
    ]);
    const decisions = batch.map((m, i) => this.decideOne(m, observed[i]!, pods[i], pass));
    const moved = await Promise.all(batch.map((m, i) => this.apply(m, decisions[i]!)));
    // A migration that changed phase usually has jobs to enqueue: each goes on at once, on its
    // own, rather than waiting for every other migration of the pass (or for the next pass).
    const follow = batch.map((m, i) => ({ ...m, status: decisions[i]!.status })).filter((m, i) => moved[i]);
    const more = await Promise.all(follow.map((m) => this.follow(m, pass)));
    return follow.length + more.reduce((a, b) => a + b, 0);
  }

  /** Decides for one migration against the pass's facts, keeping the shared load up to date. */
  private decideOne(m: StoredMigration, jobs: StepFacts, pods: PodFacts | undefined, pass: Pass): Decision {
    const { load } = pass;
    if (isRunning(m)) addLoad(load, m, -1); // facts describe the others
    const facts = {
      now: new Date().toISOString(),
      elapsed: this.elapsed(m),
      nodes: pass.nodes,
      fenced: pass.fenced,
      jobs,
      load,
      limits: this.limits,
      kube: this.opts.pods !== undefined,
    };
    const d = decide(m, pods ? { ...facts, pods } : facts);
    if (isRunning({ ...m, status: d.status })) addLoad(load, { ...m, status: d.status }, 1);
    return d;
  }

  /** Decides again for a migration that just moved, up to three more times while it keeps moving. */
  private async follow(m: StoredMigration, pass: Pass): Promise<number> {
    let moved = 0;
    for (let round = 0; round < 3; round++) {
      if (this.opts.isLeader && !this.opts.isLeader()) break;
      if (TERMINAL_PHASES.includes(m.status.phase) && !m.metadata.deletionTimestamp) break;
      const [jobs, pods] = await Promise.all([this.jobFacts(m), this.podFacts(m)]);
      const d = this.decideOne(m, jobs, pods, pass);
      if (!(await this.apply(m, d))) break;
      m = { ...m, status: d.status };
      moved++;
    }
    return moved;
  }

  /**
   * Before a migration leaves Pending, and at each phase change after: it is live, in that phase.
   * Written before the status, so an agent never runs a step the mark does not name yet, and an
   * agent that re-checks after a long step sees at once that the migration moved on.
   */
  private async markPhase(m: StoredMigration, next: StoredMigration['status']): Promise<void> {
    const target = next.migrationState?.targetNode;
    if (next.phase === 'Pending' || TERMINAL_PHASES.includes(next.phase) || !target) return;
    if (next.phase === m.status.phase) return;
    await markLive(this.opts.redis, this.opts.cluster, {
      target,
      uid: m.metadata.uid,
      source: m.spec.source.node,
      phase: next.phase,
    });
  }

  /** Once it ended: nothing more runs or is accepted for it; its outcome stays for late nodes. */
  private async markEndedIfOver(m: StoredMigration, next: StoredMigration['status']): Promise<void> {
    if (TERMINAL_PHASES.includes(next.phase))
      await markEnded(
        this.opts.redis,
        this.opts.cluster,
        m.metadata.uid,
        next.phase === 'Succeeded' ? 'Succeeded' : 'Failed',
      );
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
      await this.markEndedIfOver(m, decision.status);
      await this.act(m, [{ type: 'release' }]);
    }
    return moved;
  }

  /** Writes the next status if it changed; true if the phase moved. */
  private async writeStatus(m: StoredMigration, next: StoredMigration['status']): Promise<boolean> {
    if (sameDocument(next, m.status)) return false;
    await this.markPhase(m, next);
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
