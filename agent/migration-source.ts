// The source end of a migration: check, sync the volumes while the workload runs, freeze and dump,
// send the rest, and afterwards either remove the stopped source or resume it. The same steps for
// every workload kind (workloads/) and volume driver (snapshot/drivers.ts); the job names both.
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { JobResultInput, PreflightSourceResult, VolumeBytes } from '../api/v1alpha1/job-results.ts';
import type { JobOf, VolumeRef } from '../api/v1alpha1/jobs.ts';
import { FerryError } from '../lib/errors.ts';
import { exec } from '../lib/exec.ts';
import { dirBytes } from '../lib/space.ts';
import type { AgentContext } from './context.ts';
import { describeGpuUse } from './gpu/gpu-node.ts';
import { gpuDevicesHeld } from './gpu/gpu-rules.ts';
import { AFFINITY_FILE } from './criu/affinity.ts';
import { stopBackground } from './page-streams.ts';
import { withSession } from './peers.ts';
import { checkCriu, dumpableTotal, openFds, readMemoryPolicies, unsupportedFds } from './preflight.ts';
import { allVolumeDrivers, volumeDriver } from './snapshot/drivers.ts';
import { dropMigrationFiles, KEPT } from './migration-files.ts';
import type { Outbound, VolumeAt } from './snapshot/volume-driver.ts';
import type { TransferSession } from './transfer/sender.ts';
import { TYPICAL, sampleFile, worthCompressing } from './transfer/zstd.ts';
import { workloadKind } from './workloads/kinds.ts';
import { recheck } from './fencing/recheck.ts';
import { dropRecord, readRecord, writeRecord } from './fencing/records.ts';

const sourceRecord = (job: JobOf<'checkpoint' | 'transfer'>, state: 'frozen' | 'handedOver') => ({
  role: 'source' as const,
  state,
  peer: job.targetNode,
  migration: job.migration,
  container: job.container,
  volumes: job.volumes,
});

/** Enough to see the link's rate past the SSH handshake, little enough to cost tens of ms. */
const LINK_PROBE_BYTES = 16 * 1024 * 1024;

const at = (job: { container: string; migration: { uid: string } }, v: VolumeRef): VolumeAt => ({
  name: v.name,
  container: job.container,
  uid: job.migration.uid,
});

