// The test programs ferry runs on its local cluster: the memory-and-file workload, the kernel-feature
// list and the echo server, each a runc container built from busybox, and their self-checks.
// Container lifecycle the migration path needs is in runtime/containers.ts.
import { chmod, copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { JobOf } from '../api/v1alpha1/jobs.ts';
import type { ContainerInfo } from '../api/v1alpha1/job-results.ts';
import { FerryError } from '../lib/errors.ts';
import type { AgentContext } from './context.ts';
import { buildOciSpec, type Device, DEFAULT_ENV } from './runtime/oci-spec.ts';
import { gpuDevice } from './gpu/gpu-node.ts';
import { deviceNode } from './runtime/device-node.ts';
import { isGpuDevice } from './gpu/gpu-rules.ts';
import { createNetns } from './runtime/container-net.ts';
import {
  cgroupsPathFor,
  mountContainerOverlay,
  refuseTaken,
  removeContainer,
  ROOT_MODE,
} from './runtime/containers.ts';
import { createSubvolume, exists } from './snapshot/btrfs.ts';

export const VERIFY_FILE = 'data/verify.txt';
/** Says it is ready (as the other workloads do), then echoes every connection on port 7000. */
const ECHO_SERVER = 'touch /data/ready; exec /bin/busybox nc -ll -p 7000 -e /bin/busybox cat';

/** Creates the bundle of the test workload (busybox + the workload binary) and starts it. */
export async function runWorkload(ctx: AgentContext, job: JobOf<'run'>): Promise<ContainerInfo> {
  const { layout, runc } = ctx;
  const bundle = layout.bundle(job.container);
  await refuseTaken(ctx, job.container);
  try {
    await createBundle(ctx, job);
    await runc.run(job.container, bundle);
    // The workload writes /data/ready once its memory is filled; wait so callers see a settled state.
    const ready = path.join(layout.rootfs(job.container), 'data/ready');
    for (let i = 0; i < 600 && !(await exists(ready)); i++) await sleep(100);
  } catch (err) {
    await removeContainer(ctx, job.container).catch(() => undefined); // leave nothing half-made
    throw err;
  }
  const st = await runc.state(job.container);
  if (!st || st.status !== 'running')
    throw new FerryError('RuntimeFailed', `container ${job.container} did not stay running`);
  return st;
}

async function createBundle(ctx: AgentContext, job: JobOf<'run'>): Promise<void> {
  const bundle = ctx.layout.bundle(job.container);
  await mkdir(bundle, { recursive: true, mode: 0o700 });
  const rootfs = ctx.layout.rootfs(job.container);
  if (job.rootfs === 'overlay') {
    // An image below (the same on every node), the container's changes in an upper directory.
    await mountContainerOverlay(ctx, job.container, await workloadImage(ctx));
  } else {
    await createSubvolume(rootfs);
    await fillWorkloadTree(ctx, rootfs);
    await chmod(rootfs, ROOT_MODE);
  }
  const selfDir = await ctx.self.listen(job.container);
  for (const v of job.volumes) {
    await mkdir(ctx.layout.volumes(job.container), { recursive: true, mode: 0o700 });
    await createSubvolume(ctx.layout.volume(job.container, v.name));
  }
  const spec = buildOciSpec({
    selfDir,
    ...(job.env.length ? { env: [...DEFAULT_ENV, ...job.env] } : {}),
    volumes: job.volumes.map((v) => ({
      source: ctx.layout.volume(job.container, v.name),
      destination: v.path,
    })),
    // The feature workload mounts a tmpfs of its own after it starts (its own mount tree).
    extraCaps: job.program === 'features' ? ['CAP_SYS_ADMIN'] : [],
    ...(job.address
      ? {
          network: {
            path: `/run/netns/${await createNetns(ctx, job.container, job.address, true)}`,
            address: job.address,
          },
        }
      : {}),
    args:
      job.program === 'echo'
        ? ['/bin/busybox', 'sh', '-c', ECHO_SERVER]
        : job.program === 'features'
          ? ['/bin/features', '--dir', '/data']
          : [
              '/bin/workload',
              '--mem-mib',
              String(job.memoryMiB),
              '--interval-ms',
              String(job.intervalMs),
              '--dir',
              '/data',
              ...job.open.flatMap((p) => ['--open', p]),
            ],
    cgroupsPath: cgroupsPathFor(ctx, job.container),
    hostname: job.container,
    // NVIDIA's nodes from where this node keeps them (a test cluster's fakes are elsewhere).
    devices: await Promise.all(job.devices.map((d) => (isGpuDevice(d) ? gpuDevice(ctx, d) : hostDevice(d)))),
  });
  await writeFile(path.join(bundle, 'config.json'), JSON.stringify(spec, null, 2), { mode: 0o600 });
}

/** A host device node as the OCI spec describes it. */
async function hostDevice(p: string): Promise<Device> {
  const d = await deviceNode(p);
  if (!d) throw new FerryError('InvalidInput', `${p} is not a device`);
  return d;
}

/** Sends SIGUSR1 to a test workload and returns the report it writes to `file` in answer. */
async function askWorkload(ctx: AgentContext, container: string, file: string): Promise<string> {
  const st = await ctx.runc.state(container);
  if (!st || st.status !== 'running') {
    throw new FerryError(
      'ContainerNotFound',
      `container ${container} is not running on ${ctx.config.node} (${st?.status ?? 'absent'})`,
    );
  }
  const report = path.join(ctx.layout.rootfs(container), file);
  await rm(report, { force: true });
  await ctx.runc.kill(container, 'USR1');
  for (let i = 0; i < 1200; i++) {
    if (await exists(report)) return (await readFile(report, 'utf8')).trim();
    await sleep(50);
  }
  throw new FerryError('Internal', `workload ${container} did not answer its verification request`);
}

/** The memory-and-file workload checks itself: its verdict line and counter. */
export async function verifyWorkload(ctx: AgentContext, job: JobOf<'verify'>) {
  const line = await askWorkload(ctx, job.container, VERIFY_FILE);
  const counter = /n=(\d+)/.exec(line)?.[1];
  return { pass: line.startsWith('PASS'), line, ...(counter ? { counter: Number(counter) } : {}) };
}

/** The kernel-feature workload checks every feature: one `name PASS|FAIL why` line each. */
export async function verifyFeatures(ctx: AgentContext, job: JobOf<'verifyFeatures'>) {
  const text = await askWorkload(ctx, job.container, 'data/features.txt');
  return Object.fromEntries(
    text
      .split('\n')
      .filter((l) => l && l !== 'done')
      .map((l) => {
        const [name = '', verdict = '', ...why] = l.split(' ');
        return [
          name,
          verdict === 'PASS' ? 'PASS' : `${verdict === 'SKIP' ? 'SKIP' : 'FAIL'} ${why.join(' ')}`,
        ];
      }),
  );
}

/** busybox and the test programs, and the folders a container needs, in `root`. */
async function fillWorkloadTree(ctx: AgentContext, root: string): Promise<void> {
  for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp', 'data', 'mnt'])
    await mkdir(path.join(root, d), { recursive: true });
  for (const [src, name] of [
    [ctx.config.busybox, 'busybox'],
    [ctx.config.workloadBinary, 'workload'],
    [ctx.config.featuresBinary, 'features'],
    [ctx.config.ferryctlBinary, 'ferryctl'],
  ] as const) {
    await copyFile(src, path.join(root, 'bin', name));
    await chmod(path.join(root, 'bin', name), 0o755);
  }
}

/**
 * The read-only image below overlay containers: built the same way on every node from the same
 * installed files, so only a container's own changes ever need to move.
 */
export async function workloadImage(ctx: AgentContext): Promise<string> {
  const image = path.join(ctx.config.fsRoot, 'images', 'workload');
  if (!(await exists(path.join(image, '.complete')))) {
    await rm(image, { recursive: true, force: true });
    await mkdir(image, { recursive: true, mode: 0o755 });
    await fillWorkloadTree(ctx, image);
    await writeFile(path.join(image, '.complete'), '');
  }
  return image;
}

/** Runs the container's /bin/ferryctl to ask its agent for a move, as the workload itself would. */
export async function selfRequest(ctx: AgentContext, job: JobOf<'selfRequest'>) {
  const r = await ctx.runc.exec(job.container, ['/bin/ferryctl', 'migrate', job.target]);
  const answer = JSON.parse(r.stdout.trim() || '{}') as { ok?: boolean; migration?: string; error?: string };
  if (!answer.ok)
    throw new FerryError('InvalidInput', `the agent refused the request: ${answer.error ?? r.stderr.trim()}`);
  return { ok: true, migration: answer.migration };
}
