// A bare process tree (spec.source.pid), moved the way P.Haul moved one: no container, no PID
// namespace, no volumes. Its PIDs are the kernel's own, so the dump ends it (freeing them for the
// restore) and its images stay on the source, from which a rollback restores it there.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { FerryError, errorMessage } from '../../lib/errors.ts';
import { dirBytes } from '../../lib/space.ts';
import { AFFINITY_FILE, applyAffinity, captureAffinity, type AffinityMap } from '../criu/affinity.ts';
import {
  alive,
  dumpProcess,
  killRestored,
  requireProcess,
  restoreProcess,
  restoredPid,
  treePids,
  treePidsOf,
  TREE_PIDS_FILE,
  waitForFreePids,
} from '../process-tree.ts';
import { namespaceTcp, socketInodes, socketProblems } from '../process-sockets.ts';
import type { WorkloadKind } from './kind.ts';

/** How long a resume waits for the tree's PIDs before it says why not (the watchdog retries). */
const RESUME_PID_WAIT_MS = 10_000;

const rootOf = (job: { migration: { pid?: number | undefined } }): number => {
  if (!job.migration.pid) throw new FerryError('InvalidInput', 'a process-tree job names no PID');
  return job.migration.pid;
};

export const processTreeKind: WorkloadKind = {
  name: 'process',

  async inspect(ctx, job) {
    const pid = rootOf(job);
    const pids = await requireProcess(ctx, pid);
    // Its sockets move, their addresses do not: found now, not by a failed restore.
    const problems = socketProblems(await socketInodes(pids), await namespaceTcp(pid), ctx.config.node);
    if (problems.length)
      throw new FerryError(
        'UnsupportedWorkload',
        `process ${pid} cannot move: ${problems.slice(0, 3).join('; ')}`,
      );
    return { status: 'running', pid, pids };
  },

  volumes: async () => [], // no filesystem of its own

  requireRunning: async () => undefined,

  async checkpoint(ctx, job) {
    const { layout } = ctx;
    const uid = job.migration.uid;
    const pid = rootOf(job);
    const images = layout.checkpoint(uid);
    // The dump ends the process; a retry after that must not wipe the only copy of it.
    if (!(await alive(pid)) && (await dirBytes(images).catch(() => 0)) > 0)
      return { frozenAt: new Date().toISOString(), dumpMs: 0, imageBytes: await dirBytes(images) };
    await rm(layout.images(uid), { recursive: true, force: true });
    await mkdir(images, { recursive: true, mode: 0o700 });
    await mkdir(layout.work(uid), { recursive: true, mode: 0o700 });
    const pids = await requireProcess(ctx, pid);
    const affinity = await captureAffinity(pids);
    await writeFile(path.join(layout.images(uid), AFFINITY_FILE), JSON.stringify(affinity), { mode: 0o600 });
    await writeFile(path.join(layout.images(uid), TREE_PIDS_FILE), JSON.stringify(pids), { mode: 0o600 });
    const frozenAt = new Date().toISOString();
    const t = Date.now();
    await dumpProcess(ctx, job, pid);
    return { frozenAt, dumpMs: Date.now() - t, imageBytes: await dirBytes(images) };
  },

  requireFrozen: async () => undefined,

  extraFiles: async (ctx, job) => [
    [path.join(ctx.layout.images(job.migration.uid), TREE_PIDS_FILE), TREE_PIDS_FILE],
  ],

  removeSource: async () => undefined, // the dump ended it

  async resume(ctx, job) {
    // If the dump never ended it, it runs on; else it comes back here from the images kept for that
    // (the target's copy was removed first, so its PIDs are free again).
    const pid = rootOf(job);
    const uid = job.migration.uid;
    if (await alive(pid)) return { resumed: `process ${pid}`, wasFrozen: false };
    // Its PIDs may still be held (a zombie of it its parent has not reaped yet): wait, bounded, and
    // if they stay taken say where the image is and how to restore it; the agent keeps trying.
    const held = await waitForFreePids(await treePidsOf(ctx, uid), RESUME_PID_WAIT_MS);
    if (held.length)
      throw new FerryError(
        'SourceResumeFailed',
        `the process tree of ${job.migration.name} cannot run on ${ctx.config.node} yet: its PIDs are taken: ${held.slice(0, 3).join('; ')}. Its image is kept at ${ctx.layout.checkpoint(uid)}; ${ctx.config.node}'s agent tries again every few seconds until they are free, or restore it by hand: criu restore -D ${ctx.layout.checkpoint(uid)} -d --file-locks --tcp-established`,
      );
    const restored = await restoreProcess(ctx, uid, `back on ${ctx.config.node}`).catch((err: unknown) => {
      throw new FerryError('SourceResumeFailed', errorMessage(err), { cause: err });
    });
    return { resumed: `process ${restored}`, wasFrozen: true, resumedAt: new Date().toISOString() };
  },

  checkFree: async () => undefined,

  async restore(ctx, job) {
    const uid = job.migration.uid;
    const already = await restoredPid(ctx, uid);
    if (already && (await alive(already)))
      return { restoredAt: new Date().toISOString(), restoreMs: 0, pid: already };
    await ctx.hooks.fire('target.beforeRestore', job.migration.name, ctx.layout.images(uid));
    const started = Date.now();
    // The source's dump ended the tree, but a PID stays taken until the parent reaps it: wait for
    // them (bounded by the step's deadline) rather than fail on CRIU's `File exists`.
    const waitMs = job.deadlineMs ? job.deadlineMs / 2 : RESUME_PID_WAIT_MS;
    const held = await waitForFreePids(await treePidsOf(ctx, uid), waitMs);
    if (held.length)
      throw new FerryError(
        'PidsInUse',
        `the process tree cannot be restored on ${ctx.config.node}: after ${Math.round(waitMs / 1000)}s its PIDs are still taken: ${held.slice(0, 3).join('; ')}`,
      );
    const pid = await restoreProcess(ctx, uid, `on ${ctx.config.node}`);
    const restoredAt = new Date().toISOString();
    const affinity = await readFile(path.join(ctx.layout.images(uid), AFFINITY_FILE), 'utf8').catch(
      () => '{}',
    );
    await applyAffinity(await treePids(pid), JSON.parse(affinity) as AffinityMap);
    return { restoredAt, restoreMs: Date.now() - started, pid };
  },

  async verify(ctx, job) {
    const pid = await restoredPid(ctx, job.migration.uid);
    await new Promise((r) => setTimeout(r, 200));
    if (!pid || !(await alive(pid)))
      throw new FerryError(
        'CriuRestoreFailed',
        `restored process ${pid ?? '?'} is gone on ${ctx.config.node}`,
      );
    return { status: 'running', pid };
  },

  settle: async () => undefined,

  async removeTarget(ctx, job) {
    return { removedProcess: await killRestored(ctx, job.migration.uid) };
  },
};
