// A containerd pod's container, checkpointed by the agent itself into the archive containerd's CRI
// writes and restores (CheckpointContainer; CreateContainer from a checkpoint image). ferry does
// not ask the kubelet here: containerd's CheckpointContainer pauses the container itself, refuses
// one already paused, dumps it with no TCP connections allowed and always thaws it afterwards (the
// "forensic" checkpoint of KEP-2008), so the source would run on after its state was taken and
// whatever it did then would be lost. Instead the container stays frozen from podFreeze on, runc
// dumps it under containerd's own runc root with ferry's CRIU options, and the archive is written
// in containerd's layout:
//
//   checkpoint/        CRIU's images
//   spec.dump          the container's OCI spec (its bundle's config.json)
//   config.dump        checkpointctl's ContainerConfig (id, name, image and its digest, runtime)
//   status.dump        the CRI ContainerStatus (containerd restores its name, labels, annotations)
//   status             containerd's own record of the container (checkpointctl reads it)
//   rootfs-diff.tar    the overlay snapshot's upper layer, whiteouts as OCI .wh. entries
//   stats-dump         CRIU's dump statistics
//   ferry-host.json    where it was dumped (CRIU version, architecture, kernel): a streamed dump's
//                      image is built on the target, whose annotations must still name the source
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { KubeNode } from '../../api/v1alpha1/cluster.ts';
import { FerryError } from '../../lib/errors.ts';
import { run } from '../../lib/exec.ts';
import { CriClient, type ContainerStatus } from '../../lib/kube/cri.ts';
import type { Runc } from '../runtime/runc.ts';
import { exists } from '../snapshot/btrfs.ts';
import { writeOciLayer } from '../snapshot/overlay.ts';
import { HOST_FILE, type HostFacts } from './checkpoint-image.ts';

/** The CRI's ContainerState numbers, as Go writes them in status.dump. */
const STATE = { CONTAINER_CREATED: 0, CONTAINER_RUNNING: 1, CONTAINER_EXITED: 2, CONTAINER_UNKNOWN: 3 };

/** The upper directory of the overlay mounted at "/" in a process's mountinfo. Pure. */
export function rootUpperDir(mountinfo: string): string | undefined {
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post || pre.split(' ')[4] !== '/') continue;
    const [fstype, , options] = post.split(' ');
    if (fstype !== 'overlay') continue;
    const upper = options?.split(',').find((o) => o.startsWith('upperdir='));
    if (upper) return upper.slice('upperdir='.length);
  }
  return undefined;
}

/** status.dump: the CRI ContainerStatus as containerd writes it (Go's JSON of the proto). Pure. */
export function statusDump(s: ContainerStatus): Record<string, unknown> {
  return {
    id: s.id,
    metadata: { name: s.metadata.name, ...(s.metadata.attempt ? { attempt: s.metadata.attempt } : {}) },
    state: STATE[s.state] ?? 3,
    created_at: s.createdAt,
    started_at: s.startedAt,
    image: { image: s.image?.image ?? '' },
    image_ref: s.imageRef,
    ...(Object.keys(s.labels ?? {}).length ? { labels: s.labels } : {}),
    ...(Object.keys(s.annotations ?? {}).length ? { annotations: s.annotations } : {}),
    log_path: s.logPath,
  };
}

/** config.dump: what checkpointctl and containerd's restore read of the container. Pure. */
export function configDump(
  s: ContainerStatus,
  specAnnotations: Record<string, string>,
  runtime: string,
  now: Date,
): Record<string, unknown> {
  // containerd's own name for a CRI container: container_pod_namespace_poduid_attempt.
  const a = specAnnotations;
  const name = [
    s.metadata.name,
    a['io.kubernetes.cri.sandbox-name'],
    a['io.kubernetes.cri.sandbox-namespace'],
    a['io.kubernetes.cri.sandbox-uid'],
    s.metadata.attempt ?? 0,
  ].join('_');
  return {
    id: s.id,
    name,
    rootfsImage: s.image?.image ?? '',
    rootfsImageRef: s.imageRef,
    rootfsImageName: s.image?.image ?? '',
    runtime,
    createdTime: new Date(s.createdAt / 1e6).toISOString(),
    checkpointedTime: now.toISOString(),
  };
}

/**
 * Dumps one frozen container of a containerd pod into `dir`.tar; it stays frozen (podThaw or the
 * pod's deletion decides). `dump` runs CRIU (through runc) into the images folder it is given: by
 * default whole, there; a streamed dump sends the pages to the target's page server instead, and
 * the archive holds the rest. Resolves to the archive's path.
 */
export async function dumpContainerdContainer(
  runc: Runc,
  kube: KubeNode,
  id: string,
  dir: string,
  host: HostFacts,
  dump: (images: string, work: string) => Promise<void> = (images, work) =>
    runc.checkpointLeavingStopped(id, images, work),
): Promise<string> {
  const st = await runc.state(id);
  if (st?.status !== 'paused' || !st.pid)
    throw new FerryError('ContainerNotFound', `container ${id} is ${st?.status ?? 'absent'}, not frozen`);
  const cri = new CriClient(kube.criSocket);
  let status: ContainerStatus;
  try {
    status = await cri.containerStatus(id);
  } finally {
    cri.close();
  }
  const specText = await readFile(path.join(await runc.bundle(id), 'config.json'), 'utf8');
  const spec = JSON.parse(specText) as { annotations?: Record<string, string> };
  const upper = rootUpperDir(await readFile(`/proc/${st.pid}/mountinfo`, 'utf8'));
  if (!upper)
    throw new FerryError(
      'UnsupportedWorkload',
      `container ${id}'s root is not an overlay snapshot: ferry moves containerd pods on its overlayfs snapshotter`,
    );
  await mkdir(path.join(dir, 'checkpoint'), { recursive: true, mode: 0o700 });
  const work = path.join(dir, 'work');
  await dump(path.join(dir, 'checkpoint'), work);
  // Taken while frozen, like the images: the files the restored processes expect.
  await writeOciLayer(upper, path.join(dir, 'rootfs-diff.tar'));
  if (await exists(path.join(work, 'stats-dump')))
    await copyFile(path.join(work, 'stats-dump'), path.join(dir, 'stats-dump'));
  await rm(work, { recursive: true, force: true });
  const now = new Date();
  const files: Record<string, unknown> = {
    'spec.dump': JSON.parse(specText),
    'config.dump': configDump(status, spec.annotations ?? {}, 'io.containerd.runc.v2', now),
    'status.dump': statusDump(status),
    status: {
      Version: 'v1',
      Pid: st.pid,
      CreatedAt: status.createdAt,
      StartedAt: status.startedAt,
      FinishedAt: 0,
      ExitCode: 0,
      Reason: '',
      Message: '',
      Restore: false,
    },
    [HOST_FILE]: host,
  };
  for (const [name, value] of Object.entries(files))
    await writeFile(path.join(dir, name), JSON.stringify(value), { mode: 0o600 });
  const archive = `${dir}.tar`;
  await run('tar', ['--create', '--file', archive, '--directory', dir, '.'], 'SnapshotFailed');
  await rm(dir, { recursive: true, force: true });
  return archive;
}
