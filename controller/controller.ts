// The controller loop: observe each live Migration's jobs and nodes, let decide() choose, then
// enqueue and write status. All state is in the store and the bus, so a restarted controller
// carries on where the last one stopped; deterministic job ids make repeated steps no-ops.
import type { Redis } from 'ioredis';
import type { RedisConfig } from '../api/v1alpha1/cluster.ts';
import { TERMINAL_PHASES, type StoredMigration } from '../api/v1alpha1/migration.ts';
import type { Logger } from '../lib/logger.ts';
import { Bus } from './bus.ts';
import { readyNodes } from './nodes.ts';
import { decide, jobIdFor, PHASE_STEPS, type Facts, type JobFact, type StepName } from './reconcile.ts';
import type { MigrationStore } from './store/migration-store.ts';

export interface ControllerOptions {
  cluster: string;
  redis: Redis;
  redisConfig: RedisConfig;
  store: MigrationStore;
  log: Logger;
  /** Longest wait between passes when nothing wakes the loop. */
  resyncMs?: number;
}

export class Controller {
  private readonly bus: Bus;
  private stopped = false;
  private wake: (() => void) | undefined;
  private readonly watched = new Set<string>();

  constructor(private readonly opts: ControllerOptions) {
    this.bus = new Bus(opts.redis, opts.redisConfig, opts.cluster);
  }

  /** Ends the current wait early: something changed. */
  poke = (): void => this.wake?.();

  private watchNode(node: string): void {
    if (this.watched.has(node)) return;
    this.watched.add(node);
    const ev = this.bus.queueEvents(node);
    ev.on('completed', this.poke);
    ev.on('failed', this.poke);
  }

  async observe(m: StoredMigration, nodes: ReadonlySet<string>): Promise<Facts> {
    const jobs: Partial<Record<StepName, JobFact>> = {};
    for (const [step, side] of PHASE_STEPS[m.status.phase] ?? []) {
      const node = side === 'source' ? m.spec.source.node : m.spec.target.node;
      const fact = await this.bus.fact(node, jobIdFor(m.metadata.uid, step));
      if (fact) jobs[step] = fact;
    }
    return { now: new Date().toISOString(), nodes, jobs };
  }

  /** One pass over every live Migration. Returns how many changed phase. */
  async reconcileAll(): Promise<number> {
    const nodes = await readyNodes(this.opts.redis, this.opts.cluster);
    for (const n of nodes.keys()) this.watchNode(n);
    let changed = 0;
    for (const m of await this.opts.store.list()) {
      if (TERMINAL_PHASES.includes(m.status.phase)) continue;
      const log = this.opts.log.child({ migration: m.metadata.name, phase: m.status.phase });
      const decision = decide(m, await this.observe(m, new Set(nodes.keys())));
      for (const a of decision.actions) {
        log.info({ step: a.step, node: a.node }, 'enqueue');
        await this.bus.enqueue(a.node, a.jobId, a.job);
      }
      if (JSON.stringify(decision.status) !== JSON.stringify(m.status)) {
        if (decision.status.phase !== m.status.phase) {
          changed++;
          log.info({ next: decision.status.phase, reason: decision.status.failureReason }, 'phase change');
        }
        await this.opts.store.updateStatus(m.metadata.namespace, m.metadata.name, decision.status);
      }
    }
    return changed;
  }

  async run(): Promise<void> {
    const resync = this.opts.resyncMs ?? 1000;
    while (!this.stopped) {
      let changed = 0;
      try {
        changed = await this.reconcileAll();
      } catch (err) {
        this.opts.log.error(
          { err: err instanceof Error ? err.message : String(err) },
          'reconcile pass failed',
        );
      }
      // A phase change usually means new jobs to enqueue: go again at once.
      if (changed || this.stopped) continue;
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
