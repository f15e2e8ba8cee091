// Checkpoint archives with the file names Podman and the kubelet's checkpoint API use (the layout
// only: Podman's own config.dump and image-relative rootfs diff are not written, and archives
// Podman writes are refused by the trust rule below, naming the field):
//
//   checkpoint/       CRIU's images (inventory.img, pstree.img, pages-*.img, stats-dump, …)
//   config.dump       the container's runtime configuration (JSON)
//   spec.dump         its OCI runtime spec (JSON)
//   rootfs-diff.tar   its root filesystem's changes (here: the whole tree, there is no image below)
//   deleted.files     paths deleted from the image below (none here)
//   volumes/NAME.tar  each node-local volume
//   stats-dump        CRIU's dump statistics
//
// An archive to import is checked before anything is written: its layout, every member's path,
// links, and that it is a whole tar; then its descriptions (spec.dump's facts through
// runtime/restore-spec.ts, config.dump, deleted.files) before its trees and images are unpacked.
// The container is restored with ferry's own spec built from those facts, never the archive's.
import { copyFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { JobOf } from '../api/v1alpha1/jobs.ts';
import { FerryError } from '../lib/errors.ts';
import { exec, run } from '../lib/exec.ts';
import type { AgentContext } from './context.ts';
import { writeRestoreSpec } from './workloads/container.ts';
import { announce } from './runtime/container-net.ts';
import { specVolumes } from './runtime/oci-spec.ts';
import { MAX_SPEC_BYTES, specFacts } from './runtime/restore-spec.ts';
import {
  DELETED_FILES,
  DIFF_TAR,
  checkTreeTar,
  memberName,
  safeRelative,
  unpackTreeTar,
} from './snapshot/overlay.ts';
import { createSubvolume, exists } from './snapshot/btrfs.ts';
import { removeContainer } from './runtime/containers.ts';

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

/**
 * config.dump is a JSON object; deleted.files is empty (ferry's archives carry the whole tree, so
 * there is nothing below to delete from) or a JSON list of none.
 */
async function checkDescriptions(dir: string): Promise<void> {
  const config = await readSmall(path.join(dir, 'config.dump'));
  let parsed: unknown;
  try {
    parsed = JSON.parse(config);
  } catch {
    throw new FerryError('StreamRejected', 'config.dump: not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new FerryError('StreamRejected', 'config.dump: not a JSON object');
  const deleted = (await readSmall(path.join(dir, DELETED_FILES)).catch(() => '')).trim();
  if (deleted === '' || deleted === '[]') return;
  throw new FerryError(
    'StreamRejected',
    `${DELETED_FILES}: ${deleted.slice(0, 120)}: paths to delete from an image below, and a ferry import restores a whole tree with no image below`,
  );
}

/** A tree as tar: owners as numbers, extended attributes kept. */
function packTree(from: string, file: string): Promise<string> {
  const args = ['--create', '--file', file, '--directory', from, '--xattrs', '--xattrs-include=*'];
  return run('tar', [...args, '--numeric-owner', '.'], 'SnapshotFailed');
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
  const volumes = specVolumes(JSON.parse(spec) as Record<string, unknown>);
  if (st.status === 'running') await runc.pause(job.container);
  try {
    await runc.checkpointLeavingStopped(job.container, images, path.join(dir, 'work'));
    // Taken while frozen, like the images: the trees the restored processes expect. Node-local
    // volumes go where Podman puts them, volumes/<name>.tar.
    await packTree(layout.rootfs(job.container), path.join(dir, DIFF_TAR));
    if (volumes.length) await mkdir(path.join(dir, 'volumes'), { mode: 0o700 });
    for (const v of volumes)
      await packTree(layout.volume(job.container, v.name), path.join(dir, 'volumes', `${v.name}.tar`));
  } finally {
    if (job.stop) await removeContainer(ctx, job.container);
    else if (st.status === 'running') await runc.resume(job.container);
  }
  // CRIU writes its statistics into the work folder when runc gives it one.
  for (const from of [path.join(dir, 'work', 'stats-dump'), path.join(images, 'stats-dump')])
    if (!(await exists(path.join(dir, 'stats-dump'))) && (await exists(from)))
      await copyFile(from, path.join(dir, 'stats-dump'));
  await rm(path.join(dir, 'work'), { recursive: true, force: true });
  await writeFile(path.join(dir, DELETED_FILES), '', { mode: 0o600 });
  await writeFile(path.join(dir, 'spec.dump'), spec, { mode: 0o600 });
  const now = new Date().toISOString();
  await writeFile(
    path.join(dir, 'config.dump'),
    JSON.stringify(
      {
        // A few of the fields checkpointctl reads (its and CRI-O's shape, not libpod's whole config).
        id: job.container,
        name: job.container,
        runtime: 'runc',
        createdTime: now,
        checkpointedTime: now,
        restored: false,
        ferryNode: ctx.config.node,
      },
      null,
      2,
    ),
    { mode: 0o600 },
  );
  const archive = `${dir}.tar`;
  await run('tar', ['--create', '--file', archive, '--directory', dir, '.'], 'SnapshotFailed');
  await rm(dir, { recursive: true, force: true });
  return { archive, bytes: (await stat(archive)).size, stopped: job.stop };
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
  if ((await runc.state(job.container)) || (await exists(layout.bundle(job.container))))
    throw new FerryError(
      'ContainerExists',
      `node ${ctx.config.node} already has a container ${job.container}`,
    );
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
    await checkDescriptions(dir);
    await run(
      'tar',
      ['--extract', '--file', job.archive, '--directory', dir, '--no-same-owner'],
      'StreamRejected',
    );
    // The root filesystem and each volume: checked like the archive itself, then unpacked.
    const volumes = facts.volumes;
    const trees = [
      { tar: path.join(dir, DIFF_TAR), into: layout.rootfs(job.container) },
      ...volumes.map((v) => ({
        tar: path.join(dir, 'volumes', `${v.name}.tar`),
        into: layout.volume(job.container, v.name),
      })),
    ];
    for (const t of trees) await checkTreeTar(t.tar, path.relative(dir, t.tar));
    await mkdir(layout.bundle(job.container), { recursive: true, mode: 0o700 });
    if (volumes.length) await mkdir(layout.volumes(job.container), { recursive: true, mode: 0o700 });
    for (const t of trees) {
      await createSubvolume(t.into);
      await unpackTreeTar(t.tar, t.into);
    }
    const address = await writeRestoreSpec(ctx, job.container, facts);
    await runc.restore(
      job.container,
      layout.bundle(job.container),
      path.join(dir, 'checkpoint'),
      path.join(dir, 'work'),
    );
    const st = await runc.state(job.container);
    if (st?.status !== 'running')
      throw new FerryError('CriuRestoreFailed', `imported container is ${st?.status ?? 'absent'}`);
    if (address) await announce(ctx, job.container, address);
    return { restored: job.container, pid: st.pid };
  } catch (err) {
    // Nothing half-made stays: no container, no bundle, no root filesystem.
    if (!(err instanceof FerryError && err.code === 'ContainerExists'))
      await removeContainer(ctx, job.container).catch(() => undefined);
    throw err;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
