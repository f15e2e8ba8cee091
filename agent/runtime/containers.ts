// Containers on this node as the migration path needs them: where their cgroup is, listing and
// removal, and the overlay root mounted from an image below and the container's own changes above.
import { chmod, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { ContainerInfo } from '../../api/v1alpha1/job-results.ts';
import { FerryError } from '../../lib/errors.ts';
import { run } from '../../lib/exec.ts';
import type { AgentContext } from '../context.ts';
import { deleteSubvolume, exists } from '../snapshot/btrfs.ts';
import { filesystemOf } from '../snapshot/fs-type.ts';
import { mountOverlay } from '../snapshot/overlay.ts';
import { ADDRESS_ANNOTATION, removeNetns } from './container-net.ts';
import { IMAGE_ANNOTATION } from './oci-spec.ts';

/**
 * Every container's root folder has this mode, the one Podman gives its containers' roots: CRIU
 * checks a restored root's mode against the one it dumped, so archives cross between ferry and
 * Podman only when both agree.
 */
export const ROOT_MODE = 0o555;

export const cgroupsPathFor = (ctx: AgentContext, container: string): string =>
  `${ctx.config.cgroupParent}/${container}`;

/** Refuses a name this node already uses: a container runc knows, or a bundle left on disk. */
export async function refuseTaken(ctx: AgentContext, container: string): Promise<void> {
  if ((await ctx.runc.state(container)) || (await exists(ctx.layout.bundle(container))))
    throw new FerryError('ContainerExists', `container ${container} already exists on ${ctx.config.node}`);
}

/** runc's containers, each with what its spec says: image, command, address (`ferry ps`). */
export async function listContainers(ctx: AgentContext): Promise<ContainerInfo[]> {
  const out: ContainerInfo[] = [];
  for (const c of await ctx.runc.list()) {
    const raw = await readFile(path.join(ctx.layout.bundle(c.id), 'config.json'), 'utf8').catch(() => '{}');
    const spec = JSON.parse(raw) as { process?: { args?: string[] }; annotations?: Record<string, string> };
    const image = spec.annotations?.[IMAGE_ANNOTATION];
    const address = spec.annotations?.[ADDRESS_ANNOTATION];
    out.push({
      ...c,
      ...(image ? { image } : {}),
      ...(spec.process?.args ? { command: spec.process.args } : {}),
      ...(address ? { address } : {}),
    });
  }
  return out;
}

/** Removes a container, its root filesystem subvolume and its bundle. */
export async function removeContainer(ctx: AgentContext, container: string): Promise<void> {
  await ctx.runc.remove(container);
  await removeNetns(ctx, container);
  await ctx.self.close(container);
  // An overlay root is a mount, not a subvolume: unmount it; its upper directory goes with the bundle.
  if (!(await unmountOverlayRoot(ctx, container)) && !(await exists(upperOf(ctx, container))))
    await deleteSubvolume(ctx.layout.rootfs(container));
  const volumes = await readdir(ctx.layout.volumes(container)).catch(() => [] as string[]);
  for (const v of volumes) await deleteSubvolume(ctx.layout.volume(container, v));
  await rm(ctx.layout.bundle(container), { recursive: true, force: true });
}

/** Unmounts a container's overlay root if it is mounted; true if it was. */
async function unmountOverlayRoot(ctx: AgentContext, container: string): Promise<boolean> {
  const rootfs = ctx.layout.rootfs(container);
  if (!(await exists(rootfs)) || (await filesystemOf(rootfs)) !== 'overlayfs') return false;
  await run('umount', [rootfs], 'SnapshotFailed');
  return true;
}

/**
 * Mounts a container's overlay root: `image` below, a fresh upper and work folder in its bundle.
 * Whatever an earlier attempt mounted there is unmounted and dropped first, so a retry starts afresh.
 */
export async function mountContainerOverlay(
  ctx: AgentContext,
  container: string,
  image: string,
): Promise<string> {
  const bundle = ctx.layout.bundle(container);
  await unmountOverlayRoot(ctx, container);
  await rm(path.join(bundle, 'overlay'), { recursive: true, force: true });
  const upper = path.join(bundle, 'overlay', 'upper');
  const work = path.join(bundle, 'overlay', 'work');
  for (const d of [upper, work, ctx.layout.rootfs(container)])
    await mkdir(d, { recursive: true, mode: 0o755 });
  await mountOverlay(image, upper, work, ctx.layout.rootfs(container));
  await chmod(ctx.layout.rootfs(container), ROOT_MODE);
  return upper;
}

export const upperOf = (ctx: AgentContext, container: string): string =>
  path.join(ctx.layout.bundle(container), 'overlay', 'upper');
