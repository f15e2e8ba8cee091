// The agent's side of the pod path (controller/phases/pod-route.ts): send a pod's emptyDirs while
// it runs, freeze and thaw its containers under the runtime's runc root, checkpoint them (containerd:
// dumped here, the pages streamed to the target; CRI-O: through the kubelet) into checkpoint OCI
// images, send what is left to the target agent, build and import the images into the target
// runtime's store, and clean up. Each job works inside its migration's own folder.
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { JobOf } from '../../api/v1alpha1/jobs.ts';
import type { KubeNode } from '../../api/v1alpha1/cluster.ts';
import { FerryError } from '../../lib/errors.ts';
import { exec, run } from '../../lib/exec.ts';
import type { AgentContext } from '../context.ts';
import { withSession } from '../peers.ts';
import { importCommand, removeImageCommand, type HostFacts, type NodeRuntime } from './checkpoint-image.ts';
import { checkpointContainer } from './kubelet.ts';
import { dumpContainerdContainer } from './containerd-dump.ts';
import { imageFromStream, imageOf } from './archive-image.ts';
import { packEmptyDirs, removeEmptyDirs, unpackEmptyDirs } from './pod-volumes.ts';
import { Runc } from '../runtime/runc.ts';
import { dumpableTotal } from '../preflight.ts';

function kubeOf(ctx: AgentContext): KubeNode {
  if (!ctx.config.kube)
    throw new FerryError(
      'FeatureUnsupported',
      `node ${ctx.config.node} is not a Kubernetes node: it cannot move pods`,
    );
  return ctx.config.kube;
}

/** The runtime a job is for: the one its pod's containerIDs named, else the node's. */
const runtimeOf = (ctx: AgentContext, job: { runtime?: NodeRuntime }): NodeRuntime =>
  job.runtime ?? kubeOf(ctx).runtime;

/**
 * The runc that runs the pod's containers: containerd's shim runs them under its own root; CRI-O's
 * under the agent's configured one (runcRoot, /run/runc for CRI-O).
 */
function runcFor(ctx: AgentContext, runtime: NodeRuntime): Runc {
  return runtime === 'containerd'
    ? new Runc(kubeOf(ctx).runcRoot, ctx.config.criuPath, ctx.runc.keptLogs)
    : ctx.runc;
}

export async function podFreeze(ctx: AgentContext, job: JobOf<'podFreeze'>) {
  const runc = runcFor(ctx, runtimeOf(ctx, job));
  for (const id of job.ids) {
    const st = await runc.state(id);
    if (st?.status === 'running') await runc.pause(id);
    else if (st?.status !== 'paused')
      throw new FerryError(
        'ContainerNotFound',
        `container ${id} on ${ctx.config.node} is ${st?.status ?? 'absent'}`,
      );
  }
  return { frozen: job.ids, frozenAt: new Date().toISOString() };
}

/** Idempotent: a container already running stays so (a rollback may thaw twice). */
export async function podThaw(ctx: AgentContext, job: JobOf<'podThaw'>) {
  const runc = runcFor(ctx, runtimeOf(ctx, job));
  for (const id of job.ids) {
    const st = await runc.state(id);
    if (st?.status === 'paused') await runc.resume(id);
    else if (st?.status !== 'running')
      throw new FerryError(
        'SourceResumeFailed',
        `container ${id} on ${ctx.config.node} is ${st?.status ?? 'absent'}`,
      );
  }
  return { thawed: job.ids };
}

/** This node's CRIU, architecture and kernel, as a checkpoint image's annotations name them. */
const hostFacts = (ctx: AgentContext): HostFacts => ({
  criuVersion: ctx.criuVersion,
  arch: process.arch === 'x64' ? 'amd64' : process.arch,
  kernel: os.release(),
});

/**
 * A checkpoint archive of one pod container, on this node: containerd's are dumped by the agent
 * (containerd-dump.ts says why), CRI-O's through the kubelet's checkpoint API.
 */
