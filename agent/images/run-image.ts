// `ferry run NAME --image REF`: a container from an OCI image, as `podman run -d` starts one. The
// image is copied by skopeo and unpacked by umoci into a btrfs subvolume of the container's own
// (so it moves like any other root filesystem); its config says what runs (images/image-config.ts).
// Everything is checked before the container starts, and a refusal leaves nothing behind.
import { chmod, lstat, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { JobOf } from '../../api/v1alpha1/jobs.ts';
import type { ContainerInfo } from '../../api/v1alpha1/job-results.ts';
import { FerryError } from '../../lib/errors.ts';
import type { AgentContext } from '../context.ts';
import { createNetns } from '../runtime/container-net.ts';
import { cgroupsPathFor, removeContainer, ROOT_MODE } from '../runtime/containers.ts';
import { buildOciSpec } from '../runtime/oci-spec.ts';
import { createSubvolume, exists } from '../snapshot/btrfs.ts';
import { logFile } from '../workloads/container.ts';
import { ociArch, planRun, resolveUser } from './image-config.ts';
import { copyImage, imageConfig, unpackRoot } from './oci-image.ts';

/** A file of the image's own, never followed out of it by a link (an absent one reads as empty). */
async function imageFile(root: string, rel: string): Promise<string> {
  const p = path.join(root, rel);
  const st = await lstat(p).catch(() => undefined);
  return st?.isFile() ? readFile(p, 'utf8') : '';
}

export async function runImage(ctx: AgentContext, job: JobOf<'runImage'>): Promise<ContainerInfo> {
  const { layout, runc } = ctx;
  const bundle = layout.bundle(job.container);
  if ((await runc.state(job.container)) || (await exists(bundle)))
    throw new FerryError(
      'ContainerExists',
      `container ${job.container} already exists on ${ctx.config.node}`,
    );
  const work = path.join(ctx.config.imagesDir, `pull-${job.container}`);
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true, mode: 0o700 });
  const oci = path.join(work, 'oci');
  try {
    // Read and checked before anything of the container is made.
    await copyImage(job.image, oci, 'image');
    const plan = planRun(job.image, await imageConfig(oci, 'image'), job, ociArch(process.arch));
    await mkdir(bundle, { recursive: true, mode: 0o700 });
    const rootfs = layout.rootfs(job.container);
    await createSubvolume(rootfs);
    await unpackRoot(oci, 'image', rootfs);
    await chmod(rootfs, ROOT_MODE);
    const user = resolveUser(
      job.image,
      plan.user,
      await imageFile(rootfs, 'etc/passwd'),
      await imageFile(rootfs, 'etc/group'),
    );
    for (const v of job.volumes) {
      await mkdir(layout.volumes(job.container), { recursive: true, mode: 0o700 });
      await createSubvolume(layout.volume(job.container, v.name));
    }
    const spec = buildOciSpec({
      args: plan.args,
      env: plan.env,
      cwd: plan.cwd,
      user,
      image: job.image,
      hostname: job.container,
      cgroupsPath: cgroupsPathFor(ctx, job.container),
      selfDir: await ctx.self.listen(job.container),
      volumes: job.volumes.map((v) => ({
        source: layout.volume(job.container, v.name),
        destination: v.path,
      })),
      ...(job.address
        ? {
            network: {
              path: `/run/netns/${await createNetns(ctx, job.container, job.address, true)}`,
              address: job.address,
            },
          }
        : {}),
    });
    await writeFile(path.join(bundle, 'config.json'), JSON.stringify(spec, null, 2), { mode: 0o600 });
    // Its stdout and stderr, kept on the node (`ferry logs`), and moved with it.
    await writeFile(logFile(ctx, job.container), '', { mode: 0o600 });
    await runc.run(job.container, bundle, logFile(ctx, job.container));
    const st = await runc.state(job.container);
    if (st?.status !== 'running')
      throw new FerryError(
        'RuntimeFailed',
        `${job.container} (${plan.args.join(' ')}) did not stay running: ${st?.status ?? 'absent'}`,
      );
    return { ...st, image: job.image, command: plan.args, ...(job.address ? { address: job.address } : {}) };
  } catch (err) {
    if (!(err instanceof FerryError && err.code === 'ContainerExists'))
      await removeContainer(ctx, job.container).catch(() => undefined);
    throw err;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
