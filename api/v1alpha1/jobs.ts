// Jobs the controller (and the CLI) give agents over the work bus, and what agents answer.
// Every job payload is parsed with these schemas on the agent before anything runs.
import { z } from 'zod';
import { GpuUseSchema } from './gpu.ts';
import { CompressionSchema, ModeSchema, NameSchema, VolumeDriverSchema } from './migration.ts';

/** What moves: a runc container, or a bare process tree (agent/workloads/ has one file each). */
export const WorkloadKindSchema = z.enum(['container', 'process']);
export type WorkloadKindName = z.infer<typeof WorkloadKindSchema>;

const MigrationRef = z.strictObject({
  /** Migration uid: names image folders, snapshots and job ids, so retries find their own work. */
  uid: z.string().regex(/^[a-z0-9-]{8,64}$/),
  name: z.string(),
  /** The workload kind that runs every step; a process tree also names its root's PID. */
  workload: WorkloadKindSchema.default('container'),
  /** A bare process tree (spec.source.pid) rather than a container. */
  pid: z.number().int().min(2).optional(),
});

/** A volume that moves with the workload ('rootfs', or a node-local volume), and its driver. */
export const VolumeRefSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9-]{1,32}$/),
  driver: VolumeDriverSchema,
});
export type VolumeRef = z.infer<typeof VolumeRefSchema>;
/** The volumes a step acts on, as preflight found them; each names its driver, nothing is inferred. */
const Volumes = z.array(VolumeRefSchema).max(9).default([]);

/** A container id as runc knows it under a Kubernetes runtime's root (hex). */
const RuntimeIdSchema = z.string().regex(/^[0-9a-f]{12,64}$/, 'a runtime container id (hex)');
/** A Kubernetes node's container runtime, as a pod's containerIDs name it (containerd://, cri-o://). */
export const PodRuntime = z.enum(['containerd', 'cri-o']);
/** A checkpoint image reference ferry makes: localhost/ferry-checkpoint/CONTAINER:TAG. */
const ImageRefSchema = z.string().regex(/^localhost\/ferry-checkpoint\/[a-z0-9-]{1,63}:[a-z0-9]{1,32}$/);
/**
 * A file a pod's move sends, inside the migration's folder on a node: pod-images/CONTAINER.tar (a
 * checkpoint image or archive) or an emptyDir's tar (podVolumeFile). No slash past the folder.
 */
export const PodImageFileSchema = z.string().regex(/^pod-images\/[a-z0-9][a-z0-9.-]{0,79}\.tar$/);
/**
 * The tars a pod's emptyDir travels in, beside its checkpoint images (GNU tar's listed-incremental
 * levels): 0, the whole folder while the pod runs; 1, what changed since, taken while it is frozen.
 * Pure.
 */
export const podVolumeFile = (volume: string, level: 0 | 1): string =>
  `pod-images/volume-${volume}.${level}.tar`;
/** The folder a container's streamed pages land in on the target: pod-N, N its index in the pod. */
export const PageDirSchema = z.string().regex(/^pod-[0-9]{1,2}$/);
/** A pod's uid, as the API server gives it. */
const PodUidSchema = z.string().regex(/^[0-9a-f-]{1,64}$/, "a pod's uid");

/** How a checkpoint moves memory; Auto is resolved by the controller before any checkpoint. */
export const MemoryModeSchema = ModeSchema.exclude(['Auto']);
export type MemoryMode = z.infer<typeof MemoryModeSchema>;

/** Node-local volumes: a btrfs subvolume each, mounted at `path`, moved with the container. */
const VolumesSchema = z
  .array(
    z.strictObject({
      // 'rootfs' names the root filesystem wherever volumes are listed with it.
      name: z
        .string()
        .regex(/^[a-z0-9-]{1,32}$/)
        .refine((n) => n !== 'rootfs', 'rootfs is the root filesystem, not a volume name'),
      path: z.string().startsWith('/'),
    }),
  )
  .max(4)
  .default([]);

/** What a container of the user's own (an image's, a bundle's) is given besides what it runs. */
const OwnContainer = {
  /** NAME=VALUE, over the image's or the bundle's own environment. */
  env: z
    .array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*=/, 'NAME=VALUE'))
    .max(256)
    .default([]),
  address: z.ipv4().optional(),
  volumes: VolumesSchema,
};

