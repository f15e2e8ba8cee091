// Runs pod Migrations (spec.source.pod) on a Kubernetes cluster. The reconcile loop places and
// admits them (Pending -> Preflight) as any other; from there this runner drives migratePod and
// writes each phase into the Migration's status. A run lives in the leading controller's memory, so
// a Migration found mid-way with no run here (the controller restarted, or leadership moved) is
// recovered from what exists: a replacement that runs is kept and the migration completes;
// anything less is undone and the source thawed.
import { TERMINAL_PHASES, type Phase, type StoredMigration } from '../../api/v1alpha1/migration.ts';
import { FerryError, errorMessage } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { transition } from '../reconcile.ts';
import type { MigrationStore } from '../../lib/store/migration-store.ts';
import {
  finish,
  LeadershipLost,
  migratePod,
  undo,
  type PodAgents,
  type PodMigrationPlan,
  type PodStep,
  type StepInfo,
} from './pod-migration.ts';
import { checkpointImageRef, replacementPodName, runtimeContainers } from './pod-spec.ts';
import type { PodApi } from '../../lib/kube/pods.ts';
import { podRunning } from '../../lib/kube/pod-rules.ts';

const PHASE_OF: Partial<Record<PodStep, Phase>> = {
  Freezing: 'Checkpointing',
  Sending: 'Transferring',
  Importing: 'Restoring',
  Verifying: 'Verifying',
  CleaningUp: 'CleaningUp',
  RollingBack: 'RollingBack',
};

export interface PodRunnerDeps {
  store: MigrationStore;
  pods: PodApi;
  agents: (m: StoredMigration) => PodAgents;
  log: Logger;
  isLeader: () => boolean;
  /** Told of every phase written (Events, metrics). */
  onPhase?: (m: StoredMigration, next: StoredMigration['status']) => Promise<void>;
}

export const planOf = (m: StoredMigration): PodMigrationPlan => ({
  namespace: m.metadata.namespace,
  pod: m.spec.source.pod!,
  sourceNode: m.spec.source.node,
  targetNode: m.status.migrationState!.targetNode!,
  migration: { name: m.metadata.name, uid: m.metadata.uid },
});

export class PodRunner {
  private readonly runs = new Map<string, Promise<void>>();

  constructor(private readonly deps: PodRunnerDeps) {}

  /** Called on every pass for each live pod Migration past Pending. */
  reconcile(m: StoredMigration): void {
    const uid = m.metadata.uid;
    if (this.runs.has(uid) || TERMINAL_PHASES.includes(m.status.phase)) return;
    // Preflight changes nothing on any node: a run cut short there simply starts again.
    const work = m.status.phase === 'Preflight' ? this.run(m) : this.recover(m);
    this.runs.set(
      uid,
      work
        .catch((err: unknown) =>
          this.deps.log.error({ migration: m.metadata.name, err: errorMessage(err) }, 'pod run'),
        )
        .finally(() => this.runs.delete(uid)),
    );
  }

  /** Waits for every run this process holds (tests, shutdown). */
  async idle(): Promise<void> {
    await Promise.all(this.runs.values());
  }

  private async write(m: StoredMigration, next: StoredMigration['status']): Promise<StoredMigration> {
    await this.deps.store.updateStatus(m.metadata.namespace, m.metadata.name, next);
    const updated = { ...m, status: next };
    if (next.phase !== m.status.phase) await this.deps.onPhase?.(updated, next);
    return updated;
  }