async function checkpointArchive(
  ctx: AgentContext,
  job: JobOf<'podCheckpoint'>,
  c: JobOf<'podCheckpoint'>['containers'][number],
  dir: string,
): Promise<string> {
  const kube = kubeOf(ctx);
  if (runtimeOf(ctx, job) === 'containerd') {
    if (!c.id) throw new FerryError('InvalidInput', `podCheckpoint: container ${c.name} has no runtime id`);
    return dumpContainerdContainer(
      runcFor(ctx, 'containerd'),
      kube,
      c.id,
      path.join(dir, `dump-${c.name}`),
      hostFacts(ctx),
    );
  }
  // Read on every use: service account tokens are rotated under the agent's feet.
  const token = (await readFile(kube.tokenFile, 'utf8')).trim();
  return checkpointContainer(
    {
      address: kube.kubeletAddress,
      port: kube.kubeletPort,
      token,
      ...(kube.caFile ? { ca: await readFile(kube.caFile) } : {}),
      insecureSkipTLSVerify: kube.insecureSkipTLSVerify,
    },
    { namespace: job.namespace, pod: job.pod, container: c.name, timeoutSeconds: 600 },
  );
}

/**
 * A containerd pod's container dumped with its pages streamed to the target's page server (folder
 * `pages` there) while CRIU runs; the archive of the rest is sent afterwards (podSend), and the
 * target builds the checkpoint image from both (podImport). Resolves to the bytes streamed.
 */
async function streamedDump(
  ctx: AgentContext,
  uid: string,
  stream: NonNullable<JobOf<'podCheckpoint'>['stream']>,
  id: string,
  dir: string,
  pages: string,
): Promise<{ archive: string; streamed: number }> {
  const runc = runcFor(ctx, 'containerd');
  let streamed = 0;
  // What the page stream will carry, about: progress can say how much is left while frozen.
  const totalBytes = await dumpableTotal(await runc.pids(id));
  const archive = await dumpContainerdContainer(runc, kubeOf(ctx), id, dir, hostFacts(ctx), (images, work) =>
    withSession(
      ctx,
      stream.targetNode,
      uid,
      async (s) => {
        await s.streamDump(
          (port) => runc.checkpointLeavingStopped(id, images, work, { pageServerPort: port }),
          {
            dir: pages,
          },
        );
        streamed = s.bytes;
      },
      { bandwidth: stream.bandwidth, totalBytes },
    ),
  );
  return { archive, streamed };
}

export async function podCheckpoint(ctx: AgentContext, job: JobOf<'podCheckpoint'>) {
  const base = ctx.layout.images(job.migration.uid);
  const dir = path.join(base, 'pod-images');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const started = Date.now();
  const images = [];
  let streamedBytes = 0;
  for (const [i, c] of job.containers.entries()) {
    const file = `pod-images/${c.name}.tar`;
    if (job.stream) {
      if (!c.id || runtimeOf(ctx, job) !== 'containerd')
        throw new FerryError(
          'InvalidInput',
          `podCheckpoint: only a containerd pod's container streams (${c.name})`,
        );
      const pages = `pod-${i}`;
      const dumped = await streamedDump(
        ctx,
        job.migration.uid,
        job.stream,
        c.id,
        path.join(dir, `dump-${c.name}`),
        pages,
      );
      await rename(dumped.archive, path.join(base, file));
      streamedBytes += dumped.streamed;
      images.push({
        container: c.name,
        ref: c.ref,
        file,
        bytes: (await stat(path.join(base, file))).size,
        pages,
      });
      continue;
    }
    const archive = await checkpointArchive(ctx, job, c, dir);
    try {
      const built = await imageOf(archive, path.join(base, file), c.ref, hostFacts(ctx));
      images.push({ container: c.name, ref: c.ref, file, bytes: built.bytes });
    } finally {
      // The kubelet keeps every checkpoint it makes; ferry's copy is in the image now.
      await rm(archive, { force: true });
    }
  }
  const dumpMs = Date.now() - started;
  // Still frozen: what changed in the emptyDirs since podSync packed them whole.
  if (job.emptyDirs.length) {
    if (!job.podUid) throw new FerryError('InvalidInput', 'podCheckpoint: emptyDirs without the pod uid');
    await packEmptyDirs(kubeOf(ctx), job.podUid, job.emptyDirs, base, 1);
  }
  return { images, dumpMs, ...(job.stream ? { streamedBytes } : {}) };
}