/** CRIU's description of this node's CPU, for the target's `criu cpuinfo check`. */
async function cpuinfoDump(ctx: AgentContext): Promise<string> {
  const dir = await mkdtemp(path.join(ctx.config.imagesDir, 'cpuinfo-'));
  try {
    await exec(ctx.config.criuPath, ['cpuinfo', 'dump', '-D', dir], { errorCode: 'CriuCheckFailed' });
    return (await readFile(path.join(dir, 'cpuinfo.img'))).toString('base64');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Before anything is frozen: the workload runs, CRIU can take everything it holds, each volume has
 * a driver, and what the target must check itself against (CPU features, memory and volume sizes).
 */
export async function preflightSource(
  ctx: AgentContext,
  job: JobOf<'preflightSource'>,
): Promise<PreflightSourceResult> {
  await ctx.hooks.fire('source.preflight', job.migration.name, ctx.layout.images(job.migration.uid));
  checkCriu(ctx);
  const kind = workloadKind(job);
  const st = await kind.inspect(ctx, job);
  const fds = await openFds(st.pids);
  const problems = unsupportedFds(fds);
  if (problems.length) {
    const what = kind.name === 'process' ? `process ${st.pid}` : `container ${job.container}`;
    throw new FerryError('UnsupportedWorkload', `${what} holds ${problems.slice(0, 3).join('; ')}`);
  }
  // A GPU workload: its CUDA state moves through the driver, in a container only (its spec names
  // the device nodes the target makes); the target checks itself against what is found here.
  const gpuDevices = gpuDevicesHeld(fds.map((f) => f.target));
  if (gpuDevices.length && kind.name !== 'container')
    throw new FerryError(
      'UnsupportedWorkload',
      `process ${st.pid} holds ${gpuDevices.join(', ')}: GPU workloads move as containers (their spec names the GPU nodes)`,
    );
  const gpu = gpuDevices.length ? await describeGpuUse(ctx, st.pids, gpuDevices) : undefined;
  const memoryBytes = await dumpableTotal(st.pids);
  const policies = await readMemoryPolicies(st.pids);
  const warnings = policies.length
    ? [
        `NUMA memory policies are not carried by CRIU and will be default on the target: ${policies.slice(0, 3).join('; ')}`,
      ]
    : [];
  const volumes = await kind.volumes(ctx, job);
  // The target needs room for the root filesystem and every node-local volume.
  let rootfsBytes = 0;
  for (const v of volumes) rootfsBytes += await volumeDriver(v.driver).spaceEstimate(ctx, at(job, v));
  const cpuinfo = await cpuinfoDump(ctx);
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
    volumes,
    cpuinfo,
    features: ctx.features,
    ...(ctx.lazyPagesProblem ? { lazyPagesProblem: ctx.lazyPagesProblem } : {}),
    ...(gpu ? { gpu } : {}),
  };
}

/**
 * Whether to zstd an item: always or never when the spec says so; under Auto, when compressing a
 * sample of the file (or, for a stream, typical data) beats the measured link.
 */
function compressor(job: JobOf<'sync' | 'transfer'>) {
  return async (file?: string): Promise<boolean> => {
    if (job.compression !== 'Auto') return job.compression === 'Zstd';
    if (!job.linkBytesPerSecond) return false;
    if (file && (await stat(file)).size < 1024 * 1024) return false; // not worth a process
    return worthCompressing(job.linkBytesPerSecond, file ? await sampleFile(file) : TYPICAL);
  };
}

/** While the workload runs: each volume's driver sends what it can (a full snapshot, maybe two). */
export async function sync(ctx: AgentContext, job: JobOf<'sync'>) {
  await workloadKind(job).requireRunning(ctx, job);
  const uid = job.migration.uid;
  await ctx.hooks.fire('source.beforeSync', job.migration.name, ctx.layout.images(uid));
  const volumes: VolumeBytes[] = job.volumes.map((v) => ({ ...v, bytes: 0 }));
  const sending = job.volumes.filter((v) => volumeDriver(v.driver).sendsWhileRunning);
  // A driver that sends nothing early (an overlay root: its image is on every node) opens no session.
  if (!sending.length) return { bytes: 0, durationMs: 0, files: 0, rounds: 0, volumes };
  const started = Date.now();
  let rounds = 0;
  const bytes = await withSession(
    ctx,
    job.targetNode,
    uid,
    async (session) => {
      session.injectFault(await ctx.hooks.take('source.duringSync', job.migration.name));
      const out: Outbound = { session, compress: compressor(job) };
      for (const v of sending) {
        const sent = await volumeDriver(v.driver).sendRunning(ctx, at(job, v), out);
        volumes.find((x) => x.name === v.name)!.bytes = sent.bytes;
        if (v.name === 'rootfs') rounds = sent.rounds;
      }
      return session.bytes;
    },
    { bandwidth: job.bandwidth },
  );
  return { bytes, durationMs: Date.now() - started, files: sending.length, rounds, volumes };
}

/**
 * Freezes the workload, dumps it with CRIU (leaving it frozen, or ended for a process tree) and
 * has each volume's driver capture its final state while frozen.
 */
export async function checkpoint(ctx: AgentContext, job: JobOf<'checkpoint'>) {
  const uid = job.migration.uid;
  await stopBackground(ctx, uid); // a retried lazy checkpoint must not leave its first CRIU behind
  const snapshotVolumes = async () => {
    for (const v of job.volumes) await volumeDriver(v.driver).snapshotFrozen(ctx, at(job, v));
  };
  const kind = workloadKind(job);
  // Recorded on the node before the freeze: whatever becomes of the control plane, this agent
  // knows it froze the workload and thaws it once the migration is dead (fencing/settle.ts).
  const earlier = (await readRecord(ctx, uid))?.frozenAt;
  await writeRecord(ctx, { ...sourceRecord(job, 'frozen'), ...(earlier ? { frozenAt: earlier } : {}) });
  const dumped = await kind.checkpoint(ctx, job, snapshotVolumes);
  // A retried dump found the source still frozen from the first attempt: the freeze began then.
  const frozenAt = earlier && earlier < dumped.frozenAt ? earlier : dumped.frozenAt;
  const result = { ...dumped, frozenAt };
  await writeRecord(ctx, { ...sourceRecord(job, 'frozen'), frozenAt });
  await ctx.hooks.fire('source.afterCheckpoint', job.migration.name, ctx.layout.images(uid));
  await recheck(ctx, job, 'Checkpointing', async () => {
    const r = await thawSource(ctx, { ...job, kind: 'resumeSource' });
    return r.wasFrozen ? 'the source was thawed' : 'the source runs';
  });
  return result;
}

/** Sends the images, the files the workload kind needs, and each volume's frozen increment. */
export async function transfer(ctx: AgentContext, job: JobOf<'transfer'>) {
  const { layout } = ctx;
  const kind = workloadKind(job);
  await kind.requireFrozen(ctx, job);
  const uid = job.migration.uid;
  const images = layout.checkpoint(uid);
  await ctx.hooks.fire('source.beforeTransfer', job.migration.name, layout.images(uid));
  const started = Date.now();
  // The images' size is known, so progress can say how long is left (the increments are small).
  const totalBytes = await dirBytes(layout.images(uid));
  const cut = await ctx.hooks.take('source.duringTransfer', job.migration.name);
  const send = async (session: TransferSession) => {
    session.injectFault(cut);
    const out: Outbound = { session, compress: compressor(job) };
    // Files are resumable: a retry after a broken link sends only what had not arrived.
    // Regular files only: a PreCopy dump's "parent" link is made on the target by its page server.
    const files = (await readdir(images, { withFileTypes: true })).filter((e) => e.isFile());
    for (const name of files.map((e) => e.name).sort()) {
      const t = Date.now();
      const file = path.join(images, name);
      const n = await session.sendFile(file, `checkpoint/${name}`, {
        resume: true,
        compress: await out.compress(file),
      });
      ctx.log.debug({ file: name, bytes: n, ms: Date.now() - t }, 'sent');
    }
    await session.sendFile(path.join(layout.images(uid), AFFINITY_FILE), AFFINITY_FILE, { resume: true });
    for (const [file, name] of await kind.extraFiles(ctx, job))
      await session.sendFile(file, name, { resume: true });
    const volumes: VolumeBytes[] = [];
    for (const v of job.volumes)
      volumes.push({ ...v, bytes: await volumeDriver(v.driver).sendFrozen(ctx, at(job, v), out) });
    return {
      bytes: session.bytes,
      durationMs: Date.now() - started,
      files: session.items,
      resumedBytes: session.resumedBytes,
      volumes,
    };
  };
  const result = await withSession(ctx, job.targetNode, uid, send, { bandwidth: job.bandwidth, totalBytes });
  // Still expected to hand over? Else the frozen source waits for its resume (rollback, or the
  // watchdog once the migration is dead): nothing to undo here.
  await recheck(ctx, job, 'Transferring', async () => 'the source stays frozen until it is resumed');
  // The hand-over: from here the target may restore, so the source resumes only on the target's
  // word or its fence (resumeSource's release).
  const frozenAt = (await readRecord(ctx, uid))?.frozenAt;
  await writeRecord(ctx, { ...sourceRecord(job, 'handedOver'), ...(frozenAt ? { frozenAt } : {}) });
  return result;
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
  await workloadKind(job).removeSource(ctx, job);
  await dropRecord(ctx, job.migration.uid);
  if (!job.keepImages) await dropMigrationFiles(ctx, job.migration.uid);
  // Kept on purpose (sourcePolicy KeepImages): the start-up sweep (gc.ts) leaves these alone.
  else await writeFile(path.join(ctx.layout.images(job.migration.uid), KEPT), '', { mode: 0o600 });
  return { removed: job.container, keptImages: job.keepImages };
}

/** Rollback: the source carries on where it stopped. */
export async function resumeSource(ctx: AgentContext, job: JobOf<'resumeSource'>) {
  const uid = job.migration.uid;
  const record = await readRecord(ctx, uid);
  // Handed over, the target may run the workload: the source's own guard, whatever the caller.
  if (record?.state === 'handedOver' && !job.release)
    throw new FerryError(
      'WorkloadHandedOver',
      `the source of ${job.migration.name} was handed over to ${record.peer}; it resumes only once ${record.peer} removed its copy or is fenced`,
    );
  return thawSource(ctx, job);
}

/**
 * The source runs here again, and the migration's files and record go: the rollback's resume, a
 * dump's undo after its re-check, and the watchdog settling a dead migration all end this way.
 */
export async function thawSource(
  ctx: AgentContext,
  job: JobOf<'resumeSource'>,
): Promise<JobResultInput<'resumeSource'>> {
  const uid = job.migration.uid;
  // PostCopy: stopping the CRIU that serves the pages hands the source back where it stopped.
  await stopBackground(ctx, uid);
  const kind = workloadKind(job);
  const resumed = await kind.resume(ctx, job).catch(async (err: unknown) => {
    // A container that cannot resume keeps no snapshot (its filesystem is its own, in place); its
    // images stay with the node's record, the one copy of its memory. A process tree needs both.
    if (kind.name === 'container')
      for (const d of allVolumeDrivers()) await d.cleanup(ctx, uid).catch(() => undefined);
    throw err;
  });
  await dropMigrationFiles(ctx, uid);
  await dropRecord(ctx, uid);
  return resumed;
}
