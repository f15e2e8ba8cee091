// Checkpoint OCI images: a checkpoint archive (the kubelet's or ferry's export, see agent/archive.ts)
// as the single layer of an OCI image whose annotations say what it holds, the form CRI-O and
// containerd 2.x restore a container from when a pod names it as its image. The image is written
// as an OCI archive (a tar of an OCI image layout) that the target node's runtime imports
// (importCommand). Annotation names follow checkpointctl's lib/metadata (org.criu.checkpoint.*),
// plus the engine-specific name CRI-O and containerd looked for before those existed.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, link, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { FerryError } from '../../lib/errors.ts';
import { run } from '../../lib/exec.ts';

export const ANNOTATION = {
  engine: 'org.criu.checkpoint.engine.name',
  container: 'org.criu.checkpoint.container.name',
  pod: 'org.criu.checkpoint.pod.name',
  namespace: 'org.criu.checkpoint.pod.namespace',
  rootfsImage: 'org.criu.checkpoint.rootfsImageUserRequested',
  rootfsImageName: 'org.criu.checkpoint.rootfsImageName',
  rootfsImageID: 'org.criu.checkpoint.rootfsImageID',
  runtime: 'org.criu.checkpoint.runtime.name',
  criuVersion: 'org.criu.checkpoint.criu.version',
  hostArch: 'org.criu.checkpoint.host.arch',
  hostKernel: 'org.criu.checkpoint.host.kernel',
  crioName: 'io.kubernetes.cri-o.annotations.checkpoint.name',
  containerdName: 'io.kubernetes.containerd.annotations.checkpoint.name',
} as const;

const MEDIA = {
  layout: '1.0.0',
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar',
} as const;

/** The archive's config.dump: Podman's ContainerConfig, as checkpointctl reads it. */
export interface ConfigDump {
  id?: string;
  name?: string;
  rootfsImage?: string;
  rootfsImageRef?: string;
  rootfsImageName?: string;
  runtime?: string;
}

/** Where a checkpoint was taken, as its image's annotations say. */
export const HostFactsSchema = z.strictObject({
  criuVersion: z.string().max(64),
  arch: z.string().max(32),
  kernel: z.string().max(128),
});
export type HostFacts = z.infer<typeof HostFactsSchema>;
/** The file of a ferry-made containerd archive that holds its HostFacts (containerd-dump.ts). */
export const HOST_FILE = 'ferry-host.json';

/**
 * The image's annotations, from the archive's config.dump and spec.dump. The engine and the pod
 * come from the annotations each runtime puts in the OCI spec: CRI-O sets io.container.manager and
 * io.kubernetes.pod.*, containerd io.kubernetes.cri.*; neither means a ferry or runc container.
 * Pure.
 */
export function checkpointAnnotations(
  config: ConfigDump,
  specAnnotations: Record<string, string> | undefined,
  host: HostFacts,
): Record<string, string> {
  const a = specAnnotations ?? {};
  const manager = a['io.container.manager'];
  const containerd = a['io.kubernetes.cri.container-name'] !== undefined;
  const engine =
    manager === 'cri-o' ? 'cri-o' : manager === 'libpod' ? 'podman' : containerd ? 'containerd' : 'ferry';
  const container =
    a['io.kubernetes.container.name'] ??
    a['io.kubernetes.cri.container-name'] ??
    config.name ??
    config.id ??
    '';
  if (!container)
    throw new FerryError('StreamRejected', 'the archive names no container (config.dump has no name)');
  const out: Record<string, string> = {
    [ANNOTATION.engine]: engine,
    [ANNOTATION.container]: container,
    [ANNOTATION.runtime]: config.runtime ?? 'runc',
    [ANNOTATION.criuVersion]: host.criuVersion,
    [ANNOTATION.hostArch]: host.arch,
    [ANNOTATION.hostKernel]: host.kernel,
    [ANNOTATION.crioName]: container,
    [ANNOTATION.containerdName]: container,
  };
  const pod = a['io.kubernetes.pod.name'] ?? a['io.kubernetes.cri.sandbox-name'];
  const namespace = a['io.kubernetes.pod.namespace'] ?? a['io.kubernetes.cri.sandbox-namespace'];
  if (pod) out[ANNOTATION.pod] = pod;
  if (namespace) out[ANNOTATION.namespace] = namespace;
  if (config.rootfsImage) out[ANNOTATION.rootfsImage] = config.rootfsImage;
  if (config.rootfsImageName) out[ANNOTATION.rootfsImageName] = config.rootfsImageName;
  if (config.rootfsImageRef) out[ANNOTATION.rootfsImageID] = config.rootfsImageRef;
  return out;
}

