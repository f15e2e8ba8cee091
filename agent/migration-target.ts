// The target end of a migration: check it can take the workload, restore it from what the source
// sent, and afterwards drop the leftovers, or on rollback remove every trace of it. The same steps
// for every workload kind (workloads/) and volume driver (snapshot/drivers.ts); the job names both.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { JobOf } from '../api/v1alpha1/jobs.ts';
import { FerryError } from '../lib/errors.ts';
import { exec } from '../lib/exec.ts';
import type { AgentContext } from './context.ts';
import { checkGpuTarget } from './gpu/gpu-node.ts';
import { criuErrorLines } from './criu/criu-log.ts';
import { stopBackground } from './page-streams.ts';
import { checkCriu, spaceProblem } from './preflight.ts';
import { freeBytes } from './snapshot/btrfs.ts';
import { volumeDriver } from './snapshot/drivers.ts';
import { dropMigrationFiles } from './migration-files.ts';
import { sessionsSettled } from './transfer/receiver.ts';
import { workloadKind } from './workloads/kinds.ts';
import { notExpected, recheck } from './fencing/recheck.ts';
import { dropRecord, readRecord, writeRecord } from './fencing/records.ts';

/** `criu cpuinfo check` against the source's CPU description. */
async function checkCpu(ctx: AgentContext, cpuinfo: string): Promise<void> {
  const dir = await mkdtemp(path.join(ctx.config.imagesDir, 'cpuinfo-'));
  try {
    await writeFile(path.join(dir, 'cpuinfo.img'), Buffer.from(cpuinfo, 'base64'), { mode: 0o600 });
    const r = await exec(ctx.config.criuPath, ['cpuinfo', 'check', '-D', dir]);
    if (r.code !== 0) {
      const why = criuErrorLines(r.stderr + r.stdout).join(' | ') || `criu cpuinfo check exited ${r.code}`;
      throw new FerryError(
        'CpuIncompatible',
        `${ctx.config.node}'s CPU cannot run what the source's did: ${why}`,
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Before anything is frozen: the target can take this workload: CRIU works, the name is free, the
 * CPU offers what the source's did (`criu cpuinfo check`), and there is room for the images (on
 * the image tmpfs) and the volumes.
 */
export async function preflightTarget(ctx: AgentContext, job: JobOf<'preflightTarget'>) {
  checkCriu(ctx);
  const node = ctx.config.node;
  await workloadKind(job).checkFree(ctx, job);
  const req = job.requirements;
  if (req.cpuinfo) await checkCpu(ctx, req.cpuinfo);
  if (req.gpu) await checkGpuTarget(ctx, req.gpu);
  const [imagesFree, fsFree] = await Promise.all([
    freeBytes(ctx.config.imagesDir),
    freeBytes(ctx.config.fsRoot),
  ]);
  const problem =
    spaceProblem(`images on ${node}`, imagesFree, req.memoryBytes ?? 0) ??
    spaceProblem(`filesystem on ${node}`, fsFree, req.rootfsBytes ?? 0);
  if (problem) throw problem;
  return { imagesFreeBytes: imagesFree, fsFreeBytes: fsFree };
}

/** Restores the workload: every volume from what its driver received, then the workload itself. */
export async function restore(ctx: AgentContext, job: JobOf<'restore'>) {
  const uid = job.migration.uid;
  const at = (name: string) => ({ name, container: job.container, uid });
  const record = (state: 'restoring' | 'restored') => ({
    role: 'target' as const,
    state,
    migration: job.migration,
    container: job.container,
    volumes: job.volumes,
  });
  const kind = workloadKind(job);
  const makeVolumes = async () => {
    // Nothing is made for a migration that moved on while this job waited.
    const why = await notExpected(ctx, uid, 'Restoring');
    if (why) throw new FerryError('Fenced', `restore on ${ctx.config.node} not started: ${why}`);
    // Checked before anything is made: a volume that did not arrive fails the step, nothing half-made.
    for (const v of job.volumes)
      if (!(await volumeDriver(v.driver).received(ctx, at(v.name))))
        throw new FerryError(
          'CriuRestoreFailed',
          `${v.name === 'rootfs' ? 'no received filesystem' : `volume ${v.name} of ${job.container} was not received`} for migration ${job.migration.name}`,
        );
    for (const v of job.volumes) await volumeDriver(v.driver).restore(ctx, at(v.name));
  };
  const before = await readRecord(ctx, uid);
  if (before?.state !== 'restored') await writeRecord(ctx, record('restoring'));
  const restored = await kind.restore(ctx, job, makeVolumes);
  // A retry that found the copy already running: it has run since the first attempt.
  const result =
    before?.restoredAt && restored.restoreMs === 0
      ? { ...restored, restoredAt: before.restoredAt }
      : restored;
  // Restored while this agent may have been paused past its lease, or the migration rolled back
  // around it: the copy goes before anyone counts on it.
  await recheck(ctx, job, 'Restoring', async () => {
    await removeCopy(ctx, { ...job, kind: 'rollbackTarget' });
    return 'the restored copy was removed';
  });
  await writeRecord(ctx, { ...record('restored'), restoredAt: result.restoredAt });
  return result;
}

/** The restored workload is still up a moment later: CRIU restored it whole and it did not crash. */
export async function verifyTarget(ctx: AgentContext, job: JobOf<'verifyTarget'>) {
  await ctx.hooks.fire('target.beforeVerify', job.migration.name, ctx.layout.images(job.migration.uid));
  // PostCopy: not verified until every page has arrived; the daemon exits 0 once it has them all.
  const lazy = ctx.background.get(job.migration.uid);
  const waited = Date.now();
  if (lazy) {
    await lazy.done;
    ctx.background.delete(job.migration.uid);
  }
  const result = await workloadKind(job).verify(ctx, job);
  return { ...result, ...(lazy ? { lazyMs: Date.now() - waited } : {}) };
}

/** What a migration's target received, once no session is still writing it. */
async function dropIncoming(ctx: AgentContext, uid: string): Promise<void> {
  await sessionsSettled(uid); // a session still aborting after a broken link would leave a folder
  await dropMigrationFiles(ctx, uid);
}

/** After success: the restored workload keeps its own volumes; drop what was received. */
export async function cleanupTarget(ctx: AgentContext, job: JobOf<'cleanupTarget'>) {
  await stopBackground(ctx, job.migration.uid);
  await dropIncoming(ctx, job.migration.uid);
  await workloadKind(job).settle(ctx, job);
  await dropRecord(ctx, job.migration.uid);
  return { cleaned: job.migration.uid };
}

/** Rollback: no half-restored copy stays behind. Only this migration's own copy is touched. */
export const rollbackTarget = (ctx: AgentContext, job: JobOf<'rollbackTarget'>) => removeCopy(ctx, job);

/**
 * The copy this migration made here goes, with what was received and the node's record: the
 * rollback, a restore's undo after its re-check, and the watchdog settling a dead migration.
 */
export async function removeCopy(ctx: AgentContext, job: JobOf<'rollbackTarget'>) {
  await stopBackground(ctx, job.migration.uid);
  const removed = await workloadKind(job).removeTarget(ctx, job);
  await dropIncoming(ctx, job.migration.uid);
  await dropRecord(ctx, job.migration.uid);
  return removed;
}