export const JobSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('run'),
    container: NameSchema,
    /**
     * workload: memory and a counter file; features: the kernel-feature list (workload/features.c);
     * echo: a TCP echo server on port 7000 (busybox nc), for connections that must survive a move.
     */
    program: z.enum(['workload', 'features', 'echo']).default('workload'),
    /**
     * An address of its own on the cluster network (in the nodes' subnet), which moves with it;
     * without one the container has a network namespace with loopback only.
     */
    address: z.ipv4().optional(),
    /** btrfs: a subvolume of its own; overlay: the node's workload image below, its changes above. */
    rootfs: z.enum(['btrfs', 'overlay']).default('btrfs'),
    volumes: VolumesSchema,
    memoryMiB: z.number().int().min(1).max(65536),
    intervalMs: z.number().int().min(1).max(60000).default(20),
    /** Host device nodes to give the container (tests: a device ferry must refuse to move). */
    devices: z
      .array(z.string().regex(/^\/dev\/[a-z0-9/_-]+$/))
      .max(8)
      .default([]),
    /** Paths the workload keeps open, inside the container. */
    open: z.array(z.string().startsWith('/')).max(8).default([]),
    /** Environment beyond PATH and HOME (tests: the fake CUDA helper's process identity). */
    env: z
      .array(z.string().regex(/^[A-Z_][A-Z0-9_]*=/))
      .max(8)
      .default([]),
  }),
  /** A container from an OCI image (agent/images/run-image.ts), as `podman run -d` starts one. */
  z.strictObject({
    kind: z.literal('runImage'),
    container: NameSchema,
    /** skopeo's transports: containers-storage:, oci:, oci-archive:, docker-archive:, docker://. */
    image: z.string().min(1).max(600),
    /** Replaces the image's Cmd; its Entrypoint stays (as `podman run IMAGE CMD…`). */
    command: z
      .array(z.string().max(32 * 1024))
      .min(1)
      .max(256)
      .optional(),
    /** The host's users instead of a user namespace of its own (runtime/userns.ts). */
    hostUsers: z.boolean().default(false),
    ...OwnContainer,
  }),
  /** A container from an OCI runtime bundle on the node (config.json and rootfs/), as `runc run` runs one. */
  z.strictObject({
    kind: z.literal('runBundle'),
    container: NameSchema,
    bundle: z.string().startsWith('/').max(1024),
    ...OwnContainer,
  }),
  z.strictObject({ kind: z.literal('verify'), container: NameSchema }),
  z.strictObject({ kind: z.literal('verifyFeatures'), container: NameSchema }),
  /** Runs the container's own /bin/ferryctl to ask for a move (tests of self-checkpoint). */
  z.strictObject({ kind: z.literal('selfRequest'), container: NameSchema, target: NameSchema }),
  z.strictObject({ kind: z.literal('list') }),
  /** A checkpoint archive of a container (Podman's and the kubelet's layout), on this node. */
  z.strictObject({ kind: z.literal('export'), container: NameSchema, stop: z.boolean().default(false) }),
  /** Restores a container from a checkpoint archive at this absolute path on the node. */
  z.strictObject({
    kind: z.literal('import'),
    container: NameSchema,
    archive: z.string().startsWith('/'),
    /** The image below a Podman archive's rootfs diff; default: containers-storage:<its rootfsImageID>. */
    image: z.string().max(600).optional(),
  }),
  z.strictObject({ kind: z.literal('remove'), container: NameSchema }),
  /** A container's stdout and stderr from byte `from` on, at most `max` bytes (`ferry logs`). */
  z.strictObject({
    kind: z.literal('logs'),
    container: NameSchema,
    from: z.number().int().min(0).default(0),
    max: z
      .number()
      .int()
      .min(1)
      .max(4 << 20)
      .default(1 << 20),
  }),
  /** A command run inside a running container (`ferry exec`), its output returned. */
  z.strictObject({
    kind: z.literal('exec'),
    container: NameSchema,
    command: z
      .array(z.string().max(32 * 1024))
      .min(1)
      .max(256),
  }),
  z.strictObject({
    kind: z.literal('preflightSource'),
    migration: MigrationRef,
    container: NameSchema,
    /** When set, the source also measures its link to this node (Auto weighs the rate). */
    targetNode: NameSchema.optional(),
  }),
  z.strictObject({
    kind: z.literal('preflightTarget'),
    migration: MigrationRef,
    container: NameSchema,
    /** What the source's preflight found, for the target to check itself against. */
    requirements: z
      .strictObject({
        /** CRIU's cpuinfo image of the source, base64: `criu cpuinfo check` runs on it. */
        cpuinfo: z.string().max(65536).optional(),
        memoryBytes: z.number().int().min(0).optional(),
        rootfsBytes: z.number().int().min(0).optional(),
        /** A GPU workload: the target checks its GPUs, driver and device nodes against these. */
        gpu: GpuUseSchema.optional(),
      })
      .default({}),
  }),
  z.strictObject({
    kind: z.literal('sync'),
    migration: MigrationRef,
    container: NameSchema,
    volumes: Volumes,
    targetNode: NameSchema,
    /** spec.strategy.bandwidth in bytes per second; unlimited when absent. */
    bandwidth: z.number().int().min(1).optional(),
    /** spec.strategy.compression; Auto weighs each item against linkBytesPerSecond. */
    compression: CompressionSchema.default('None'),
    /** The link rate preflight measured, capped by the bandwidth limit. */
    linkBytesPerSecond: z.number().min(1).optional(),
  }),
  z.strictObject({
    kind: z.literal('checkpoint'),
    migration: MigrationRef,
    container: NameSchema,
    volumes: Volumes,
    /**
     * StopAndCopy streams the pages to the target's page server as CRIU dumps; PostCopy dumps all
     * but the anonymous memory and serves that lazily; PreCopy first runs pre-dump rounds.
     */
    mode: MemoryModeSchema.default('StopAndCopy'),
    targetNode: NameSchema,
    bandwidth: z.number().int().min(1).optional(),
    /** PreCopy: the most pre-dump rounds before the final freeze. */
    maxIterations: z.number().int().min(1).max(64).default(8),
    /**
     * A step taken while the source is frozen is stopped (its processes killed) and failed once it
     * runs this long: a hung CRIU or link never keeps the workload frozen for longer.
     */
    deadlineMs: z.number().int().min(1000).optional(),
  }),
  z.strictObject({
    kind: z.literal('transfer'),
    migration: MigrationRef,
    container: NameSchema,
    volumes: Volumes,
    targetNode: NameSchema,
    /** spec.strategy.bandwidth in bytes per second; unlimited when absent. */
    bandwidth: z.number().int().min(1).optional(),
    /** spec.strategy.compression; Auto weighs each item against linkBytesPerSecond. */
    compression: CompressionSchema.default('None'),
    /** The link rate preflight measured, capped by the bandwidth limit. */
    linkBytesPerSecond: z.number().min(1).optional(),
    /**
     * A step taken while the source is frozen is stopped (its processes killed) and failed once it
     * runs this long: a hung CRIU or link never keeps the workload frozen for longer.
     */
    deadlineMs: z.number().int().min(1000).optional(),
  }),
  z.strictObject({
    kind: z.literal('restore'),
    migration: MigrationRef,
    container: NameSchema,
    volumes: Volumes,
    /** PostCopy: the memory is pulled from this node's lazy page server as the workload runs. */
    lazy: z.strictObject({ sourceNode: NameSchema, port: z.number().int().min(1).max(65535) }).optional(),
    /**
     * A step taken while the source is frozen is stopped (its processes killed) and failed once it
     * runs this long: a hung CRIU or link never keeps the workload frozen for longer.
     */
    deadlineMs: z.number().int().min(1000).optional(),
  }),
  z.strictObject({ kind: z.literal('verifyTarget'), migration: MigrationRef, container: NameSchema }),
  z.strictObject({
    kind: z.literal('cleanupSource'),
    migration: MigrationRef,
    container: NameSchema,
    volumes: Volumes,
    keepImages: z.boolean().default(false),
  }),
  z.strictObject({
    kind: z.literal('cleanupTarget'),
    migration: MigrationRef,
    container: NameSchema,
    volumes: Volumes,
  }),
  z.strictObject({
    kind: z.literal('resumeSource'),
    migration: MigrationRef,
    container: NameSchema,
    volumes: Volumes,
    /**
     * Once the source handed the workload over (its transfer completed), why it may run again: the
     * target removed its copy, or the target node is fenced. The source refuses without one.
     */
    release: z.enum(['targetRemoved', 'targetFenced']).optional(),
  }),
  z.strictObject({
    kind: z.literal('rollbackTarget'),
    migration: MigrationRef,
    container: NameSchema,
    volumes: Volumes,
  }),
  // The pod path (controller/kube/pod-migration.ts). Container ids are the runtime's (runc's); the
  // runtime is the one the pod's containerIDs name, the node's configured one when absent.
  z.strictObject({
    kind: z.literal('podFreeze'),
    migration: MigrationRef,
    ids: z.array(RuntimeIdSchema).min(1),
    runtime: PodRuntime.optional(),
  }),
  z.strictObject({
    kind: z.literal('podThaw'),
    migration: MigrationRef,
    ids: z.array(RuntimeIdSchema).min(1),
    runtime: PodRuntime.optional(),
  }),
  /** While the pod runs: each emptyDir whole (level 0), sent to the target ahead of the freeze. */
  z.strictObject({
    kind: z.literal('podSync'),
    migration: MigrationRef,
    targetNode: NameSchema,
    podUid: PodUidSchema,
    emptyDirs: z.array(NameSchema).min(1),
    bandwidth: z.number().int().min(1).optional(),
    compress: z.boolean().default(false),
  }),
  z.strictObject({
    kind: z.literal('podCheckpoint'),
    migration: MigrationRef,
    namespace: NameSchema,
    pod: NameSchema,
    containers: z
      .array(z.strictObject({ name: NameSchema, ref: ImageRefSchema, id: RuntimeIdSchema.optional() }))
      .min(1),
    runtime: PodRuntime.optional(),
    /** The pod's emptyDir volumes, packed while it is frozen from the kubelet's folder of pod `podUid`. */
    podUid: PodUidSchema.optional(),
    emptyDirs: z.array(NameSchema).default([]),
    /**
     * A containerd pod's memory streamed to this node's page server while CRIU dumps (the target
     * builds each checkpoint image from what arrived); absent, each archive is built whole here.
     */
    stream: z
      .strictObject({ targetNode: NameSchema, bandwidth: z.number().int().min(1).optional() })
      .optional(),
  }),
  z.strictObject({
    kind: z.literal('podSend'),
    migration: MigrationRef,
    targetNode: NameSchema,
    files: z.array(PodImageFileSchema).min(1),
    /** spec.strategy.bandwidth in bytes per second; unlimited when absent. */
    bandwidth: z.number().int().min(1).optional(),
    /** Zstd on every image (spec.strategy.compression Zstd; Auto has no measured link to weigh here). */
    compress: z.boolean().default(false),
  }),
  z.strictObject({
    kind: z.literal('podImport'),
    migration: MigrationRef,
    images: z
      .array(
        z.strictObject({
          file: PodImageFileSchema,
          ref: ImageRefSchema,
          /** The file is an archive without its pages, which arrived in this folder (a streamed dump). */
          pages: PageDirSchema.optional(),
        }),
      )
      .min(1),
    runtime: PodRuntime.optional(),
  }),
  z.strictObject({
    kind: z.literal('podRemoveImages'),
    migration: MigrationRef,
    refs: z.array(ImageRefSchema).min(1),
    runtime: PodRuntime.optional(),
  }),
  /** The source's emptyDir contents into the replacement's (pod `podUid`), before it may start. */
  z.strictObject({
    kind: z.literal('podVolumes'),
    migration: MigrationRef,
    podUid: PodUidSchema,
    emptyDirs: z.array(NameSchema),
  }),
  z.strictObject({
    kind: z.literal('podCleanup'),
    migration: MigrationRef,
    /** On a rollback: the emptyDir folders podVolumes wrote for the deleted replacement go too. */
    rollback: z.boolean().default(false),
  }),
]);
export type Job = z.infer<typeof JobSchema>;
/** What a sender may leave out: defaults the agent fills in when it parses the job. */
export type JobInput = z.input<typeof JobSchema>;
export type JobKind = Job['kind'];
export type JobOf<K extends JobKind> = Extract<Job, { kind: K }>;
