// Checkpoint archives in Podman's layout, both ways: `podman container restore --import` reads
// ferry's, and ferry imports Podman's (`podman container checkpoint --export`, plain, gzip or zstd):
//
//   checkpoint/             CRIU's images (inventory.img, pstree.img, pages-*.img, …)
//   config.dump             libpod's container config (archive-config.ts)
//   spec.dump               its OCI runtime spec (JSON)
//   rootfs-diff.tar         its root filesystem over the image config.dump names (ferry writes the
//                           whole tree, over its workload image: images/workload-image.ts)
//   deleted.files           a JSON list of paths deleted from that image
//   devshm-checkpoint.tar   Podman's /dev/shm contents
//   volumes/NAME.tar        named volumes: Podman's, and ferry's node-local volumes and self-service folder as such
//   stats-dump              CRIU's dump statistics
//
// An archive to import is checked before anything is written: its layout, every member's path,
// links, and that it is a whole tar; then its descriptions (spec.dump's facts through
// runtime/restore-spec.ts, config.dump, deleted.files) and, for Podman's, that the image below is
// there, before its trees and images are unpacked. The container is restored with ferry's own spec
// built from those facts, never the archive's; a Podman archive's root is its image (copied with
// skopeo) with the diff and the deletions as one more layer, unpacked by umoci.
import { randomBytes } from 'node:crypto';
import { chmod, copyFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { JobOf } from '../api/v1alpha1/jobs.ts';
import { FerryError } from '../lib/errors.ts';
import { exec, run } from '../lib/exec.ts';
import type { AgentContext } from './context.ts';
import { libpodConfig, readArchiveConfig, readDeletedFiles, specForArchive } from './archive-config.ts';
import { addLayer, copyImage, unpackRoot } from './images/oci-image.ts';
import { deletedFrom, workloadOciImage } from './images/workload-image.ts';
import { writeRestoreSpec } from './workloads/container.ts';
import { shmDir } from './runtime/engine-files.ts';
import { announce } from './runtime/container-net.ts';
import { SELF_MOUNT, volumeName } from './runtime/oci-spec.ts';
import { MAX_SPEC_BYTES, specFacts } from './runtime/restore-spec.ts';
import {
  DELETED_FILES,
  DIFF_TAR,
  checkTreeTar,
  memberName,
  packTreeTar,
  safeRelative,
  unpackTreeTar,
} from './snapshot/overlay.ts';
import { createSubvolume, exists } from './snapshot/btrfs.ts';
import { refuseTaken, removeContainer, ROOT_MODE } from './runtime/containers.ts';
import { checkpointContainerGpu, isGpuSpec } from './gpu/gpu-node.ts';
import { resumeGpu } from './gpu/cuda-moves.ts';

const REQUIRED = ['checkpoint/inventory.img', 'config.dump', 'spec.dump', DIFF_TAR];

/** Why an archive listing (`tar -tv`) is not a checkpoint archive ferry will unpack, or undefined. Pure. */
export function archiveProblem(listing: string): string | undefined {
  const names = new Set<string>();
  for (const line of listing.split('\n').filter(Boolean)) {
    const type = line[0];
    const name = memberName(line).replace(/\/$/, '').replace(/^\.\//, '');
    if (name === '.' || name === '') continue;
    if (!safeRelative(name)) return `member ${JSON.stringify(name)} leaves the archive's folder`;
    if (type === 'l' || type === 'h')
      return `member ${name} is a link (${line.split(/ (?:->|link to) /)[1] ?? '?'}): archives carry none`;
    if (type !== '-' && type !== 'd') return `member ${name} is a special file`;
    names.add(name);
  }
  const missing = REQUIRED.filter((r) => !names.has(r));
  return missing.length ? `not a checkpoint archive: ${missing.join(', ')} missing` : undefined;
}

/** The members that describe the archive (not its trees or images), as the listing names them. */
function describedMembers(listing: string): string[] {
  return listing
    .split('\n')
    .filter(Boolean)
    .map(memberName)
    .filter((n) => ['spec.dump', 'config.dump', DELETED_FILES].includes(n.replace(/^\.\//, '')));
}

/** Podman's /dev/shm contents in its archives. */
const DEVSHM_TAR = 'devshm-checkpoint.tar';

/** A description file, refused when it is larger than any real one. */
async function readSmall(file: string): Promise<string> {
  const size = (await stat(file)).size;
  if (size > MAX_SPEC_BYTES)
    throw new FerryError(
      'StreamRejected',
      `${path.basename(file)}: ${size} bytes, more than the ${MAX_SPEC_BYTES} such a file needs`,
    );
  return readFile(file, 'utf8');
}

/** Checkpoints a container into an archive on this node; it keeps running unless asked to stop. */
export async function exportCheckpoint(ctx: AgentContext, job: JobOf<'export'>) {
  const { layout, runc } = ctx;
  const st = await runc.state(job.container);
  if (!st || (st.status !== 'running' && st.status !== 'paused'))
    throw new FerryError(
      'ContainerNotFound',
      `container ${job.container} on ${ctx.config.node} is ${st?.status ?? 'absent'}`,
    );
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const dir = path.join(ctx.config.imagesDir, `export-${job.container}-${stamp}`);
  const images = path.join(dir, 'checkpoint');
  await mkdir(images, { recursive: true, mode: 0o700 });
  const spec = await readFile(path.join(layout.bundle(job.container), 'config.json'), 'utf8');
  const carried = specForArchive(
    JSON.parse(spec) as Record<string, unknown>,
    job.container,
    SELF_MOUNT,
    volumeName,
  );
  const emptyDir = path.join(dir, 'empty');
  await mkdir(emptyDir, { mode: 0o755 });
  const base = await workloadOciImage(ctx);
  let deleted: string[] | undefined;
  // A GPU container's CUDA state is checkpointed into its processes' memory first, while they run
  // (a refusal leaves them as they were); the archive's images then hold their GPU memory.
  const pids = await runc.pids(job.container);
  const gpu = isGpuSpec(spec) ? await checkpointContainerGpu(ctx, pids) : undefined;
  if (st.status === 'running')
    await runc.pause(job.container).catch(async (err: unknown) => {
      if (gpu) await resumeGpu(ctx.cuda, pids).catch(() => undefined); // the pause's error is the one to report
      throw err;
    });
  try {
    await runc.checkpointLeavingStopped(job.container, images, path.join(dir, 'work'));
    // Taken while frozen, like the images: the trees the restored processes expect. Node-local
    // volumes go where Podman puts them, volumes/<name>.tar.
    await packTreeTar(layout.rootfs(job.container), path.join(dir, DIFF_TAR));
    deleted = await deletedFrom(base.tree, layout.rootfs(job.container));
    // Node-local volumes and the self-service folder go as Podman's named volumes: volumes/<name>.tar.
    await mkdir(path.join(dir, 'volumes'), { mode: 0o700 });
    for (const v of carried.volumes)
      await packTreeTar(
        v.name ? layout.volume(job.container, v.name) : emptyDir,
        path.join(dir, 'volumes', `${v.volume}.tar`),
      );
  } finally {
    if (job.stop) await removeContainer(ctx, job.container);
    else {
      if (st.status === 'running') await runc.resume(job.container);
      // Running again, its processes get their GPU memory back through the driver.
      if (gpu) await resumeGpu(ctx.cuda, pids);
    }
  }
  // CRIU writes its statistics into the work folder when runc gives it one.
  for (const from of [path.join(dir, 'work', 'stats-dump'), path.join(images, 'stats-dump')])
    if (!(await exists(path.join(dir, 'stats-dump'))) && (await exists(from)))
      await copyFile(from, path.join(dir, 'stats-dump'));
  await rm(path.join(dir, 'work'), { recursive: true, force: true });
  await rm(emptyDir, { recursive: true, force: true });
  await writeFile(path.join(dir, DELETED_FILES), JSON.stringify(deleted ?? []), { mode: 0o600 });
  await writeFile(path.join(dir, 'spec.dump'), JSON.stringify(carried.spec, null, 2), { mode: 0o600 });
  const now = new Date().toISOString();
  const args = (JSON.parse(spec) as { process?: { args?: string[] } }).process?.args ?? [];
  const config = libpodConfig({
    id: randomBytes(32).toString('hex'),
    name: job.container,
    args,
    image: base,
    volumes: carried.volumes,
    node: ctx.config.node,
    now,
  });
  await writeFile(path.join(dir, 'config.dump'), JSON.stringify(config, null, 2), { mode: 0o600 });
  const archive = `${dir}.tar`;
  await run('tar', ['--create', '--file', archive, '--directory', dir, '.'], 'SnapshotFailed');
  await rm(dir, { recursive: true, force: true });
  return {
    archive,
    bytes: (await stat(archive)).size,
    stopped: job.stop,
    baseImage: { name: base.name, id: base.id, ref: `oci:${base.layout}:${base.tag}` },
    ...(gpu ? { gpu } : {}),
  };
}

/** Restores a container on this node from an archive, after checking it. */
export async function importCheckpoint(ctx: AgentContext, job: JobOf<'import'>) {
  const { layout, runc } = ctx;
  const listed = await exec('tar', ['--list', '--verbose', '--file', job.archive]);
  if (listed.code !== 0)
    throw new FerryError(
      'StreamRejected',
      `${job.archive} is not a whole tar archive: ${listed.stderr.trim().split('\n').pop()}`,
    );
  const problem = archiveProblem(listed.stdout);
  if (problem) throw new FerryError('StreamRejected', `${job.archive}: ${problem}`);
  await refuseTaken(ctx, job.container);
  const dir = path.join(ctx.config.imagesDir, `import-${job.container}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    // The archive's own descriptions first, checked before anything else is unpacked or made: the
    // spec's facts (runtime/restore-spec.ts), config.dump, deleted.files.
    const described = describedMembers(listed.stdout);
    await run(
      'tar',
      ['--extract', '--file', job.archive, '--directory', dir, '--no-same-owner', ...described],
      'StreamRejected',
    );
    const facts = specFacts(await readSmall(path.join(dir, 'spec.dump')), 'spec.dump');
    const config = readArchiveConfig(await readSmall(path.join(dir, 'config.dump')));
    const deleted = readDeletedFiles(await readSmall(path.join(dir, DELETED_FILES)).catch(() => ''));
    // A Podman archive's diff is over an image: it must be readable here before anything unpacks.
    const imageLayout = path.join(dir, 'image');
    if (facts.libpod) await copyImage(imageRef(job, config.rootfsImageID), imageLayout, 'base');
    await run(
      'tar',
      ['--extract', '--file', job.archive, '--directory', dir, '--no-same-owner'],
      'StreamRejected',
    );
    // The root filesystem, each volume and /dev/shm: checked like the archive itself, then unpacked.
    const volumes = facts.volumes;
    const devshm = listed.stdout.split('\n').some((l) => memberName(l).replace(/^\.\//, '') === DEVSHM_TAR);
    const trees = [
      { tar: path.join(dir, DIFF_TAR), into: layout.rootfs(job.container) },
      ...volumes.map((v) => ({
        tar: path.join(dir, 'volumes', `${v.name}.tar`),
        into: layout.volume(job.container, v.name),
      })),
    ];
    for (const t of trees) await checkTreeTar(t.tar, path.relative(dir, t.tar));
    if (devshm) await checkTreeTar(path.join(dir, DEVSHM_TAR), DEVSHM_TAR);
    await mkdir(layout.bundle(job.container), { recursive: true, mode: 0o700 });
    if (volumes.length) await mkdir(layout.volumes(job.container), { recursive: true, mode: 0o700 });
    const [root, ...rest] = trees;
    await createSubvolume(root!.into);
    if (facts.libpod) await unpackOverImage(dir, imageLayout, deleted, root!.into);
    // ferry's own archive carries the whole tree; its deleted.files names the image's paths it lacks.
    else await unpackTreeTar(root!.tar, root!.into);
    for (const t of rest) {
      await createSubvolume(t.into);
      await unpackTreeTar(t.tar, t.into);
    }
    const address = await writeRestoreSpec(ctx, job.container, facts, path.join(dir, 'checkpoint'));
    if (devshm && facts.engineFiles.includes('/dev/shm'))
      await unpackTreeTar(path.join(dir, DEVSHM_TAR), shmDir(layout.bundle(job.container)));
    await runc.restore(
      job.container,
      layout.bundle(job.container),
      path.join(dir, 'checkpoint'),
      path.join(dir, 'work'),
    );
    const st = await runc.state(job.container);
    if (st?.status !== 'running')
      throw new FerryError('CriuRestoreFailed', `imported container is ${st?.status ?? 'absent'}`);
    // A GPU container's processes were checkpointed by the driver: they get their GPU memory back.
    const gpu = facts.gpuDevices.length
      ? await resumeGpu(ctx.cuda, await runc.pids(job.container))
      : undefined;
    if (address) await announce(ctx, job.container, address);
    return { restored: job.container, pid: st.pid, ...(gpu ? { gpuRestoreMs: gpu.ms } : {}) };
  } catch (err) {
    // Nothing half-made stays: no container, no bundle, no root filesystem.
    await removeContainer(ctx, job.container).catch(() => undefined);
    throw err;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The image below a Podman archive's diff: the one the job names, else the archive's by ID. */
function imageRef(job: JobOf<'import'>, id: string | undefined): string {
  if (job.image) return job.image;
  if (id) return `containers-storage:${id}`;
  throw new FerryError(
    'StreamRejected',
    'config.dump: rootfsImageID: missing, and the rootfs diff is over an image: name it with --image REF',
  );
}

/**
 * A Podman archive's root: its diff and deletions (as whiteouts) made one more layer of the image
 * below, and unpacked by umoci, which keeps every path inside the root whatever links the image or
 * the diff hold. The root gets Podman's mode, the one CRIU recorded.
 */
async function unpackOverImage(dir: string, layout: string, deleted: string[], into: string): Promise<void> {
  const layer = path.join(dir, 'layer.tar');
  await copyFile(path.join(dir, DIFF_TAR), layer);
  if (deleted.length) {
    const stage = path.join(dir, 'whiteouts');
    const names = deleted.map((d) => path.join(path.dirname(d), `.wh.${path.basename(d)}`));
    for (const n of names) {
      await mkdir(path.join(stage, path.dirname(n)), { recursive: true, mode: 0o700 });
      await writeFile(path.join(stage, n), '', { mode: 0o600 });
    }
    const list = path.join(dir, 'whiteouts.list');
    await writeFile(list, names.map((n) => `${n}\0`).join(''), { mode: 0o600 });
    const append = ['--append', '--file', layer, '--directory', stage, '--no-recursion', '--null'];
    await run('tar', [...append, '--files-from', list], 'SnapshotFailed');
  }
  await addLayer(layout, 'base', layer, 'restored');
  await unpackRoot(layout, 'restored', into);
  await chmod(into, ROOT_MODE);
}
