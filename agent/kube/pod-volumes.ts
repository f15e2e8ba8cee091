// A pod's emptyDir volumes, which live on its node (the kubelet's pods/UID/volumes folder). They
// move as node-local volumes do on the local cluster: whole while the pod runs (podSync, level 0),
// then what changed since while it is frozen (podCheckpoint, level 1), both with GNU tar's
// listed-incremental format, whose level 1 also lists each folder's entries so that unpacking it
// removes what the pod deleted in between. On the target they are written into the replacement's
// folders before it may start (a scheduling gate holds it until then: pod-route.ts), and removed
// again if the replacement is rolled back. Owners, modes and extended attributes are kept.
import { copyFile, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { KubeNode } from '../../api/v1alpha1/cluster.ts';
import { podVolumeFile } from '../../api/v1alpha1/jobs.ts';
import { FerryError } from '../../lib/errors.ts';
import { exists } from '../snapshot/btrfs.ts';
import { backdateRecord, checkTreeTar, packTreeTar, unpackTreeTar } from '../snapshot/overlay.ts';

/** How much earlier than it began level 0 counts as having begun, for level 1 (seconds). */
const RECORD_MARGIN_S = 2;

/** An emptyDir's folder on a node, as the kubelet lays it out. Pure. */
export const emptyDirPath = (kube: KubeNode, podUid: string, volume: string): string =>
  path.join(kube.kubeletDir, 'pods', podUid, 'volumes', 'kubernetes.io~empty-dir', volume);

/** GNU tar's record of what level 0 saw (its "snapshot file"), kept beside the tars. */
const snapshotFile = (base: string, volume: string, level: 0 | 1) =>
  path.join(base, 'pod-images', `volume-${volume}.${level}.snar`);

/**
 * Packs each emptyDir of pod `podUid` into `base`/podVolumeFile(name, level): level 0 whole, level
 * 1 what changed since level 0 (or whole, when no level 0 was taken). Idempotent: a retry packs the
 * same level again from the record level 0 left.
 */
export async function packEmptyDirs(
  kube: KubeNode,
  podUid: string,
  volumes: string[],
  base: string,
  level: 0 | 1,
): Promise<string[]> {
  await mkdir(path.join(base, 'pod-images'), { recursive: true, mode: 0o700 });
  const files = [];
  for (const v of volumes) {
    const from = emptyDirPath(kube, podUid, v);
    if (!(await exists(from)))
      throw new FerryError('SnapshotFailed', `emptyDir ${v} of pod ${podUid} is not at ${from}`);
    // tar rewrites the record it is given: level 1 works on a copy, so level 0's stays as it was.
    const record = snapshotFile(base, v, level);
    await rm(record, { force: true });
    if (level === 1 && (await exists(snapshotFile(base, v, 0))))
      await copyFile(snapshotFile(base, v, 0), record);
    const file = podVolumeFile(v, level);
    await packTreeTar(from, path.join(base, file), record);
    // What the pod writes as level 0 runs must not be missed by level 1 (overlay.ts says why).
    if (level === 0) await backdateRecord(record, RECORD_MARGIN_S);
    files.push(file);
  }
  return files;
}

/**
 * Writes each emptyDir's contents into the replacement's folder: level 0 if it came, then level 1.
 * Idempotent (a retry writes the folder anew).
 */
export async function unpackEmptyDirs(
  kube: KubeNode,
  podUid: string,
  volumes: string[],
  base: string,
): Promise<string[]> {
  const written = [];
  for (const v of volumes) {
    const to = emptyDirPath(kube, podUid, v);
    const levels = [];
    for (const level of [0, 1] as const) {
      const tar = path.join(base, podVolumeFile(v, level));
      if (level === 0 && !(await exists(tar))) continue;
      // Sent by the source agent: checked, as any tree ferry unpacks, before it is written anywhere.
      await checkTreeTar(tar, `emptyDir ${v} (level ${level})`);
      levels.push(tar);
    }
    await rm(to, { recursive: true, force: true });
    await mkdir(to, { recursive: true });
    for (const tar of levels) await unpackTreeTar(tar, to, true);
    written.push(to);
  }
  return written;
}

/** Removes the emptyDir folders written for a replacement that was deleted. */
export async function removeEmptyDirs(kube: KubeNode, podUid: string, volumes: string[]): Promise<void> {
  for (const v of volumes) await rm(emptyDirPath(kube, podUid, v), { recursive: true, force: true });
}
