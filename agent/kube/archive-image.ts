// A pod container's checkpoint archive made a checkpoint OCI image (checkpoint-image.ts), on the
// node that dumped it, or on the target from a streamed dump: the archive the source sent without
// its memory pages, and the pages the target's page server wrote as CRIU dumped.
import { link, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { JobOf } from '../../api/v1alpha1/jobs.ts';
import { FerryError } from '../../lib/errors.ts';
import { exec, run } from '../../lib/exec.ts';
import { checkTreeTar, unpackTreeTar } from '../snapshot/overlay.ts';
import {
  buildCheckpointImage,
  checkpointAnnotations,
  HOST_FILE,
  HostFactsSchema,
  type ConfigDump,
  type HostFacts,
} from './checkpoint-image.ts';

/** config.dump and spec.dump of an unpacked checkpoint archive. */
async function metadataIn(dir: string) {
  const read = async (name: string) =>
    JSON.parse(await readFile(path.join(dir, name), 'utf8')) as Record<string, unknown>;
  return { config: (await read('config.dump')) as ConfigDump, spec: await read('spec.dump') };
}

/** Reads config.dump and spec.dump out of a checkpoint archive. */
async function archiveMetadata(archive: string) {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'ferry-ckpt-'));
  try {
    const r = await exec('tar', [
      '--extract',
      '--file',
      archive,
      '--directory',
      tmp,
      '--no-anchored',
      'config.dump',
      'spec.dump',
    ]);
    if (r.code !== 0)
      throw new FerryError(
        'StreamRejected',
        `${archive} is not a checkpoint archive: ${r.stderr.trim().split('\n').pop()}`,
      );
    return await metadataIn(tmp);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** `archive` made an OCI checkpoint image at `out`, annotated from its own metadata. */
export async function imageOf(
  archive: string,
  out: string,
  ref: string,
  host: HostFacts,
  meta = archiveMetadata(archive),
) {
  const { config, spec } = await meta;
  const annotations = checkpointAnnotations(
    config,
    spec.annotations as Record<string, string> | undefined,
    host,
  );
  return buildCheckpointImage({ archive, out, ref, annotations });
}

/**
 * The checkpoint image of a streamed dump, built here from what arrived: the archive the source
 * sent, with the pages its page server wrote (folder `pages`) linked into its checkpoint/ folder.
 * Idempotent: a retry builds it again from the same files.
 */
export async function imageFromStream(
  base: string,
  img: JobOf<'podImport'>['images'][number] & { pages: string },
): Promise<string> {
  const archive = path.join(base, img.file);
  const work = `${archive}.merge`;
  const merged = `${archive}.merged`;
  const out = `${archive}.oci`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { mode: 0o700 });
  try {
    // Sent by the source agent: checked, as any tree ferry unpacks, before it is written anywhere.
    await checkTreeTar(archive, `the checkpoint archive of ${img.ref}`);
    await unpackTreeTar(archive, work);
    // The source's facts, which the archive carries: this node only builds the image.
    const host = HostFactsSchema.safeParse(
      JSON.parse(await readFile(path.join(work, HOST_FILE), 'utf8').catch(() => 'null')),
    );
    if (!host.success)
      throw new FerryError(
        'StreamRejected',
        `the checkpoint archive of ${img.ref} has no valid ${HOST_FILE}`,
      );
    const pages = path.join(base, img.pages);
    for (const e of await readdir(pages, { withFileTypes: true }))
      if (e.isFile()) await link(path.join(pages, e.name), path.join(work, 'checkpoint', e.name));
    await run('tar', ['--create', '--file', merged, '--directory', work, '.'], 'SnapshotFailed');
    await imageOf(merged, out, img.ref, host.data, metadataIn(work));
    return out;
  } finally {
    await rm(work, { recursive: true, force: true });
    await rm(merged, { force: true });
  }
}
