// What agents answer for each job kind. The agent's handlers are typed by these schemas, and the
// controller (and the CLI) parse every result on arrival: a result that fails its schema fails the
// step with the schema's words. Unknown fields are dropped rather than refused, so an agent one
// version ahead does not fail a migration by reporting more.
import { z } from 'zod';
import type { JobKind } from './jobs.ts';
import { VolumeDriverSchema } from './migration.ts';
import { GpuCheckpointSchema, GpuUseSchema } from './gpu.ts';

const bytes = z.number().int().min(0);
const ms = z.number().min(0);
const time = z.string();

export const ContainerInfoSchema = z.object({
  id: z.string(),
  status: z.string(),
  pid: z.number().optional(),
  /** What `ferry ps` shows besides: the image it was started from, its command, its own address. */
  image: z.string().optional(),
  command: z.array(z.string()).optional(),
  address: z.string().optional(),
});
export type ContainerInfo = z.infer<typeof ContainerInfoSchema>;

/** Bytes one volume's driver sent in a step (the root filesystem counts as volume `rootfs`). */
export const VolumeBytesSchema = z.object({
  name: z.string(),
  driver: VolumeDriverSchema,
  bytes,
});
export type VolumeBytes = z.infer<typeof VolumeBytesSchema>;

export const VerifyResultSchema = z.object({
  pass: z.boolean(),
  line: z.string(),
  counter: z.number().optional(),
});

/** What the source's preflight learns: features the strategies need. */
export const PreflightSourceResultSchema = z.object({
  status: z.string(),
  pid: z.number().optional(),
  /** Resident memory of the container's processes, the size CRIU will dump. */
  memoryBytes: bytes.optional(),
  /** Bytes in the root filesystem and volumes: what the target must hold. */
  rootfsBytes: bytes.optional(),
  /** The volumes that move with the workload (rootfs first), each with the driver that moves it. */
  volumes: z.array(z.object({ name: z.string(), driver: VolumeDriverSchema })).optional(),
  /** `criu cpuinfo dump` of the source, base64. */
  cpuinfo: z.string().optional(),
  features: z.object({ memDirtyTrack: z.boolean(), lazyPages: z.boolean() }),
  /** Why PostCopy cannot run on the source, quoted in the refusal. */
  lazyPagesProblem: z.string().optional(),
  /** What will not survive the move, for the Migration's status.warnings. */
  warnings: z.array(z.string()).optional(),
  /** Rate of a short probe over the SSH link to the target, bandwidth limit included. */
  linkBytesPerSecond: z.number().min(0).optional(),
  /** A GPU workload: what the target must have (agent/gpu). */
  gpu: GpuUseSchema.optional(),
});
export type PreflightSourceResult = z.infer<typeof PreflightSourceResultSchema>;

export const PreflightTargetResultSchema = z.object({ imagesFreeBytes: bytes, fsFreeBytes: bytes });

/** The filesystem sent while the workload runs (the first round, and a second when worth it). */
export const SyncResultSchema = z.object({
  bytes,
  durationMs: ms,
  files: z.number().int().min(0),
  rounds: z.number().int().min(0),
  volumes: z.array(VolumeBytesSchema),
});

export const CheckpointResultSchema = z.object({
  frozenAt: time,
  dumpMs: ms,
  imageBytes: bytes,
  /** Memory pages that went to the target's page server during the dump (StopAndCopy). */
  streamedBytes: bytes.optional(),
  /** PostCopy: the source's lazy page server port (its loopback, reached through a tunnel). */
  lazyPagesPort: z.number().int().optional(),
  /** PreCopy: pre-dump rounds run, and why they stopped. */
  iterations: z.number().int().optional(),
  stopReason: z.string().optional(),
  /** A GPU workload: its CUDA state checkpointed through the driver before the dump. */
  gpu: GpuCheckpointSchema.optional(),
});

export const TransferResultSchema = z.object({
  bytes,
  durationMs: ms,
  files: z.number().int().min(0),
  /** Bytes an earlier, broken attempt had delivered, not sent again. */
  resumedBytes: bytes.optional(),
  volumes: z.array(VolumeBytesSchema).optional(),
});

export const RestoreResultSchema = z.object({
  restoredAt: time,
  restoreMs: ms,
  pid: z.number().optional(),
  /** A GPU workload: the time its CUDA state took to come back (restore and unlock). */
  gpuRestoreMs: ms.optional(),
});

