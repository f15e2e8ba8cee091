// The source end of a migration: check, sync the filesystem while running, freeze and dump, send
// the rest, and afterwards either remove the stopped source or resume it.
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { JobOf } from '../api/v1alpha1/jobs.ts';
import type { PreflightSourceResult, VolumeBytes } from '../api/v1alpha1/job-results.ts';
import { FerryError, errorMessage } from '../lib/errors.ts';
import { exec } from '../lib/exec.ts';
import { checkCriu, readMemoryPolicies, unsupportedFds } from './preflight.ts';
import type { AgentContext } from './context.ts';
import { AFFINITY_FILE, captureAffinity } from './criu/affinity.ts';
import { withSession } from './peers.ts';
import { chooseDriver, filesystemOf } from './snapshot/driver.ts';
import { DELETED_FILES, DIFF_TAR, writeRootfsDiff } from './snapshot/overlay.ts';
import { specVolumes } from './runtime/oci-spec.ts';
import { addressOf, lockNet, unlockNet } from './runtime/container-net.ts';
import { alive, dumpProcess, requireProcess, restoreProcess } from './process-tree.ts';
import { keepLazyServer, stopBackground } from './page-streams.ts';
import { preDumpRounds } from './precopy.ts';
import { freePort } from './transfer/tunnels.ts';
import { TYPICAL, sampleFile, worthCompressing } from './transfer/zstd.ts';
import type { TransferSession } from './transfer/sender.ts';
import { deleteSubvolume, exists, snapshot } from './snapshot/btrfs.ts';
import { dirBytes, removeContainer, upperOf } from './workload.ts';

async function requireState(ctx: AgentContext, container: string, allowed: string[]) {
  const st = await ctx.runc.state(container);
  if (!st || !allowed.includes(st.status)) {
    throw new FerryError(
      'ContainerNotFound',
      `container ${container} on ${ctx.config.node} is ${st ? st.status : 'absent'}, expected ${allowed.join(' or ')}`,
    );
  }
  return st;
}

/**
 * Before anything is frozen: the container runs, CRIU can take everything it holds, and what the
 * target must check itself against (CPU features, memory and filesystem sizes).
 */
