// OCI images on a node, through kept tools rather than by hand: skopeo copies an image from where
// it is (containers-storage, an OCI layout or archive, a docker archive) into an OCI layout, and
// umoci builds, extends and unpacks layouts (whiteouts, hard links, extended attributes, owners and
// paths that would leave the root are its to handle, with its own checks).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { FerryError } from '../../lib/errors.ts';
import { exec, run } from '../../lib/exec.ts';
import { USERNS_SIZE } from '../runtime/oci-spec.ts';

/** The transports skopeo reads that ferry accepts for an image reference. */
const REF = /^(containers-storage|oci|oci-archive|docker-archive|docker):[^\0\s]{1,512}$/;

/** Why `ref` is not an image reference ferry takes, or undefined. Pure. */
export function imageRefProblem(ref: string): string | undefined {
  if (!REF.test(ref))
    return `${JSON.stringify(ref.slice(0, 80))} is not an image reference (containers-storage:NAME, oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE)`;
  return undefined;
}

/** Copies image `ref` into the OCI layout at `layout` as `tag`; a missing image is named. */
export async function copyImage(ref: string, layout: string, tag: string): Promise<void> {
  const problem = imageRefProblem(ref);
  if (problem) throw new FerryError('InvalidInput', problem);
  const r = await exec('skopeo', ['copy', '--quiet', ref, `oci:${layout}:${tag}`]);
  if (r.code !== 0)
    throw new FerryError(
      'ImageNotFound',
      `image ${ref} cannot be read on this node: ${r.stderr.trim().split('\n').pop() ?? ''}`,
    );
}

/** Adds a layer tar (whiteouts as `.wh.` entries) on top of `tag`, as `newTag`. */
export function addLayer(layout: string, tag: string, layer: string, newTag: string): Promise<string> {
  const args = ['raw', 'add-layer', '--no-history', '--image', `${layout}:${tag}`, '--tag', newTag];
  return run('umoci', [...args, layer], 'SnapshotFailed');
}

/**
 * Unpacks `tag`'s root filesystem into the folder `into` (which may exist, empty); with `hostID`,
 * owners shifted into a user namespace's range (runtime/userns.ts) as they are written.
 */
export function unpackRoot(layout: string, tag: string, into: string, hostID?: number): Promise<string> {
  const map =
    hostID === undefined
      ? []
      : ['--uid-map', `0:${hostID}:${USERNS_SIZE}`, '--gid-map', `0:${hostID}:${USERNS_SIZE}`];
  return run('umoci', ['raw', 'unpack', ...map, '--image', `${layout}:${tag}`, into], 'SnapshotFailed');
}

/**
 * An image of one layer made from `layerTar`, with a fixed creation time and no history, so the
 * same tree gives the same image (and image ID) on every node.
 */
export async function buildImage(layout: string, tag: string, layerTar: string): Promise<void> {
  await run('umoci', ['init', '--layout', layout], 'SnapshotFailed');
  await run('umoci', ['new', '--image', `${layout}:${tag}`], 'SnapshotFailed');
  await addLayer(layout, tag, layerTar, tag);
  const epoch = '1970-01-01T00:00:00Z';
  await run(
    'umoci',
    ['config', '--no-history', '--image', `${layout}:${tag}`, '--created', epoch, '--author', 'ferry'],
    'SnapshotFailed',
  );
}

/** The digest of `tag`'s config in the layout ("sha256:…"). */
async function configDigest(layout: string, tag: string): Promise<string> {
  const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
  };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!entry) throw new FerryError('ImageNotFound', `no ${tag} in ${layout}`);
  const manifest = JSON.parse(await readFile(blob(layout, entry.digest), 'utf8')) as {
    config?: { digest?: string };
  };
  if (typeof manifest.config?.digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(manifest.config.digest))
    throw new FerryError('InvalidInput', `${tag} in ${layout}: its manifest names no config`);
  return manifest.config.digest;
}

const blob = (layout: string, digest: string) => path.join(layout, 'blobs', ...digest.split(':'));

/** The image ID engines show for `tag` (its config's digest, hex). */
export async function imageId(layout: string, tag: string): Promise<string> {
  return (await configDigest(layout, tag)).replace(/^sha256:/, '');
}

/** `tag`'s image config, parsed (checked by its reader: images/image-config.ts). */
export async function imageConfig(layout: string, tag: string): Promise<unknown> {
  return JSON.parse(await readFile(blob(layout, await configDigest(layout, tag)), 'utf8'));
}
