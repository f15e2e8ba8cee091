// A runc container: its root filesystem and node-local volumes move through their drivers, its
// memory through CRIU (streamed to the target's page server, served lazily for PostCopy, or after
// pre-dump rounds for PreCopy), its address with it (runtime/container-net.ts). Frozen with
// `runc pause` and left frozen by the dump, so the source can resume until the target runs.
import { copyFile, mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { JobOf, VolumeRef } from '../../api/v1alpha1/jobs.ts';
import { FerryError } from '../../lib/errors.ts';
import { dirBytes } from '../../lib/space.ts';
import type { AgentContext } from '../context.ts';
import { AFFINITY_FILE, applyAffinity, captureAffinity, type AffinityMap } from '../criu/affinity.ts';
import { keepLazyServer, startLazyDaemon, stopBackground } from '../page-streams.ts';
import { withSession } from '../peers.ts';
import { dumpableTotal } from '../preflight.ts';
import { preDumpRounds } from '../precopy.ts';
import {
  addressOf,
  announce,
  createLoopbackNetns,
  createNetns,
  lockNet,
  planRestoredNetns,
  unlockNet,
} from '../runtime/container-net.ts';
import { writeEngineFiles } from '../runtime/engine-files.ts';
import { makeTraversable, shareImages } from '../runtime/userns.ts';
import { cgroupsPathFor, removeContainer } from '../runtime/containers.ts';
import { buildOciSpec, specVolumes } from '../runtime/oci-spec.ts';
import { specFacts, type SpecFacts } from '../runtime/restore-spec.ts';
import { checkpointContainerGpu, gpuDevice, isGpuContainer } from '../gpu/gpu-node.ts';
import { resumeGpu } from '../gpu/cuda-moves.ts';
import { exists } from '../snapshot/btrfs.ts';
import { isThinVolume } from '../snapshot/dm-thin-driver.ts';
import { chooseDriver } from '../snapshot/drivers.ts';
import { filesystemOf } from '../snapshot/fs-type.ts';
import { freePort } from '../transfer/tunnels.ts';
import type { WorkloadKind } from './kind.ts';

/** Marks a bundle as made by one migration, so a rollback only ever removes its own container. */
const MARKER = '.ferry-migration';

async function ownedBy(ctx: AgentContext, container: string, uid: string): Promise<boolean> {
  const m = await readFile(path.join(ctx.layout.bundle(container), MARKER), 'utf8').catch(() => '');
  return m.trim() === uid;
}

export async function requireState(ctx: AgentContext, container: string, allowed: string[]) {
  const st = await ctx.runc.state(container);
  if (!st || !allowed.includes(st.status)) {
    throw new FerryError(
      'ContainerNotFound',
      `container ${container} on ${ctx.config.node} is ${st ? st.status : 'absent'}, expected ${allowed.join(' or ')}`,
    );
  }
  return st;
}

const specFile = (ctx: AgentContext, container: string) =>
  path.join(ctx.layout.bundle(container), 'config.json');

/** A container's stdout and stderr, kept in its bundle (runc.ts, `ferry logs`). */
export const LOG_FILE = 'container.log';
export const logFile = (ctx: AgentContext, container: string): string =>
  path.join(ctx.layout.bundle(container), LOG_FILE);

/** The root filesystem's driver and each node-local volume's, from what they live on. */
async function containerVolumes(ctx: AgentContext, container: string, uid: string): Promise<VolumeRef[]> {
  // Before anything is frozen: the root filesystem has a driver that can move it.
  const root = chooseDriver({ fsType: await filesystemOf(ctx.layout.rootfs(container)) }, {});
  if (root.driver !== 'btrfs' && root.driver !== 'overlay')
    throw new FerryError(
      'UnsupportedWorkload',
      `the root filesystem of ${container} is ${root.reason}; root filesystems move as btrfs subvolumes or overlay mounts`,
    );
  const out: VolumeRef[] = [{ name: 'rootfs', driver: root.driver }];
  const spec = JSON.parse(await readFile(specFile(ctx, container), 'utf8')) as Record<string, unknown>;
  for (const { name } of specVolumes(spec)) {
    const thin = await isThinVolume(ctx, { name, container, uid });
    const fsType = thin ? 'thin' : await filesystemOf(ctx.layout.volume(container, name));
    const node = {
      thinProblem: ctx.config.thinPool ? undefined : `node ${ctx.config.node} has no thin pool`,
    };
    const choice = chooseDriver({ fsType, blockDevice: thin }, node);
    if (!choice.driver || choice.driver === 'overlay')
      throw new FerryError('UnsupportedWorkload', `volume ${name} of ${container} is ${choice.reason}`);
    out.push({ name, driver: choice.driver });
  }
  return out;
}

/**
 * Writes the bundle's config.json for restoring `spec` on this node from the CRIU images in
 * `imageDir`: its cgroup, self-service socket and, for a container with its own address, its
 * network namespace with that address (routed here and announced only once the restore worked).
 * Returns that address.
 */
export async function writeRestoreSpec(
  ctx: AgentContext,
  container: string,
  facts: SpecFacts,
  imageDir: string,
): Promise<string | undefined> {
  // ferry's own spec from the checked facts (runtime/restore-spec.ts), placed on this node: its
  // cgroup, its self-service folder, its volumes in this bundle, its network namespace as it was
  // dumped: one joined by path (CRIU took it as external) is made here first; otherwise CRIU makes
  // it, and the action script gives it the address (runtime/container-net.ts).
  const netns = !facts.joinsNetns
    ? undefined
    : facts.address
      ? await createNetns(ctx, container, facts.address, false)
      : await createLoopbackNetns(ctx, container);
  await planRestoredNetns(ctx, container, netns ? undefined : facts.address, imageDir);
  const bundle = ctx.layout.bundle(container);
  const spec = buildOciSpec({
    args: facts.args,
    env: facts.env,
    cwd: facts.cwd,
    user: facts.user,
    hostname: facts.hostname,
    extraCaps: facts.extraCaps,
    cgroupsPath: cgroupsPathFor(ctx, container),
    // In a user namespace, no self-service socket: its root could not reach the node's folder.
    ...(facts.userns ? { userns: facts.userns } : { selfDir: await ctx.self.listen(container) }),
    volumes: facts.volumes.map((v) => ({
      source: ctx.layout.volume(container, v.name),
      destination: v.destination,
    })),
    ...(netns || facts.address
      ? { network: { ...(netns ? { path: `/run/netns/${netns}` } : {}), address: facts.address } }
      : {}),
    engineFiles: await writeEngineFiles(bundle, facts.engineFiles, facts.hostname),
    cgroupMount: facts.cgroupMount,
    ...(facts.image ? { image: facts.image } : {}),
    masked: facts.masked,
    readonly: facts.readonly,
    // NVIDIA's nodes with this node's own numbers; the spec's crossed from another node.
    devices: await Promise.all(facts.gpuDevices.map((d) => gpuDevice(ctx, d))),
  });
  await writeFile(specFile(ctx, container), JSON.stringify(spec, null, 2), { mode: 0o600 });
  // A user namespace's root must reach its bundle and volumes (runtime/userns.ts).
  if (facts.userns)
    for (const d of [bundle, ...facts.volumes.map((v) => ctx.layout.volume(container, v.name))])
      await makeTraversable(d);
  return facts.address;
}

/** A container's output from byte `from` on (`ferry logs`): no log is a refusal naming why. */
export async function readLogs(ctx: AgentContext, job: JobOf<'logs'>) {
  const file = logFile(ctx, job.container);
  const f = await open(file, 'r').catch(() => undefined);
  if (!f) {
    const why = (await exists(ctx.layout.bundle(job.container)))
      ? 'keeps no log (ferry run --image containers do; the test workloads write to their own files)'
      : `is not on ${ctx.config.node}`;
    throw new FerryError('ContainerNotFound', `container ${job.container} ${why}`);
  }
  try {
    const size = (await f.stat()).size;
    const from = Math.min(job.from, size);
    const buf = Buffer.alloc(Math.min(job.max, size - from));
    const { bytesRead } = await f.read(buf, 0, buf.length, from);
    return { data: buf.subarray(0, bytesRead).toString('base64'), next: from + bytesRead, size };
  } finally {
    await f.close();
  }
}

export const containerKind: WorkloadKind = {
  name: 'container',

  async inspect(ctx, job) {
    const st = await requireState(ctx, job.container, ['running']);
    return {
      status: st.status,
      ...(st.pid ? { pid: st.pid } : {}),
      pids: await ctx.runc.pids(job.container),
    };
  },

  volumes: (ctx, job) => containerVolumes(ctx, job.container, job.migration.uid),

  async requireRunning(ctx, job) {
    await requireState(ctx, job.container, ['running']);
  },

  async checkpoint(ctx, job, snapshotVolumes) {
    const { layout, runc } = ctx;
    const uid = job.migration.uid;
    const images = layout.checkpoint(uid);
    const st = await requireState(ctx, job.container, ['running', 'paused']);
    await rm(layout.images(uid), { recursive: true, force: true }); // a retry starts clean
    await mkdir(images, { recursive: true, mode: 0o700 });
    const precopy = job.mode === 'PreCopy' ? await preDumpRounds(ctx, job) : undefined;
    // A container with its own address: from now on its namespace neither takes nor sends a
    // packet, and the address is no longer routed here (see runtime/container-net.ts).
    const address = await addressOf(specFile(ctx, job.container));
    let frozenAt = '';
    // A GPU container's CUDA state goes first, while it runs (the driver works through a thread of
    // its processes); its CUDA work stops at the lock, so that is where its freeze begins.
    const gpuContainer = await isGpuContainer(specFile(ctx, job.container));
    let gpu: Awaited<ReturnType<typeof checkpointContainerGpu>> | undefined;
    const freeze = async () => {
      if (gpuContainer) {
        frozenAt = new Date().toISOString();
        gpu = await checkpointContainerGpu(ctx, await runc.pids(job.container));
      }
      if (st.status === 'running') await runc.pause(job.container);
      if (address) await lockNet(ctx, job.container, address);
      frozenAt ||= new Date().toISOString();
      const affinity = await captureAffinity(await runc.pids(job.container));
      await writeFile(path.join(layout.images(uid), AFFINITY_FILE), JSON.stringify(affinity), {
        mode: 0o600,
      });
    };
    let started = Date.now();
    const extra: { streamedBytes?: number; lazyPagesPort?: number } = {};
    if (job.mode === 'PostCopy') {
      await freeze();
      started = Date.now();
      const port = await freePort();
      const server = await runc.checkpointLazy(job.container, images, layout.work(uid), port);
      keepLazyServer(ctx, uid, server, port, job.targetNode);
      extra.lazyPagesPort = port;
    } else {
      const cut = await ctx.hooks.take('source.duringTransfer', job.migration.name);
      // What the page stream will carry, about: progress can say how much is left while frozen.
      const totalBytes = await dumpableTotal(await runc.pids(job.container));
      extra.streamedBytes = await withSession(
        ctx,
        job.targetNode,
        uid,
        async (s) => {
          s.injectFault(cut);
          // The target's page server and the tunnel to it are made ready while the workload still
          // runs: the freeze begins with the dump. A target that cannot receive is found out
          // before anything is frozen.
          const stream = await s.openPageStream();
          try {
            await freeze();
          } catch (err) {
            stream.close();
            throw err;
          }
          started = Date.now();
          await stream.run((port) =>
            runc.checkpointLeavingStopped(job.container, images, layout.work(uid), {
              pageServerPort: port,
              ...(precopy ? { parent: precopy.parent } : {}),
            }),
          );
          return s.bytes;
        },
        { bandwidth: job.bandwidth, totalBytes },
      );
    }
    const dumpMs = Date.now() - started;
    await snapshotVolumes();
    return {
      frozenAt,
      dumpMs,
      imageBytes: (await dirBytes(images)) + (extra.streamedBytes ?? 0),
      ...extra,
      ...(precopy ? { iterations: precopy.rounds, stopReason: precopy.stopReason } : {}),
      ...(gpu ? { gpu } : {}),
    };
  },

  async requireFrozen(ctx, job) {
    // A lazy checkpoint keeps the source stopped under CRIU's ptrace, which runc reports as running.
    const lazy = ctx.background.has(job.migration.uid);
    await requireState(ctx, job.container, lazy ? ['paused', 'running'] : ['paused']);
  },

  // Its spec, and its output so far (`ferry logs`), which goes on into the same file there.
  extraFiles: async (ctx, job) => [
    [specFile(ctx, job.container), 'config.json'],
    ...((await exists(logFile(ctx, job.container)))
      ? [[logFile(ctx, job.container), LOG_FILE] as [string, string]]
      : []),
  ],

  async removeSource(ctx, job) {
    await removeContainer(ctx, job.container);
  },

  async resume(ctx, job) {
    const st = await ctx.runc.state(job.container);
    if (!st || (st.status !== 'paused' && st.status !== 'running')) {
      throw new FerryError(
        'SourceResumeFailed',
        `source container ${job.container} is ${st?.status ?? 'absent'} and cannot be resumed`,
      );
    }
    const address = await addressOf(specFile(ctx, job.container));
    if (address) await unlockNet(ctx, job.container, address);
    if (st.status === 'paused') await ctx.runc.resume(job.container);
    // A GPU container's CUDA state comes back once it runs again (the driver needs its threads),
    // even when the freeze never came: a lock or checkpoint may have.
    const gpu = (await isGpuContainer(specFile(ctx, job.container)))
      ? await resumeGpu(ctx.cuda, await ctx.runc.pids(job.container))
      : undefined;
    if (st.status !== 'paused' && !gpu?.pids.length) return { resumed: job.container, wasFrozen: false };
    return { resumed: job.container, wasFrozen: true, resumedAt: new Date().toISOString() };
  },

  async checkFree(ctx, job) {
    const taken = (await ctx.runc.state(job.container)) || (await exists(ctx.layout.bundle(job.container)));
    if (taken && !(await ownedBy(ctx, job.container, job.migration.uid)))
      throw new FerryError(
        'ContainerExists',
        `node ${ctx.config.node} already has a container ${job.container}`,
      );
  },

  async restore(ctx, job, makeVolumes) {
    const { layout, runc } = ctx;
    const uid = job.migration.uid;
    const st = await runc.state(job.container);
    if (st?.status === 'running' && (await ownedBy(ctx, job.container, uid))) {
      // A retried job whose first attempt restored the workload already.
      return { restoredAt: new Date().toISOString(), restoreMs: 0, pid: st.pid };
    }
    // The spec crossed from another node: its facts are checked before anything is made here.
    const facts = specFacts(
      await readFile(path.join(layout.images(uid), 'config.json'), 'utf8'),
      'config.json',
    );
    const bundle = layout.bundle(job.container);
    await mkdir(bundle, { recursive: true, mode: 0o700 });
    await writeFile(path.join(bundle, MARKER), uid, { mode: 0o600 });
    await makeVolumes();
    const address = await writeRestoreSpec(ctx, job.container, facts, layout.checkpoint(uid));
    await ctx.hooks.fire('target.beforeRestore', job.migration.name, layout.images(uid));
    const started = Date.now();
    // PostCopy: the lazy-pages daemon must be listening before CRIU hands it the workload's memory.
    if (job.lazy) await startLazyDaemon(ctx, uid, job.lazy.sourceNode, job.lazy.port);
    if (facts.userns) await shareImages(layout.checkpoint(uid), facts.userns.hostID);
    // Its output so far came along: the restored container writes on into it.
    const received = path.join(layout.images(uid), LOG_FILE);
    const output = (await exists(received)) ? logFile(ctx, job.container) : undefined;
    if (output) await copyFile(received, output);
    try {
      await runc.restore(job.container, bundle, layout.checkpoint(uid), layout.work(uid), {
        lazy: !!job.lazy,
        ...(output ? { output } : {}),
      });
    } catch (err) {
      await stopBackground(ctx, uid);
      throw err;
    }
    const after = await runc.state(job.container);
    if (after?.status !== 'running')
      throw new FerryError(
        'CriuRestoreFailed',
        `restored container is ${after?.status ?? 'absent'}, not running`,
      );
    if (address) await announce(ctx, job.container, address);
    // A GPU container: its processes' CUDA state back onto this node's GPU, then unlocked.
    const gpu = facts.gpuDevices.length
      ? await resumeGpu(ctx.cuda, await runc.pids(job.container))
      : undefined;
    const restoredAt = new Date().toISOString();
    const restoreMs = Date.now() - started;
    // CRIU does not carry CPU affinity: set what the source recorded while frozen.
    const affinity = await readFile(path.join(layout.images(uid), AFFINITY_FILE), 'utf8').catch(() => '{}');
    const unset = await applyAffinity(await runc.pids(job.container), JSON.parse(affinity) as AffinityMap);
    if (unset.length) ctx.log.warn({ unset }, 'could not restore the CPU affinity of some tasks');
    return { restoredAt, restoreMs, pid: after.pid, ...(gpu ? { gpuRestoreMs: gpu.ms } : {}) };
  },

  async verify(ctx, job) {
    const first = await ctx.runc.state(job.container);
    await new Promise((r) => setTimeout(r, 200));
    const st = await ctx.runc.state(job.container);
    if (!first || !st || st.status !== 'running' || st.pid !== first.pid) {
      throw new FerryError(
        'CriuRestoreFailed',
        `restored container ${job.container} is ${st?.status ?? 'gone'} on ${ctx.config.node}`,
      );
    }
    return { status: st.status, pid: st.pid };
  },

  async settle(ctx, job) {
    await rm(path.join(ctx.layout.bundle(job.container), MARKER), { force: true });
  },

  async removeTarget(ctx, job) {
    const removed = await ownedBy(ctx, job.container, job.migration.uid);
    if (removed) await removeContainer(ctx, job.container);
    return { removedContainer: removed };
  },
};
