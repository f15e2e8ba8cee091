// `ferry run NAME --image REF` and `ferry run NAME --bundle DIR`: a container of the user's own, as
// `podman run -d` and `runc run` start one. Its root is a btrfs subvolume of its own (so it moves
// like any other): an image copied by skopeo and unpacked by umoci, what its config says running
// (images/image-config.ts); or an OCI bundle's root filesystem, copied, run as its config.json
// says, read by the trust rule (runtime/restore-spec.ts): ferry's own spec, never the file whole.
// Everything is checked before the container starts, and a refusal leaves nothing behind.
import { chmod, lstat, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { JobOf } from '../../api/v1alpha1/jobs.ts';
import type { ContainerInfo } from '../../api/v1alpha1/job-results.ts';
import { FerryError } from '../../lib/errors.ts';
import { run } from '../../lib/exec.ts';
import type { AgentContext } from '../context.ts';
import { createNetns } from '../runtime/container-net.ts';
import { allocateRange, makeTraversable, ownByRange } from '../runtime/userns.ts';
import { cgroupsPathFor, refuseTaken, removeContainer, ROOT_MODE } from '../runtime/containers.ts';
import { buildOciSpec } from '../runtime/oci-spec.ts';
import { MAX_SPEC_BYTES, specFacts } from '../runtime/restore-spec.ts';
import type { Device } from '../runtime/oci-spec.ts';
import { gpuDevice } from '../gpu/gpu-node.ts';
import { createSubvolume } from '../snapshot/btrfs.ts';
import { logFile } from '../workloads/container.ts';
import { ociArch, planRun, resolveUser } from './image-config.ts';
import { copyImage, imageConfig, unpackRoot } from './oci-image.ts';

/** A file of the image's own, never followed out of it by a link (an absent one reads as empty). */
async function imageFile(root: string, rel: string): Promise<string> {
  const p = path.join(root, rel);
  const st = await lstat(p).catch(() => undefined);
  return st?.isFile() ? readFile(p, 'utf8') : '';
}

/** What runs in the container, once its root filesystem is in place. */
interface Start {
  args: string[];
  env: string[];
  cwd: string;
  user: { uid: number; gid: number };
  image?: string;
  /** Its user namespace (runtime/userns.ts); none: the host's users. */
  userns?: { hostID: number };
  /** NVIDIA device nodes (a GPU workload's bundle), with this node's numbers. */
  devices?: Device[];
}

/** Fills the root filesystem and says what runs; made after its source was checked. */
type Fill = (rootfs: string) => Promise<Start>;

/** The range a new container's user namespace gets, or none: `--host-users`. */
const rangeFor = async (ctx: AgentContext, job: JobOf<'runImage'>) =>
  job.hostUsers ? undefined : { hostID: await allocateRange(ctx) };

type Own = Pick<JobOf<'runImage'>, 'container' | 'address' | 'volumes'>;

/**
 * Starts a container of the user's own: `check` reads and checks its source (in `work`, a folder
 * of its own) before anything of the container is made, and returns how to fill its root.
 */
async function startOwn(
  ctx: AgentContext,
  job: Own,
  check: (work: string) => Promise<Fill>,
): Promise<ContainerInfo> {
  const { layout, runc } = ctx;
  const bundle = layout.bundle(job.container);
  await refuseTaken(ctx, job.container);
  const work = path.join(ctx.config.imagesDir, `pull-${job.container}`);
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true, mode: 0o700 });
  try {
    const fill = await check(work);
    await mkdir(bundle, { recursive: true, mode: 0o700 });
    const rootfs = layout.rootfs(job.container);
    await createSubvolume(rootfs);
    const start = await fill(rootfs);
    await chmod(rootfs, ROOT_MODE);
    for (const v of job.volumes) {
      await mkdir(layout.volumes(job.container), { recursive: true, mode: 0o700 });
      await createSubvolume(layout.volume(job.container, v.name));
      if (start.userns) await ownByRange(layout.volume(job.container, v.name), start.userns.hostID);
    }
    if (start.userns) {
      await ownByRange(rootfs, start.userns.hostID);
      for (const d of [rootfs, ...job.volumes.map((v) => layout.volume(job.container, v.name))])
        await makeTraversable(d);
    }
    const spec = buildOciSpec({
      ...start,
      hostname: job.container,
      cgroupsPath: cgroupsPathFor(ctx, job.container),
      // In a user namespace, no self-service socket: its root could not reach the node's folder.
      ...(start.userns ? {} : { selfDir: await ctx.self.listen(job.container) }),
      volumes: job.volumes.map((v) => ({
        source: layout.volume(job.container, v.name),
        destination: v.path,
      })),
      // An address: in a user namespace, the network namespace runc makes inside it, joined to the
      // node before the container starts; else one ferry makes first (runtime/container-net.ts).
      ...(job.address
        ? {
            network: {
              ...(start.userns
                ? {}
                : { path: `/run/netns/${await createNetns(ctx, job.container, job.address, true)}` }),
              address: job.address,
            },
          }
        : {}),
    });
    await writeFile(path.join(bundle, 'config.json'), JSON.stringify(spec, null, 2), { mode: 0o600 });
    // Its stdout and stderr, kept on the node (`ferry logs`), and moved with it.
    await writeFile(logFile(ctx, job.container), '', { mode: 0o600 });
    if (job.address && start.userns) {
      await runc.create(job.container, bundle, logFile(ctx, job.container));
      const pid = (await runc.state(job.container))?.pid;
      if (!pid) throw new FerryError('RuntimeFailed', `runc created ${job.container} without a process`);
      await createNetns(ctx, job.container, job.address, true, pid);
      await runc.start(job.container);
    } else await runc.run(job.container, bundle, logFile(ctx, job.container));
    const st = await runc.state(job.container);
    if (st?.status !== 'running')
      throw new FerryError(
        'RuntimeFailed',
        `${job.container} (${start.args.join(' ')}) did not stay running: ${st?.status ?? 'absent'} (ferry logs says why)`,
      );
    return {
      ...st,
      ...(start.image ? { image: start.image } : {}),
      command: start.args,
      ...(job.address ? { address: job.address } : {}),
    };
  } catch (err) {
    // Nothing half-made stays (the name was checked free before this).
    await removeContainer(ctx, job.container).catch(() => undefined);
    throw err;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export function runImage(ctx: AgentContext, job: JobOf<'runImage'>): Promise<ContainerInfo> {
  return startOwn(ctx, job, async (work) => {
    const oci = path.join(work, 'oci');
    await copyImage(job.image, oci, 'image');
    const plan = planRun(job.image, await imageConfig(oci, 'image'), job, ociArch(process.arch));
    const userns = await rangeFor(ctx, job);
    return async (rootfs) => {
      // In a user namespace, the image's owners shifted into its range as they are unpacked.
      await unpackRoot(oci, 'image', rootfs, userns?.hostID);
      const passwd = await imageFile(rootfs, 'etc/passwd');
      const user = resolveUser(job.image, plan.user, passwd, await imageFile(rootfs, 'etc/group'));
      return {
        args: plan.args,
        env: plan.env,
        cwd: plan.cwd,
        user,
        image: job.image,
        ...(userns ? { userns } : {}),
      };
    };
  });
}

export function runBundle(ctx: AgentContext, job: JobOf<'runBundle'>): Promise<ContainerInfo> {
  return startOwn(ctx, job, async () => {
    const config = path.join(job.bundle, 'config.json');
    const size = (await stat(config).catch(() => undefined))?.size;
    if (size === undefined)
      throw new FerryError('InvalidInput', `${job.bundle} is not an OCI bundle: it has no config.json`);
    if (size > MAX_SPEC_BYTES)
      throw new FerryError('InvalidInput', `${config}: ${size} bytes, more than a runtime spec needs`);
    // The trust rule: what it runs is read; its root, mounts, namespaces and the rest are ferry's.
    const facts = specFacts(await readFile(config, 'utf8'), config);
    if (facts.volumes.length || facts.engineFiles.length)
      throw new FerryError(
        'InvalidInput',
        `${config}: mounts: bind mounts are given with --volume, not in the bundle`,
      );
    const source = path.join(job.bundle, 'rootfs');
    if (!(await stat(source).catch(() => undefined))?.isDirectory())
      throw new FerryError('InvalidInput', `${job.bundle} has no rootfs folder`);
    return async (rootfs) => {
      await run('cp', ['-a', '--reflink=auto', `${source}/.`, rootfs], 'SnapshotFailed');
      const env = [
        ...facts.env.filter((e) => !job.env.some((x) => x.split('=')[0] === e.split('=')[0])),
        ...job.env,
      ];
      const devices = await Promise.all(facts.gpuDevices.map((d) => gpuDevice(ctx, d)));
      return {
        args: facts.args,
        env,
        cwd: facts.cwd,
        user: facts.user,
        ...(devices.length ? { devices } : {}),
      };
    };
  });
}