  private async run(start: StoredMigration): Promise<void> {
    let m = start;
    const plan = planOf(m);
    const agents = this.deps.agents(m);
    const iso = (t?: number) => (t === undefined ? undefined : new Date(t).toISOString());
    const onStep = async (step: PodStep, info: StepInfo = {}) => {
      const phase = PHASE_OF[step] ?? m.status.phase;
      const s = m.status.migrationState!;
      const state = {
        ...s,
        sourcePod: plan.pod,
        mode: 'StopAndCopy' as const,
        modeReason: 'pods move through the kubelet checkpoint API: freeze, checkpoint, copy, restore',
        ...(info.targetPod ? { targetPod: info.targetPod } : {}),
        ...(info.frozenAt ? { frozenAt: iso(info.frozenAt) } : {}),
        ...(info.restoredAt ? { restoredAt: iso(info.restoredAt) } : {}),
        ...(info.restoredAt && s.frozenAt ? { downtimeMs: info.restoredAt - Date.parse(s.frozenAt) } : {}),
        ...(info.bytesSent !== undefined ? { bytesDuringFreeze: info.bytesSent } : {}),
      };
      const next =
        phase === m.status.phase
          ? { ...m.status, migrationState: state }
          : transition(m.status, phase, new Date().toISOString(), {
              migrationState: state,
              // The phase it failed in, then the cause (FerryError text carries its code).
              ...(info.reason ? { failureReason: `${m.status.phase}: ${info.reason}` } : {}),
            });
      m = await this.write(m, next);
    };
    const check = async () => {
      if (!this.deps.isLeader()) throw new LeadershipLost('no longer the leader');
      const now = await this.deps.store.get(m.metadata.namespace, m.metadata.name);
      if (!now || now.spec.abort || now.metadata.deletionTimestamp)
        throw new FerryError('InvalidInput', 'aborted: the Migration was aborted or deleted');
    };
    try {
      const r = await migratePod({ pods: this.deps.pods, agents, onStep, check }, plan);
      m = await this.write(
        m,
        transition(m.status, 'Succeeded', new Date().toISOString(), {
          migrationState: {
            ...m.status.migrationState!,
            downtimeMs: r.downtimeMs,
            bytesDuringFreeze: r.bytesSent,
          },
          ...(r.warnings.length ? { warnings: r.warnings } : {}),
        }),
      );
    } catch (err) {
      if (err instanceof LeadershipLost) return;
      m = await this.write(
        m,
        transition(m.status, 'Failed', new Date().toISOString(), {
          failureReason: m.status.failureReason ?? `${m.status.phase}: ${errorMessage(err)}`,
        }),
      );
    }
  }

  /** A pod Migration mid-way with no run in this process: keep a running replacement, else undo. */
  private async recover(m: StoredMigration): Promise<void> {
    const plan = planOf(m);
    const agents = this.deps.agents(m);
    const pods = this.deps.pods;
    const was = m.status.phase;
    const targetPod = m.status.migrationState?.targetPod ?? replacementPodName(plan.pod, plan.migration.uid);
    const replacement = await pods.get(plan.namespace, targetPod);
    const now = () => new Date().toISOString();
    if (was !== 'RollingBack' && podRunning(replacement).running) {
      const warnings = await finish({ pods, agents }, plan);
      await this.write(
        m,
        transition(m.status, 'Succeeded', now(), {
          warnings: [
            `the controller stopped during ${was}; the replacement pod was running, so the migration completed`,
            ...warnings,
          ],
        }),
      );
      return;
    }
    const source = await pods.get(plan.namespace, plan.pod);
    const containers = source ? runtimeContainers(source) : [];
    const images = containers.map((c) => ({
      container: c.name,
      ref: checkpointImageRef(plan.migration.uid, c.name),
      file: `pod-images/${c.name}.tar`,
      bytes: 0,
    }));
    const rolling =
      was === 'RollingBack' ? m : await this.write(m, transition(m.status, 'RollingBack', now()));
    const problems = await undo({ pods, agents }, plan, {
      containers,
      images,
      created: true,
      targetPod,
      frozen: containers.length > 0,
    });
    const why =
      m.status.failureReason ??
      `the controller stopped during ${was}; what it had made was undone and the source pod thawed`;
    await this.write(
      rolling,
      transition(rolling.status, 'Failed', now(), {
        failureReason: problems.length ? `${why} (rollback: ${problems.join('; ')})` : why,
      }),
    );
  }
}
