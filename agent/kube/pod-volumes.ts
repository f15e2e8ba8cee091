// A pod's emptyDir volumes, which live on its node (the kubelet's pods/UID/volumes folder): packed
// on the source while the pod is frozen, written into the replacement's folders on the target
// before the replacement may start (it is held by a scheduling gate until then: pod-route.ts), and
// removed again if the replacement is rolled back. Owners, modes and extended attributes are kept.
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { KubeNode } from '../../api/v1alpha1/cluster.ts';
import { podVolumeFile } from '../../api/v1alpha1/jobs.ts';
import { FerryError } from '../../lib/errors.ts';
import { exists } from '../snapshot/btrfs.ts';
import { checkTreeTar, packTreeTar, unpackTreeTar } from '../snapshot/overlay.ts';

/** An emptyDir's folder on a node, as the kubelet lays it out. Pure. */
export const emptyDirPath = (kube: KubeNode, podUid: string, volume: string): string =>
  path.join(kube.kubeletDir, 'pods', podUid, 'volumes', 'kubernetes.io~empty-dir', volume);

/** Packs each emptyDir of pod `podUid` into `base`/podVolumeFile(name). */
export async function packEmptyDirs(
  kube: KubeNode,
  podUid: string,
  volumes: string[],
  base: string,
): Promise<string[]> {
  const files = [];
  for (const v of volumes) {
    const from = emptyDirPath(kube, podUid, v);
    if (!(await exists(from)))
      throw new FerryError('SnapshotFailed', `emptyDir ${v} of pod ${podUid} is not at ${from}`);
    const file = podVolumeFile(v);
    await packTreeTar(from, path.join(base, file));
    files.push(file);
  }
  return files;
}

/** Writes each emptyDir's contents into the replacement's folder; idempotent (a retry rewrites it). */
export async function unpackEmptyDirs(
  kube: KubeNode,
  podUid: string,
  volumes: string[],
  base: string,
): Promise<string[]> {
  const written = [];
  for (const v of volumes) {
    const to = emptyDirPath(kube, podUid, v);
    // Sent by the source agent: checked, as any tree ferry unpacks, before it is written anywhere.
    const tar = path.join(base, podVolumeFile(v));
    await checkTreeTar(tar, `emptyDir ${v}`);
    await rm(to, { recursive: true, force: true });
    await mkdir(to, { recursive: true });
    await unpackTreeTar(tar, to);
    written.push(to);
  }
  return written;
}

/** Removes the emptyDir folders written for a replacement that was deleted. */
export async function removeEmptyDirs(kube: KubeNode, podUid: string, volumes: string[]): Promise<void> {
  for (const v of volumes) await rm(emptyDirPath(kube, podUid, v), { recursive: true, force: true });
}