/** An image reference's tag (what the OCI layout's ref.name carries): "repo:tag" -> "tag". */
export function tagOf(ref: string): string {
  const m = /^(?:[a-zA-Z0-9.-]+(?::\d+)?\/)?(?:[a-z0-9._-]+\/)*[a-z0-9._-]+(?::(\w[\w.-]{0,127}))?$/.exec(
    ref,
  );
  if (!m) throw new FerryError('InvalidInput', `${JSON.stringify(ref)} is not an image reference`);
  return m[1] ?? 'latest';
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  // Read in 1 MiB pieces: half the time of the default 64 KiB on a checkpoint's hundreds of MiB.
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Writes a JSON blob into the layout; resolves to its descriptor. */
async function putJson(blobs: string, mediaType: string, value: unknown) {
  const data = Buffer.from(JSON.stringify(value));
  const hex = createHash('sha256').update(data).digest('hex');
  await writeFile(path.join(blobs, hex), data, { mode: 0o600 });
  return { mediaType, digest: `sha256:${hex}`, size: data.length };
}

/**
 * Builds `out`, an OCI archive holding one image: `archive` as its only layer (uncompressed: CRIU
 * images do not compress well enough to pay for the time here; the transfer compresses when the
 * link is slow), tagged with `ref`'s tag, annotated on the manifest and on the index.
 */
export async function buildCheckpointImage(opts: {
  archive: string;
  out: string;
  ref: string;
  annotations: Record<string, string>;
  created?: Date;
}): Promise<{ manifestDigest: string; bytes: number }> {
  const work = await mkdtemp(`${opts.out}.build-`);
  try {
    const blobs = path.join(work, 'blobs', 'sha256');
    await mkdir(blobs, { recursive: true, mode: 0o700 });
    const layerHex = await sha256File(opts.archive);
    // A hard link when the archive is on the same filesystem: checkpoints can be gigabytes.
    await link(opts.archive, path.join(blobs, layerHex)).catch(() =>
      copyFile(opts.archive, path.join(blobs, layerHex)),
    );
    const layer = {
      mediaType: MEDIA.layer,
      digest: `sha256:${layerHex}`,
      size: (await stat(opts.archive)).size,
    };
    const created = (opts.created ?? new Date()).toISOString();
    const config = await putJson(blobs, MEDIA.config, {
      created,
      architecture: 'amd64',
      os: 'linux',
      config: { Labels: opts.annotations },
      rootfs: { type: 'layers', diff_ids: [layer.digest] },
      history: [{ created, created_by: 'ferry: checkpoint of a running container' }],
    });
    const manifest = await putJson(blobs, MEDIA.manifest, {
      schemaVersion: 2,
      mediaType: MEDIA.manifest,
      config,
      layers: [layer],
      annotations: opts.annotations,
    });
    await writeFile(
      path.join(work, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA.index,
        manifests: [
          {
            ...manifest,
            annotations: { ...opts.annotations, 'org.opencontainers.image.ref.name': tagOf(opts.ref) },
          },
        ],
      }),
      { mode: 0o600 },
    );
    await writeFile(path.join(work, 'oci-layout'), JSON.stringify({ imageLayoutVersion: MEDIA.layout }), {
      mode: 0o600,
    });
    await run(
      'tar',
      [
        '--create',
        '--file',
        opts.out,
        '--directory',
        work,
        '--numeric-owner',
        'oci-layout',
        'index.json',
        'blobs',
      ],
      'SnapshotFailed',
    );
    return { manifestDigest: manifest.digest, bytes: (await stat(opts.out)).size };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export type NodeRuntime = 'containerd' | 'cri-o';

/** Where a node's runtime keeps images: containerd's socket and ctr, CRI-O's containers-storage. */
export interface ImageStores {
  criSocket: string;
  ctr: string;
  imageStore?: { root: string; runRoot: string; driver: string } | undefined;
}

/**
 * The command that imports an OCI archive into a node's runtime image store under `ref`, as an
 * argument array. CRI-O keeps images in containers-storage (skopeo writes there; `imageStore`
 * overrides its location in tests); containerd's are in its k8s.io namespace (ctr). Pure.
 */
export function importCommand(
  runtime: NodeRuntime,
  ociArchive: string,
  ref: string,
  stores: ImageStores,
): [string, ...string[]] {
  if (runtime === 'containerd') {
    const repo = ref.replace(/:[^/:]+$/, '');
    // --local: ctr writes the content and unpacks it itself, rather than through containerd's
    // transfer service (measured here: 0.7 to 1.2 s against 1.7 to 3 s for a 256 MiB checkpoint).
    return [stores.ctr, '--address', stores.criSocket, '--namespace', 'k8s.io'].concat([
      'images',
      'import',
      '--local',
      '--base-name',
      repo,
      ociArchive,
    ]) as [string, ...string[]];
  }
  const storage = stores.imageStore;
  const store = storage ? `[${storage.driver}@${storage.root}+${storage.runRoot}]` : '';
  return [
    'skopeo',
    'copy',
    '--quiet',
    `oci-archive:${ociArchive}:${tagOf(ref)}`,
    `containers-storage:${store}${ref}`,
  ];
}

/** The command that removes a checkpoint image from a node's runtime image store. Pure. */
export function removeImageCommand(
  runtime: NodeRuntime,
  ref: string,
  stores: ImageStores,
): [string, ...string[]] {
  if (runtime === 'containerd')
    return [stores.ctr, '--address', stores.criSocket, '--namespace', 'k8s.io', 'images', 'rm', ref];
  const storage = stores.imageStore;
  const store = storage ? `[${storage.driver}@${storage.root}+${storage.runRoot}]` : '';
  return ['skopeo', 'delete', `containers-storage:${store}${ref}`];
}
