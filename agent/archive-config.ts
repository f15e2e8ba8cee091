// What a checkpoint archive says of its container besides its spec, in Podman's shape (which ferry
// writes too, so that `podman container restore --import` reads ferry's archives):
//   config.dump    libpod's container config: ferry reads only the image below the rootfs diff
//                  (rootfsImageID, rootfsImageName) and writes the fields Podman needs to restore
//   deleted.files  a JSON list of absolute paths deleted from that image (absent: none)
// Pure: reading, checking and writing the documents; archive.ts does the I/O.
import path from 'node:path';
import { z } from 'zod';
import { FerryError } from '../lib/errors.ts';
import { formatIssues } from '../api/v1alpha1/issues.ts';

const ArchiveConfigSchema = z.looseObject({
  id: z.string().max(128).optional(),
  name: z.string().max(256).optional(),
  rootfsImageID: z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'an image ID: 64 hex digits')
    .optional(),
  rootfsImageName: z
    .string()
    .max(512)
    .regex(/^[^\s\0]+$/, 'an image name')
    .optional(),
});
export type ArchiveConfig = z.infer<typeof ArchiveConfigSchema>;

/** config.dump's facts, checked; `raw` is the file's text. */
export function readArchiveConfig(raw: string): ArchiveConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new FerryError('StreamRejected', 'config.dump: not JSON');
  }
  const r = ArchiveConfigSchema.safeParse(parsed);
  if (!r.success) throw new FerryError('StreamRejected', `config.dump: ${formatIssues(r.error.issues)}`);
  return r.data;
}

/** More paths than any image a container deletes from. */
export const MAX_DELETED = 100_000;

/**
 * deleted.files, checked: empty or absent means none; else a JSON list of absolute paths, each
 * normalised, inside the root and not the root itself. Returned relative to the root.
 */
export function readDeletedFiles(raw: string): string[] {
  const text = raw.trim();
  if (text === '') return [];
  const refuse = (why: string): never => {
    throw new FerryError('StreamRejected', `deleted.files: ${why}`);
  };
  let list: unknown;
  try {
    list = JSON.parse(text);
  } catch {
    return refuse('not JSON (Podman writes a JSON list of absolute paths)');
  }
  if (!Array.isArray(list)) return refuse('not a JSON list');
  if (list.length > MAX_DELETED) refuse(`${list.length} paths, more than ${MAX_DELETED}`);
  return list.map((p: unknown) => {
    if (
      typeof p !== 'string' ||
      !p.startsWith('/') ||
      p === '/' ||
      p.includes('\0') ||
      path.posix.normalize(p) !== p.replace(/\/+$/, '') ||
      p.split('/').includes('..')
    )
      return refuse(`${JSON.stringify(p).slice(0, 120)} is not a path inside the root`);
    return p.slice(1).replace(/\/+$/, '');
  });
}

/** Where rootful Podman binds a named volume from. */
export const podmanVolumePath = (name: string): string => `/var/lib/containers/storage/volumes/${name}/_data`;

/** A folder ferry binds in from its node, carried in an archive as a Podman named volume. */
export interface ArchiveVolume {
  /** The volume's name in the archive (volumes/<volume>.tar) and in Podman. */
  volume: string;
  destination: string;
  /** ferry's node-local volume it holds; none for the self-service folder (carried empty). */
  name?: string;
}

/**
 * The spec.dump ferry writes: its own spec, each folder bound in from the node (node-local volumes,
 * the self-service folder) named as a Podman named volume instead. CRIU recorded those mounts and
 * needs them again on restore: Podman makes named volumes from the archive on any host, where the
 * node's own folders would not exist.
 */
export function specForArchive(
  spec: Record<string, unknown>,
  container: string,
  selfMount: string,
  volumeOf: (m: Record<string, unknown>) => string | undefined,
): { spec: Record<string, unknown>; volumes: ArchiveVolume[] } {
  const volumes: ArchiveVolume[] = [];
  const mounts = ((spec.mounts ?? []) as Array<Record<string, unknown>>).map((m) => {
    const name = volumeOf(m);
    const self = m.type === 'bind' && m.destination === selfMount;
    if (!name && !self) return m;
    const volume = `ferry-${container}-${name ?? 'self'}`;
    volumes.push({ volume, destination: String(m.destination), ...(name ? { name } : {}) });
    return { ...m, source: podmanVolumePath(volume) };
  });
  // checkpointctl names the engine from io.container.manager (it knows libpod, cri-o and, for any
  // other, containerd) and such a container from the CRI's name annotation.
  const annotations = {
    ...((spec.annotations ?? {}) as Record<string, string>),
    'io.container.manager': 'ferry',
    'io.kubernetes.cri.container-name': container,
  };
  return { spec: { ...spec, annotations, mounts }, volumes };
}

export interface LibpodConfigInput {
  /** 64 hex digits, new for each archive. */
  id: string;
  name: string;
  args: string[];
  image: { name: string; id: string };
  volumes: ArchiveVolume[];
  node: string;
  now: string;
}

/**
 * The config.dump ferry writes: the fields `podman container restore --import` reads (Podman 4.3:
 * its image to pull if missing, the command it shows, its runtime and network), and where it came
 * from. The ID is new: Podman names the restored container by it unless given --name.
 */
export function libpodConfig(c: LibpodConfigInput): Record<string, unknown> {
  return {
    id: c.id,
    name: c.name,
    RawImageName: c.image.name,
    rootfsImageName: c.image.name,
    rootfsImageID: c.image.id,
    command: c.args,
    namedVolumes: c.volumes.map((v) => ({ volumeName: v.volume, dest: v.destination, options: [] })),
    createWorkingDir: true,
    createNetNS: true,
    networkMode: 'bridge',
    stopSignal: 15,
    stopTimeout: 10,
    runtime: 'runc',
    cgroupManager: 'cgroupfs',
    logDriver: 'k8s-file',
    umask: '0022',
    createdTime: c.now,
    checkpointedTime: c.now,
    restored: false,
    ferryNode: c.node,
  };
}