/**
 * Sends files of the migration's folder to the target agent, progress counted against their total
 * size; resolves to the bytes sent. Resumed, a file goes on from what an earlier session delivered.
 */
async function sendFiles(
  ctx: AgentContext,
  job: { migration: { uid: string }; targetNode: string; bandwidth?: number | undefined; compress: boolean },
  files: string[],
  resume: boolean,
): Promise<number> {
  const base = ctx.layout.images(job.migration.uid);
  let total = 0;
  for (const f of files) total += (await stat(path.join(base, f))).size;
  return withSession(
    ctx,
    job.targetNode,
    job.migration.uid,
    async (s) => {
      for (const f of files) await s.sendFile(path.join(base, f), f, { resume, compress: job.compress });
      return s.bytes;
    },
    { totalBytes: total, bandwidth: job.bandwidth },
  );
}

/** While the pod runs: its emptyDirs whole, sent ahead so that the freeze sends only what changed. */
export async function podSync(ctx: AgentContext, job: JobOf<'podSync'>) {
  const started = Date.now();
  const files = await packEmptyDirs(
    kubeOf(ctx),
    job.podUid,
    job.emptyDirs,
    ctx.layout.images(job.migration.uid),
    0,
  );
  // Not resumed: a retry packs the folders anew, and an earlier part would no longer match.
  const bytes = await sendFiles(ctx, job, files, false);
  return { bytes, durationMs: Date.now() - started };
}

export async function podSend(ctx: AgentContext, job: JobOf<'podSend'>) {
  return { bytes: await sendFiles(ctx, job, job.files, true) };
}

export async function podImport(ctx: AgentContext, job: JobOf<'podImport'>) {
  const kube = kubeOf(ctx);
  const base = ctx.layout.images(job.migration.uid);
  for (const img of job.images) {
    const started = Date.now();
    const file = img.pages
      ? await imageFromStream(base, { ...img, pages: img.pages })
      : path.join(base, img.file);
    const built = Date.now();
    const [cmd, ...args] = importCommand(runtimeOf(ctx, job), file, img.ref, kube);
    await run(cmd, args, 'RuntimeFailed');
    ctx.log.info({ ref: img.ref, buildMs: built - started, importMs: Date.now() - built }, 'image imported');
  }
  return { imported: job.images.map((i) => i.ref) };
}

/** Idempotent: an image already gone is not an error. */
export async function podRemoveImages(ctx: AgentContext, job: JobOf<'podRemoveImages'>) {
  const kube = kubeOf(ctx);
  for (const ref of job.refs) {
    const [cmd, ...args] = removeImageCommand(runtimeOf(ctx, job), ref, kube);
    const r = await exec(cmd, args);
    if (r.code !== 0 && !/not found|not known|does not exist|unknown image/i.test(r.stderr))
      throw new FerryError('RuntimeFailed', `${cmd} ${args.join(' ')}: ${r.stderr.trim()}`);
  }
  return { removed: job.refs };
}

/** What podVolumes wrote, kept in the migration's folder so that a rollback can remove it. */
const WRITTEN = 'pod-volumes.json';

export async function podVolumes(ctx: AgentContext, job: JobOf<'podVolumes'>) {
  const base = ctx.layout.images(job.migration.uid);
  // Said before writing: a rollback removes even what a failed attempt half wrote.
  await writeFile(
    path.join(base, WRITTEN),
    JSON.stringify({ podUid: job.podUid, emptyDirs: job.emptyDirs }),
    { mode: 0o600 },
  );
  const written = await unpackEmptyDirs(kubeOf(ctx), job.podUid, job.emptyDirs, base);
  return { podUid: job.podUid, written };
}

export async function podCleanup(ctx: AgentContext, job: JobOf<'podCleanup'>) {
  const record = path.join(ctx.layout.images(job.migration.uid), WRITTEN);
  const written = job.rollback ? await readFile(record, 'utf8').catch(() => undefined) : undefined;
  if (written) {
    const w = JSON.parse(written) as { podUid: string; emptyDirs: string[] };
    await removeEmptyDirs(kubeOf(ctx), w.podUid, w.emptyDirs);
  }
  await rm(ctx.layout.images(job.migration.uid), { recursive: true, force: true });
  return { cleaned: job.migration.uid };
}
