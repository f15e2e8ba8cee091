// The target end of a migration: check it can take the workload, restore it from what the source
// sent, and afterwards drop the leftovers, or on rollback remove every trace of it.
import { sessionsSettled } from './transfer/receiver.ts';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { JobOf } from '../api/v1alpha1/jobs.ts';
import { FerryError } from '../lib/errors.ts';
import { exec } from '../lib/exec.ts';
import { criuErrorLines } from './criu/criu-log.ts';
import { AFFINITY_FILE, applyAffinity, type AffinityMap } from './criu/affinity.ts';
import { checkCriu, spaceProblem } from './preflight.ts';
import type { AgentContext } from './context.ts';
import { retargetSpec, specVolumes } from './runtime/oci-spec.ts';
import { ADDRESS_ANNOTATION, announce, createNetns } from './runtime/container-net.ts';
import { startLazyDaemon, stopBackground } from './page-streams.ts';
import { alive, killRestored, restoreProcess, restoredPid, treePids } from './process-tree.ts';
import { deleteSubvolume, exists, freeBytes, snapshot } from './snapshot/btrfs.ts';
import { cgroupsPathFor, mountContainerOverlay, removeContainer, workloadImage } from './workload.ts';
import { applyRootfsDiff, DIFF_TAR } from './snapshot/overlay.ts';

/** Marks a bundle as made by one migration, so a rollback only ever removes its own container. */
const MARKER = '.ferry-migration';

async function ownedBy(ctx: AgentContext, container: string, uid: string): Promise<boolean> {
  const m = await readFile(path.join(ctx.layout.bundle(container), MARKER), 'utf8').catch(() => '');
  return m.trim() === uid;
}

/**
 * Before anything is frozen: the target can take this workload: CRIU works, the id is free, the
 * CPU offers what the source's did (`criu cpuinfo check`), and there is room for the images (on
 * the image tmpfs) and the filesystem.
 */