export const VerifyTargetResultSchema = z.object({
  status: z.string(),
  pid: z.number().optional(),
  /** PostCopy: how long the last pages took to arrive after the restore. */
  lazyMs: ms.optional(),
});

const CheckpointedImageSchema = z.object({
  container: z.string(),
  ref: z.string(),
  file: z.string(),
  bytes,
  /** Streamed: the file is the archive without its pages, which went to the target's pod-N folder. */
  pages: z.string().optional(),
});

/** One schema per job kind; `satisfies` makes a kind without one a type error. */
export const JOB_RESULTS = {
  run: ContainerInfoSchema,
  runImage: ContainerInfoSchema,
  runBundle: ContainerInfoSchema,
  verify: VerifyResultSchema,
  /** Each feature's verdict: PASS, or FAIL/SKIP and why. */
  verifyFeatures: z.record(z.string(), z.string()),
  selfRequest: z.object({ ok: z.boolean(), migration: z.string().optional(), error: z.string().optional() }),
  list: z.array(ContainerInfoSchema),
  export: z.object({
    archive: z.string(),
    bytes,
    stopped: z.boolean(),
    /** The image its rootfs diff is over: name and ID as Podman shows them, and where it is on the node. */
    baseImage: z.object({ name: z.string(), id: z.string(), ref: z.string() }),
    /** A GPU container: its CUDA state, checkpointed through the driver into the images. */
    gpu: GpuCheckpointSchema.optional(),
  }),
  import: z.object({
    restored: z.string(),
    pid: z.number().optional(),
    /** A GPU container: how long the driver took to give its processes their GPU memory back. */
    gpuRestoreMs: z.number().optional(),
  }),
  remove: z.object({ removed: z.string() }),
  exec: z.object({ code: z.number(), stdout: z.string(), stderr: z.string() }),
  /** The bytes read (base64: output need not be text), the offset to read on from, the file's size. */
  logs: z.object({ data: z.string(), next: bytes, size: bytes }),
  preflightSource: PreflightSourceResultSchema,
  preflightTarget: PreflightTargetResultSchema,
  sync: SyncResultSchema,
  checkpoint: CheckpointResultSchema,
  transfer: TransferResultSchema,
  restore: RestoreResultSchema,
  verifyTarget: VerifyTargetResultSchema,
  cleanupSource: z.object({ removed: z.string(), keptImages: z.boolean() }),
  cleanupTarget: z.object({ cleaned: z.string() }),
  resumeSource: z.object({
    resumed: z.string(),
    wasFrozen: z.boolean(),
    /** When it ran again, if it had been frozen (or ended, for a process tree). */
    resumedAt: time.optional(),
  }),
  rollbackTarget: z.object({
    removedContainer: z.boolean().optional(),
    removedProcess: z.boolean().optional(),
  }),
  podFreeze: z.object({ frozen: z.array(z.string()), frozenAt: time }),
  podThaw: z.object({ thawed: z.array(z.string()) }),
  podSync: z.object({ bytes, durationMs: z.number().int().min(0) }),
  podCheckpoint: z.object({
    images: z.array(CheckpointedImageSchema),
    /** Pages streamed to the target during the dump. */
    streamedBytes: bytes.optional(),
    dumpMs: z.number().int().min(0).optional(),
  }),
  podSend: z.object({ bytes }),
  podImport: z.object({ imported: z.array(z.string()) }),
  podRemoveImages: z.object({ removed: z.array(z.string()) }),
  podVolumes: z.object({ podUid: z.string(), written: z.array(z.string()) }),
  podCleanup: z.object({ cleaned: z.string() }),
} satisfies Record<JobKind, z.ZodType>;

/** What a handler of job kind K returns (before the wire); the controller sees the parsed output. */
export type JobResult<K extends JobKind> = z.infer<(typeof JOB_RESULTS)[K]>;
export type JobResultInput<K extends JobKind> = z.input<(typeof JOB_RESULTS)[K]>;

/** Parses a job's result by its kind: the value, or the schema's words for why it is not one. */
export function parseJobResult<K extends JobKind>(
  kind: K,
  value: unknown,
): { ok: true; value: JobResult<K> } | { ok: false; problem: string } {
  const r = (JOB_RESULTS[kind] as z.ZodType).safeParse(value);
  if (r.success) return { ok: true, value: r.data as JobResult<K> };
  const problem = r.error.issues.map((i) => `${i.path.join('.') || 'result'}: ${i.message}`).join('; ');
  return { ok: false, problem: `the ${kind} result is not one: ${problem}` };
}