export async function preflightSource(
  ctx: AgentContext,
  job: JobOf<'preflightSource'>,
): Promise<PreflightSourceResult> {
  await ctx.hooks.fire('source.preflight', job.migration.name, ctx.layout.images(job.migration.uid));
  checkCriu(ctx);
  const bare = job.migration.pid;
  const st = bare ? { status: 'running', pid: bare } : await requireState(ctx, job.container, ['running']);
  const pids = bare ? await requireProcess(ctx, bare) : await ctx.runc.pids(job.container);
  const problems = await unsupportedFds(pids);
  if (problems.length) {
    throw new FerryError(
      'UnsupportedWorkload',
      `${bare ? `process ${bare}` : `container ${job.container}`} holds ${problems.slice(0, 3).join('; ')}`,
    );
  }
  const memoryBytes = (await Promise.all(pids.map(residentBytes))).reduce<number>((a, b) => a + (b ?? 0), 0);
  const policies = await readMemoryPolicies(pids);
  const warnings = policies.length
    ? [
        `NUMA memory policies are not carried by CRIU and will be default on the target: ${policies.slice(0, 3).join('; ')}`,
      ]
    : [];
  if (!bare) {
    // Before anything is frozen: the root filesystem has a driver that this flow runs.
    const choice = chooseDriver({ fsType: await filesystemOf(ctx.layout.rootfs(job.container)) }, {});
    if (choice.driver !== 'btrfs' && choice.driver !== 'overlay')
      throw new FerryError(
        'UnsupportedWorkload',
        `the root filesystem of ${job.container} is ${choice.reason}; migrations move btrfs and overlay root filesystems (the dm-thin driver is not wired into the flow yet)`,
      );
  }
  // A bare process has no root filesystem of its own to carry; an overlay one moves its changes.
  const overlay = !bare && (await rootfsDriver(ctx, job.container)) === 'overlay';
  const du = bare
    ? undefined
    : await exec('du', ['-sb', overlay ? upperOf(ctx, job.container) : ctx.layout.rootfs(job.container)], {
        errorCode: 'Internal',
      });
  const volumesDu = bare ? undefined : await exec('du', ['-sb', ctx.layout.volumes(job.container)]);
  const volumesBytes = volumesDu?.code === 0 ? Number(volumesDu.stdout.split('\t')[0]) : 0;
  // The target needs room for the root filesystem and every node-local volume.
  const rootfsBytes = (du ? Number(du.stdout.split('\t')[0]) : 0) + volumesBytes;
  const dir = await mkdtemp(path.join(ctx.config.imagesDir, 'cpuinfo-'));
  try {
    await exec(ctx.config.criuPath, ['cpuinfo', 'dump', '-D', dir], { errorCode: 'CriuCheckFailed' });
    const cpuinfo = (await readFile(path.join(dir, 'cpuinfo.img'))).toString('base64');
    // The link to the target, measured the way the images will go (SSH, bandwidth limit and all).
    const linkBytesPerSecond = job.targetNode
      ? await withSession(ctx, job.targetNode, job.migration.uid, (s) => s.probe(LINK_PROBE_BYTES))
      : undefined;
    return {
      ...(linkBytesPerSecond ? { linkBytesPerSecond } : {}),
      ...(warnings.length ? { warnings } : {}),
      status: st.status,
      ...(st.pid ? { pid: st.pid } : {}),
      memoryBytes,
      rootfsBytes,
      cpuinfo,
      features: ctx.features,
      ...(ctx.lazyPagesProblem ? { lazyPagesProblem: ctx.lazyPagesProblem } : {}),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Enough to see the link's rate past the SSH handshake, little enough to cost tens of ms. */
const LINK_PROBE_BYTES = 16 * 1024 * 1024;

/** Resident memory of a process: about what CRIU will dump of it. */
async function residentBytes(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  return kb ? Number(kb) * 1024 : undefined;
}

/**
 * Whether to zstd an item: always or never when the spec says so; under Auto, when compressing a
 * sample of the file (or, for a btrfs stream, typical data) beats the measured link.
 */
async function compressItem(job: JobOf<'sync' | 'transfer'>, file?: string): Promise<boolean> {
  if (job.compression !== 'Auto') return job.compression === 'Zstd';
  if (!job.linkBytesPerSecond) return false;
  if (file && (await stat(file)).size < 1024 * 1024) return false; // not worth a process
  return worthCompressing(job.linkBytesPerSecond, file ? await sampleFile(file) : TYPICAL);
}

/** The container's node-local volumes, from its spec. */
async function volumeNames(ctx: AgentContext, container: string): Promise<string[]> {
  const file = path.join(ctx.layout.bundle(container), 'config.json');
  return specVolumes(JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>).map((v) => v.name);
}

/** Which driver moves a container's root filesystem (preflight refused any other). */
async function rootfsDriver(ctx: AgentContext, container: string): Promise<'btrfs' | 'overlay'> {
  return (await filesystemOf(ctx.layout.rootfs(container))) === 'overlayfs' ? 'overlay' : 'btrfs';
}

/**
 * Whether a first running send was long enough that a second running round pays: more than a
 * second, or more than 64 MiB, is time in which the workload may have written much that would
 * otherwise cross while it is frozen. Pure.
 */
export function anotherRound(firstBytes: number, firstMs: number): boolean {
  return firstMs > 1000 || firstBytes > 64 * 1024 * 1024;
}

/** Sends a read-only snapshot of the running workload's root filesystem in full, then maybe a second round. */
export async function sync(ctx: AgentContext, job: JobOf<'sync'>) {
  if (job.migration.pid) return { bytes: 0, durationMs: 0, files: 0, rounds: 0, volumes: [] }; // no filesystem of its own
  await requireState(ctx, job.container, ['running']);
  const { layout } = ctx;
  const uid = job.migration.uid;
  await ctx.hooks.fire('source.beforeSync', job.migration.name, layout.images(uid));
  // An overlay root's image is on every node already: its changes move frozen, as a rootfs diff.
  const overlay = (await rootfsDriver(ctx, job.container)) === 'overlay';
  const names = await volumeNames(ctx, job.container);
  const volumes: VolumeBytes[] = [];
  if (overlay) volumes.push({ name: 'rootfs', driver: 'overlay', bytes: 0 });
  if (overlay && !names.length) return { bytes: 0, durationMs: 0, files: 0, rounds: 0, volumes };
  const base = layout.snapshot(uid, 'base');
  const started = Date.now();
  let rounds = overlay ? 0 : 1;
  const bytes = await withSession(
    ctx,
    job.targetNode,
    uid,
    async (s) => {
      const cut = await ctx.hooks.take('source.duringSync', job.migration.name);
      s.injectFault(cut);
      const compress = await compressItem(job);
      if (!overlay) {
        await snapshot(layout.rootfs(job.container), base, { readonly: true });
        const t = Date.now();
        let sent = await s.sendBtrfs(base, path.basename(base), undefined, { compress });
        if (anotherRound(sent, Date.now() - t)) {
          // What the workload wrote during a long first send goes now, still running, so the
          // frozen increment only holds what it writes from here on.
          const sync2 = layout.snapshot(uid, 'sync2');
          await snapshot(layout.rootfs(job.container), sync2, { readonly: true });
          const parent = { path: base, name: path.basename(base) };
          sent += await s.sendBtrfs(sync2, path.basename(sync2), parent, { compress });
          rounds = 2;
        }
        volumes.push({ name: 'rootfs', driver: 'btrfs', bytes: sent });
      }
      // Each node-local volume: a read-only snapshot, sent in full while the workload runs.
      for (const name of names) {
        const snap = layout.volumeSnapshot(uid, name, 'base');
        await snapshot(layout.volume(job.container, name), snap, { readonly: true });
        const sent = await s.sendBtrfs(snap, path.basename(snap), undefined, { compress });
        volumes.push({ name, driver: 'btrfs', bytes: sent });
      }
      return s.bytes;
    },
    { bandwidth: job.bandwidth },
  );
  return { bytes, durationMs: Date.now() - started, files: volumes.length, rounds, volumes };
}

/**
 * Freezes the workload, dumps it with CRIU (leaving it frozen) and snapshots its final filesystem.
 * StopAndCopy streams the pages to the target's page server while CRIU dumps; PostCopy leaves
 * CRIU serving them from the frozen source (see page-streams.ts); PreCopy first runs pre-dumps.
 */
export async function checkpoint(ctx: AgentContext, job: JobOf<'checkpoint'>) {
  const { layout, runc } = ctx;
  const uid = job.migration.uid;
  await stopBackground(ctx, uid); // a retried lazy checkpoint must not leave its first CRIU behind
  const images = layout.checkpoint(uid);
  const bare = job.migration.pid;
  if (bare) {
    // The dump ends the process; a retry after that must not wipe the only copy of it.
    if (!(await alive(bare)) && (await dirBytes(images).catch(() => 0)) > 0)
      return { frozenAt: new Date().toISOString(), dumpMs: 0, imageBytes: await dirBytes(images) };
    await rm(layout.images(uid), { recursive: true, force: true });
    await mkdir(images, { recursive: true, mode: 0o700 });
    await mkdir(layout.work(uid), { recursive: true, mode: 0o700 });
    const affinityOf = await captureAffinity(await requireProcess(ctx, bare));
    await writeFile(path.join(layout.images(uid), AFFINITY_FILE), JSON.stringify(affinityOf), {
      mode: 0o600,
    });
    const frozenAt = new Date().toISOString();
    const t = Date.now();
    await dumpProcess(ctx, job, bare);
    return { frozenAt, dumpMs: Date.now() - t, imageBytes: await dirBytes(images) };
  }
  const st = await requireState(ctx, job.container, ['running', 'paused']);
  await rm(layout.images(uid), { recursive: true, force: true }); // a retry starts clean
  await mkdir(images, { recursive: true, mode: 0o700 });
  const precopy = job.mode === 'PreCopy' ? await preDumpRounds(ctx, job) : undefined;
  if (st.status === 'running') await runc.pause(job.container);
  // A container with its own address: from now on its namespace neither takes nor sends a packet,
  // and the address is no longer routed here (see runtime/container-net.ts).
  const address = await addressOf(path.join(layout.bundle(job.container), 'config.json'));
  if (address) await lockNet(ctx, job.container, address);
  const frozenAt = new Date().toISOString();
  const affinity = await captureAffinity(await runc.pids(job.container));
  await writeFile(path.join(layout.images(uid), AFFINITY_FILE), JSON.stringify(affinity), { mode: 0o600 });
  const started = Date.now();
  const extra: { streamedBytes?: number; lazyPagesPort?: number } = {};
  if (job.mode === 'PostCopy') {
    const port = await freePort();
    const server = await runc.checkpointLazy(job.container, images, layout.work(uid), port);
    keepLazyServer(ctx, uid, server, port, job.targetNode);
    extra.lazyPagesPort = port;
  } else {
    const cut = await ctx.hooks.take('source.duringTransfer', job.migration.name);
    extra.streamedBytes = await withSession(
      ctx,
      job.targetNode,
      uid,
      async (s) => {
        s.injectFault(cut);
        await s.streamDump((port) =>
          runc.checkpointLeavingStopped(job.container, images, layout.work(uid), {
            pageServerPort: port,
            ...(precopy ? { parent: precopy.parent } : {}),
          }),
        );
        return s.bytes;
      },
      { bandwidth: job.bandwidth },
    );
  }
  const dumpMs = Date.now() - started;
  // Taken while frozen, so it holds every byte the workload wrote before the freeze.
  if ((await rootfsDriver(ctx, job.container)) === 'overlay')
    await writeRootfsDiff(upperOf(ctx, job.container), layout.images(uid));
  else await snapshot(layout.rootfs(job.container), layout.snapshot(uid, 'final'), { readonly: true });
  for (const name of await volumeNames(ctx, job.container))
    await snapshot(layout.volume(job.container, name), layout.volumeSnapshot(uid, name, 'final'), {
      readonly: true,
    });
  await ctx.hooks.fire('source.afterCheckpoint', job.migration.name, layout.images(uid));
  return {
    frozenAt,
    dumpMs,
    imageBytes: (await dirBytes(images)) + (extra.streamedBytes ?? 0),
    ...extra,
    ...(precopy ? { iterations: precopy.rounds, stopReason: precopy.stopReason } : {}),
  };
}

/** Sends the images, the bundle's config and the filesystem increment to the target. */
export async function transfer(ctx: AgentContext, job: JobOf<'transfer'>) {
  const { layout } = ctx;
  // A lazy checkpoint keeps the source stopped under CRIU's ptrace, which runc reports as running.
  if (!job.migration.pid)
    await requireState(
      ctx,
      job.container,
      ctx.background.has(job.migration.uid) ? ['paused', 'running'] : ['paused'],
    );
  const uid = job.migration.uid;
  const images = layout.checkpoint(uid);
  await ctx.hooks.fire('source.beforeTransfer', job.migration.name, layout.images(uid));
  const started = Date.now();
  // The increment goes against the newest running snapshot the target has.
  const base = (await exists(layout.snapshot(uid, 'sync2')))
    ? layout.snapshot(uid, 'sync2')
    : layout.snapshot(uid, 'base');
  const final = layout.snapshot(uid, 'final');
  // The images' size is known, so progress can say how long is left (the btrfs increment is small).
  const totalBytes = await dirBytes(layout.images(uid));
  const cut = await ctx.hooks.take('source.duringTransfer', job.migration.name);
  const overlay = !job.migration.pid && (await rootfsDriver(ctx, job.container)) === 'overlay';
  const send = async (s: TransferSession) => {
    s.injectFault(cut);
    // Files are resumable: a retry after a broken link sends only what had not arrived.
    // Regular files only: a PreCopy dump's "parent" link is made on the target by its page server.
    const files = (await readdir(images, { withFileTypes: true })).filter((e) => e.isFile());
    for (const name of files.map((e) => e.name).sort()) {
      const t = Date.now();
      const file = path.join(images, name);
      const compress = await compressItem(job, file);
      const n = await s.sendFile(file, `checkpoint/${name}`, { resume: true, compress });
      ctx.log.debug({ file: name, bytes: n, ms: Date.now() - t }, 'sent');
    }
    await s.sendFile(path.join(layout.images(uid), AFFINITY_FILE), AFFINITY_FILE, { resume: true });
    if (job.migration.pid) return { bytes: s.bytes, durationMs: Date.now() - started, files: s.items };
    await s.sendFile(path.join(layout.bundle(job.container), 'config.json'), 'config.json', { resume: true });
    const volumes: VolumeBytes[] = [];
    if (overlay) {
      let diff = 0;
      for (const f of [DIFF_TAR, DELETED_FILES]) {
        const file = path.join(layout.images(uid), f);
        diff += await s.sendFile(file, f, { resume: true, compress: await compressItem(job, file) });
      }
      volumes.push({ name: 'rootfs', driver: 'overlay', bytes: diff });
    } else {
      const parent = { path: base, name: path.basename(base) };
      const bytes = await s.sendBtrfs(final, path.basename(final), parent, {
        compress: await compressItem(job),
      });
      volumes.push({ name: 'rootfs', driver: 'btrfs', bytes });
    }
    // Each node-local volume: its increment since the running send.
    for (const name of await volumeNames(ctx, job.container)) {
      const vBase = layout.volumeSnapshot(uid, name, 'base');
      const vFinal = layout.volumeSnapshot(uid, name, 'final');
      const parent = { path: vBase, name: path.basename(vBase) };
      const bytes = await s.sendBtrfs(vFinal, path.basename(vFinal), parent, {
        compress: await compressItem(job),
      });
      volumes.push({ name, driver: 'btrfs', bytes });
    }
    return {
      bytes: s.bytes,
      durationMs: Date.now() - started,
      files: s.items,
      resumedBytes: s.resumedBytes,
      volumes,
    };
  };
  return withSession(ctx, job.targetNode, uid, send, { bandwidth: job.bandwidth, totalBytes });
}

/** Marks a migration's images as kept after it ended (sourcePolicy KeepImages). */
export const KEPT = '.kept';

/** A migration's snapshots and images on its source node. */
export async function dropMigrationFiles(ctx: AgentContext, uid: string): Promise<void> {
  for (const which of ['final', 'sync2', 'base'] as const)
    await deleteSubvolume(ctx.layout.snapshot(uid, which));
  // Volume snapshots carry the uid in their names: whatever of them this migration made.
  for (const e of await readdir(ctx.layout.snapshots).catch(() => [] as string[]))
    if (e.startsWith(`${uid}-v-`)) await deleteSubvolume(path.join(ctx.layout.snapshots, e));
  await rm(ctx.layout.images(uid), { recursive: true, force: true });
}

/**
 * After the target confirmed the workload runs: remove the stopped source, and its images and
 * snapshots unless the Migration asked to keep them (sourcePolicy: KeepImages).
 */
export async function cleanupSource(ctx: AgentContext, job: JobOf<'cleanupSource'>) {
  // PostCopy: the target has every page by now (verifyTarget waited for that), so CRIU has ended
  // the source; wait for it rather than kill it.
  await ctx.hooks.fire('source.beforeCleanup', job.migration.name, ctx.layout.images(job.migration.uid));
  await ctx.background.get(job.migration.uid)?.done.catch(() => undefined);
  ctx.background.delete(job.migration.uid);
  if (!job.migration.pid) await removeContainer(ctx, job.container);
  if (!job.keepImages) await dropMigrationFiles(ctx, job.migration.uid);
  // Kept on purpose (sourcePolicy KeepImages): the start-up sweep (gc.ts) leaves these alone.
  else await writeFile(path.join(ctx.layout.images(job.migration.uid), KEPT), '', { mode: 0o600 });
  return { removed: job.container, keptImages: job.keepImages };
}

/** Rollback: the source carries on where it stopped. */
export async function resumeSource(ctx: AgentContext, job: JobOf<'resumeSource'>) {
  // PostCopy: stopping the CRIU that serves the pages hands the source back where it stopped.
  await stopBackground(ctx, job.migration.uid);
  if (job.migration.pid) return resumeProcess(ctx, job, job.migration.pid);
  const st = await ctx.runc.state(job.container);
  if (!st || (st.status !== 'paused' && st.status !== 'running')) {
    throw new FerryError(
      'SourceResumeFailed',
      `source container ${job.container} is ${st?.status ?? 'absent'} and cannot be resumed`,
    );
  }
  const address = await addressOf(path.join(ctx.layout.bundle(job.container), 'config.json'));
  if (address) await unlockNet(ctx, job.container, address);
  if (st.status === 'paused') await ctx.runc.resume(job.container);
  await dropMigrationFiles(ctx, job.migration.uid);
  return { resumed: job.container, wasFrozen: st.status === 'paused' };
}

/**
 * Rollback of a bare process: if the dump never ended it, it runs on; else it comes back here from
 * the images kept for that (the target's copy was removed first, so its PIDs are free again).
 */
async function resumeProcess(ctx: AgentContext, job: JobOf<'resumeSource'>, pid: number) {
  const uid = job.migration.uid;
  if (await alive(pid)) {
    await dropMigrationFiles(ctx, uid);
    return { resumed: `process ${pid}`, wasFrozen: false };
  }
  const restored = await restoreProcess(ctx, uid, `back on ${ctx.config.node}`).catch((err: unknown) => {
    throw new FerryError('SourceResumeFailed', errorMessage(err), { cause: err });
  });
  await dropMigrationFiles(ctx, uid);
  return { resumed: `process ${restored}`, wasFrozen: true };
}