export async function preflightTarget(ctx: AgentContext, job: JobOf<'preflightTarget'>) {
  checkCriu(ctx);
  const node = ctx.config.node;
  const taken = (await ctx.runc.state(job.container)) || (await exists(ctx.layout.bundle(job.container)));
  if (taken && !(await ownedBy(ctx, job.container, job.migration.uid))) {
    throw new FerryError('ContainerExists', `node ${node} already has a container ${job.container}`);
  }
  const req = job.requirements;
  if (req.cpuinfo) {
    const dir = await mkdtemp(path.join(ctx.config.imagesDir, 'cpuinfo-'));
    try {
      await writeFile(path.join(dir, 'cpuinfo.img'), Buffer.from(req.cpuinfo, 'base64'), { mode: 0o600 });
      const r = await exec(ctx.config.criuPath, ['cpuinfo', 'check', '-D', dir]);
      if (r.code !== 0) {
        const why = criuErrorLines(r.stderr + r.stdout).join(' | ') || `criu cpuinfo check exited ${r.code}`;
        throw new FerryError('CpuIncompatible', `${node}'s CPU cannot run what the source's did: ${why}`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
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

export async function restore(ctx: AgentContext, job: JobOf<'restore'>) {
  const { layout, runc } = ctx;
  const uid = job.migration.uid;
  if (job.migration.pid) return restoreBareProcess(ctx, job);
  const st = await runc.state(job.container);
  if (st?.status === 'running' && (await ownedBy(ctx, job.container, uid))) {
    // A retried job whose first attempt restored the workload already.
    return { restoredAt: new Date().toISOString(), restoreMs: 0, pid: st.pid };
  }
  const received = path.join(layout.incoming(uid), path.basename(layout.snapshot(uid, 'final')));
  const diff = path.join(layout.images(uid), DIFF_TAR);
  const overlay = await exists(diff);
  if (!overlay && !(await exists(received)))
    throw new FerryError('CriuRestoreFailed', `no received filesystem for migration ${job.migration.name}`);
  const bundle = layout.bundle(job.container);
  await mkdir(bundle, { recursive: true, mode: 0o700 });
  await writeFile(path.join(bundle, MARKER), uid, { mode: 0o600 });
  if (overlay) {
    // The same image below, a fresh upper directory, and the source's changes applied through it.
    await mountContainerOverlay(ctx, job.container, await workloadImage(ctx));
    await applyRootfsDiff(layout.images(uid), layout.rootfs(job.container));
  } else await snapshot(received, layout.rootfs(job.container), { readonly: false });
  const spec = JSON.parse(await readFile(path.join(layout.images(uid), 'config.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  // Node-local volumes: a writable snapshot of each received final snapshot, in this bundle.
  for (const v of specVolumes(spec)) {
    const got = path.join(layout.incoming(uid), path.basename(layout.volumeSnapshot(uid, v.name, 'final')));
    if (!(await exists(got)))
      throw new FerryError('CriuRestoreFailed', `volume ${v.name} of ${job.container} was not received`);
    await mkdir(layout.volumes(job.container), { recursive: true, mode: 0o700 });
    await snapshot(got, layout.volume(job.container, v.name), { readonly: false });
  }
  const address = await writeRestoreSpec(ctx, job.container, spec);
  await ctx.hooks.fire('target.beforeRestore', job.migration.name, layout.images(uid));
  const started = Date.now();
  // PostCopy: the lazy-pages daemon must be listening before CRIU hands it the workload's memory.
  if (job.lazy) await startLazyDaemon(ctx, uid, job.lazy.sourceNode, job.lazy.port);
  try {
    await runc.restore(job.container, bundle, layout.checkpoint(uid), layout.work(uid), { lazy: !!job.lazy });
  } catch (err) {
    await stopBackground(ctx, uid);
    throw err;
  }
  const after = await runc.state(job.container);
  if (after?.status !== 'running') {
    throw new FerryError(
      'CriuRestoreFailed',
      `restored container is ${after?.status ?? 'absent'}, not running`,
    );
  }
  if (address) await announce(ctx, job.container, address);
  const restoredAt = new Date().toISOString();
  const restoreMs = Date.now() - started;
  // CRIU does not carry CPU affinity: set what the source recorded while frozen.
  const affinity = await readFile(path.join(layout.images(uid), AFFINITY_FILE), 'utf8').catch(() => '{}');
  const unset = await applyAffinity(await runc.pids(job.container), JSON.parse(affinity) as AffinityMap);
  if (unset.length) ctx.log.warn({ unset }, 'could not restore the CPU affinity of some tasks');
  return { restoredAt, restoreMs, pid: after.pid };
}

/**
 * Writes the bundle's config.json for restoring `spec` on this node: its cgroup, self-service
 * socket and, for a container with its own address, a namespace made here with that address (it is
 * routed here and announced only once the restore worked). Returns that address.
 */
export async function writeRestoreSpec(
  ctx: AgentContext,
  container: string,
  spec: Record<string, unknown>,
): Promise<string | undefined> {
  const address = (spec.annotations as Record<string, string> | undefined)?.[ADDRESS_ANNOTATION];
  const netns = address ? await createNetns(ctx, container, address, false) : undefined;
  const moved = retargetSpec(
    spec,
    cgroupsPathFor(ctx, container),
    await ctx.self.listen(container),
    netns ? `/run/netns/${netns}` : undefined,
    ctx.layout.volumes(container),
  );
  await writeFile(path.join(ctx.layout.bundle(container), 'config.json'), JSON.stringify(moved, null, 2), {
    mode: 0o600,
  });
  return address;
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
  const lazyMs = lazy ? Date.now() - waited : undefined;
  if (job.migration.pid) return verifyBareProcess(ctx, job.migration.uid);
  const first = await ctx.runc.state(job.container);
  await new Promise((r) => setTimeout(r, 200));
  const st = await ctx.runc.state(job.container);
  if (!first || !st || st.status !== 'running' || st.pid !== first.pid) {
    throw new FerryError(
      'CriuRestoreFailed',
      `restored container ${job.container} is ${st?.status ?? 'gone'} on ${ctx.config.node}`,
    );
  }
  return { status: st.status, pid: st.pid, ...(lazyMs !== undefined ? { lazyMs } : {}) };
}

/** What a migration's target received: subvolumes and images. */
export async function dropIncoming(ctx: AgentContext, uid: string): Promise<void> {
  await sessionsSettled(uid); // a session still aborting after a broken link would leave a folder
  const dir = ctx.layout.incoming(uid);
  const entries = await readdir(dir).catch(() => [] as string[]);
  // Children first: the final snapshot was received against the base.
  for (const e of entries.sort().reverse()) await deleteSubvolume(path.join(dir, e));
  await rm(dir, { recursive: true, force: true });
  await rm(ctx.layout.images(uid), { recursive: true, force: true });
}

/** After success: the restored workload keeps its own writable root; drop what was received. */
export async function cleanupTarget(ctx: AgentContext, job: JobOf<'cleanupTarget'>) {
  await stopBackground(ctx, job.migration.uid);
  await dropIncoming(ctx, job.migration.uid);
  if (!job.migration.pid) await rm(path.join(ctx.layout.bundle(job.container), MARKER), { force: true });
  return { cleaned: job.migration.uid };
}

/** Rollback: no half-restored copy stays behind. Only this migration's own container is touched. */
export async function rollbackTarget(ctx: AgentContext, job: JobOf<'rollbackTarget'>) {
  await stopBackground(ctx, job.migration.uid);
  if (job.migration.pid) {
    const removed = await killRestored(ctx, job.migration.uid);
    await dropIncoming(ctx, job.migration.uid);
    return { removedProcess: removed };
  }
  const removed = await ownedBy(ctx, job.container, job.migration.uid);
  if (removed) await removeContainer(ctx, job.container);
  await dropIncoming(ctx, job.migration.uid);
  return { removedContainer: removed };
}

/** A bare process tree: restored detached from the received images, with its CPU affinity. */
async function restoreBareProcess(ctx: AgentContext, job: JobOf<'restore'>) {
  const uid = job.migration.uid;
  const already = await restoredPid(ctx, uid);
  if (already && (await alive(already)))
    return { restoredAt: new Date().toISOString(), restoreMs: 0, pid: already };
  await ctx.hooks.fire('target.beforeRestore', job.migration.name, ctx.layout.images(uid));
  const started = Date.now();
  const pid = await restoreProcess(ctx, uid, `on ${ctx.config.node}`);
  const restoredAt = new Date().toISOString();
  const affinity = await readFile(path.join(ctx.layout.images(uid), AFFINITY_FILE), 'utf8').catch(() => '{}');
  await applyAffinity(await treePids(pid), JSON.parse(affinity) as AffinityMap);
  return { restoredAt, restoreMs: Date.now() - started, pid };
}

async function verifyBareProcess(ctx: AgentContext, uid: string) {
  const pid = await restoredPid(ctx, uid);
  await new Promise((r) => setTimeout(r, 200));
  if (!pid || !(await alive(pid)))
    throw new FerryError('CriuRestoreFailed', `restored process ${pid ?? '?'} is gone on ${ctx.config.node}`);
  return { status: 'running', pid };
}
