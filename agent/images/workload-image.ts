// The workload image as an OCI image: the tree ferry's own containers start from (workload.ts),
// one layer, built the same on every node, so an exported container's rootfs diff can name an
// image below it as Podman expects (`localhost/ferry-workload:<ID>`), and Podman can be given it.
import { lstat, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run } from '../../lib/exec.ts';
import type { AgentContext } from '../context.ts';
import { exists } from '../snapshot/btrfs.ts';
import { workloadImage } from '../workload.ts';
import { buildImage, imageId } from './oci-image.ts';

export const WORKLOAD_IMAGE = 'localhost/ferry-workload';
const TAG = 'workload';
/** workload.ts marks a finished tree with it; never part of the image. */
const MARK = '.complete';

export interface BaseImage {
  /** The OCI layout holding it, and its tag there. */
  layout: string;
  tag: string;
  /** Its name and ID as Podman shows them once copied into containers-storage. */
  name: string;
  id: string;
  /** The unpacked tree. */
  tree: string;
}

export async function workloadOciImage(ctx: AgentContext): Promise<BaseImage> {
  const tree = await workloadImage(ctx);
  const layout = path.join(ctx.config.fsRoot, 'images', 'oci-workload');
  if (!(await exists(path.join(layout, MARK)))) {
    await rm(layout, { recursive: true, force: true });
    const layer = `${layout}.layer.tar`;
    // Fixed times, owners and order: the same files give the same layer digest on every node.
    await run(
      'tar',
      ['--create', '--file', layer, '--directory', tree, `--exclude=./${MARK}`, '--sort=name'].concat([
        '--mtime=@0',
        '--owner=0',
        '--group=0',
        '--numeric-owner',
        '.',
      ]),
      'SnapshotFailed',
    );
    try {
      await buildImage(layout, TAG, layer);
    } finally {
      await rm(layer, { force: true });
    }
    await writeFile(path.join(layout, MARK), '');
  }
  const id = await imageId(layout, TAG);
  return { layout, tag: TAG, name: `${WORKLOAD_IMAGE}:${id.slice(0, 12)}`, id, tree };
}

/**
 * The paths of `base` (relative) that `root` lacks, as absolute paths: what Podman must delete
 * from the image below when it applies a diff that carries the whole of `root`. A missing folder
 * is named once, not each thing in it.
 */
export async function deletedFrom(base: string, root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for (const name of (await readdir(path.join(base, rel))).sort()) {
      const r = path.join(rel, name);
      if (r === MARK) continue;
      const there = await lstat(path.join(root, r)).catch(() => undefined);
      if (!there) out.push(`/${r}`);
      else if (there.isDirectory() && (await lstat(path.join(base, r))).isDirectory()) await walk(r);
    }
  };
  await walk('');
  return out;
}
