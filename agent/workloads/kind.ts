// The seam for what moves: a runc container, or a bare process tree (P.Haul's case). The source and
// target ends of a migration (migration-source.ts, migration-target.ts) run the same steps for
// every kind, and ask the kind named in the job for what differs: how it runs, freezes and dumps,
// what files go besides the images, how it is restored, verified, removed or resumed. Volumes move
// through their own seam (snapshot/volume-driver.ts). Registry: kinds.ts; adding a kind is a file
// here, its name in api/v1alpha1/jobs.ts's WorkloadKindSchema, and a line there.
import type { JobResultInput } from '../../api/v1alpha1/job-results.ts';
import type { JobOf, VolumeRef, WorkloadKindName } from '../../api/v1alpha1/jobs.ts';
import type { AgentContext } from '../context.ts';

export interface WorkloadKind {
  readonly name: WorkloadKindName;

  // The source.
  /** Preflight: it runs here; its state and every process CRIU will dump. */
  inspect(
    ctx: AgentContext,
    job: JobOf<'preflightSource'>,
  ): Promise<{ status: string; pid?: number; pids: number[] }>;
  /** Preflight: the volumes that move with it, each with its driver, or why one cannot move. */
  volumes(ctx: AgentContext, job: JobOf<'preflightSource'>): Promise<VolumeRef[]>;
  /** Before the running send: it still runs. */
  requireRunning(ctx: AgentContext, job: JobOf<'sync'>): Promise<void>;
  /**
   * Freezes and dumps it, leaving it frozen (a container) or ended (a process tree), and calls
   * `snapshotVolumes` while it is frozen. CRIU's figures, as the checkpoint result reports them.
   */
  checkpoint(
    ctx: AgentContext,
    job: JobOf<'checkpoint'>,
    snapshotVolumes: () => Promise<void>,
  ): Promise<JobResultInput<'checkpoint'>>;
  /** Before the frozen send: it is still frozen (or ended). */
  requireFrozen(ctx: AgentContext, job: JobOf<'transfer'>): Promise<void>;
  /** Files the target needs besides the images: [path here, name on the wire]. */
  extraFiles(ctx: AgentContext, job: JobOf<'transfer'>): Promise<Array<[string, string]>>;
  /** After success: the stopped source removed. */
  removeSource(ctx: AgentContext, job: JobOf<'cleanupSource'>): Promise<void>;
  /** Rollback: it runs here again, where it stopped. */
  resume(ctx: AgentContext, job: JobOf<'resumeSource'>): Promise<JobResultInput<'resumeSource'>>;

  // The target.
  /** Preflight: nothing of that name runs here that this migration did not make. */
  checkFree(ctx: AgentContext, job: JobOf<'preflightTarget'>): Promise<void>;
  /** Restores it from what arrived; `makeVolumes` puts its volumes in place first. */
  restore(
    ctx: AgentContext,
    job: JobOf<'restore'>,
    makeVolumes: () => Promise<void>,
  ): Promise<JobResultInput<'restore'>>;
  /** It is still up a moment later. */
  verify(ctx: AgentContext, job: JobOf<'verifyTarget'>): Promise<JobResultInput<'verifyTarget'>>;
  /** After success: it keeps running; only the migration's marks go. */
  settle(ctx: AgentContext, job: JobOf<'cleanupTarget'>): Promise<void>;
  /** Rollback: the copy this migration made here removed, and only that one. */
  removeTarget(ctx: AgentContext, job: JobOf<'rollbackTarget'>): Promise<JobResultInput<'rollbackTarget'>>;
}
