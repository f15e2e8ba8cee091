// The Migration resource (ferry.dev/v1alpha1): the single schema that the CLI, the controller and the
// stores share. Types are derived from it; nothing restates its fields by hand.
import { z } from 'zod';
import { DURATION_PATTERN, QUANTITY_PATTERN, parseDuration, parseQuantity } from './quantity.ts';

export const API_VERSION = 'ferry.dev/v1alpha1';

/** DNS-1123 label, like Kubernetes object and node names. */
export const NameSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS-1123 label: lower-case letters, digits and "-"');

/**
 * Phases, in order. Terminal phases (Succeeded, Failed) are never left.
 * - Pending: accepted, waiting for its nodes to be checked.
 * - Preflight: both agents check the workload, the target and the link; nothing is frozen yet.
 * - Syncing: the workload still runs while its filesystem is snapshotted and sent in full.
 * - Checkpointing: the workload is frozen and CRIU dumps it; the source stays stopped, not killed.
 * - Transferring: images and the filesystem increment go to the target over SSH.
 * - Restoring: the target restores the workload and confirms it runs.
 * - Verifying: the target checks the restored workload stays up; the source is still kept frozen.
 * - CleaningUp: the stopped source and leftover images are removed.
 * - RollingBack: a step after the freeze failed; the target is cleaned and the source resumed.
 */
export const PHASES = [
  'Pending',
  'Preflight',
  'Syncing',
  'Checkpointing',
  'Transferring',
  'Restoring',
  'Verifying',
  'CleaningUp',
  'RollingBack',
  'Succeeded',
  'Failed',
] as const;
export const PhaseSchema = z.enum(PHASES);
export type Phase = z.infer<typeof PhaseSchema>;
export const TERMINAL_PHASES: readonly Phase[] = ['Succeeded', 'Failed'];

const DurationSchema = (what: string, min: number, max: number) =>
  z
    .string()
    .regex(DURATION_PATTERN, `${what}: a duration like "90s", "5m" or "1h30m"`)
    .refine((v) => (parseDuration(v) ?? 0) >= min && (parseDuration(v) ?? 0) <= max, {
      message: `${what}: must be between ${min / 1000}s and ${max / 3_600_000}h`,
    });

export const MODES = ['Auto', 'StopAndCopy', 'PreCopy', 'PostCopy'] as const;
export const ModeSchema = z.enum(MODES);
export type Mode = z.infer<typeof ModeSchema>;

/** The snapshot drivers that move a volume (agent/snapshot/drivers.ts registers one each). */
export const VOLUME_DRIVERS = ['btrfs', 'dm-thin', 'overlay'] as const;
export const VolumeDriverSchema = z.enum(VOLUME_DRIVERS);
export type VolumeDriverName = z.infer<typeof VolumeDriverSchema>;

export const COMPRESSIONS = ['Auto', 'Zstd', 'None'] as const;
export const CompressionSchema = z.enum(COMPRESSIONS);

export const StrategySchema = z
  .strictObject({
    mode: ModeSchema.default('Auto').describe(
      'How memory moves. StopAndCopy: freeze, dump, send, restore. PreCopy: iterative dumps while running (needs soft-dirty tracking). PostCopy: restore at once and fault pages in from the source. Auto: chosen from maxDowntime, memory size and link rate.',
    ),
    maxDowntime: DurationSchema('maxDowntime', 10, 3_600_000)
      .default('2s')
      .describe('Longest acceptable freeze, used by Auto to choose a mode.'),
    overBudget: z
      .enum(['Refuse', 'Proceed'])
      .default('Refuse')
      .describe(
        'Auto, when no mode this node offers is estimated to keep the freeze under maxDowntime: Refuse fails the migration in Preflight, before anything is frozen; Proceed freezes anyway (StopAndCopy).',
      ),
    bandwidth: z
      .string()
      .regex(QUANTITY_PATTERN, 'bandwidth: a byte quantity per second like "100Mi"')
      .refine((v) => (parseQuantity(v) ?? 0) >= 1024 * 1024, {
        message: 'bandwidth: at least 1Mi per second',
      })
      .optional()
      .describe('Upper limit on transfer rate, in bytes per second (e.g. "200Mi"). Unlimited when unset.'),
    compression: CompressionSchema.default('Auto').describe(
      'zstd on image files and filesystem streams. Auto: per item, when compressing a sample of it beats the measured link rate. Memory streamed to the page server is never compressed.',
    ),
    maxIterations: z
      .number()
      .int()
      .min(1)
      .max(30)
      .default(8)
      .describe('PreCopy: most pre-dump rounds before the final freeze.'),
  })
  .describe('How to move the workload.');

export const MigrationSpecSchema = z
  .strictObject({
    source: z
      .strictObject({
        node: NameSchema.describe('Node the workload runs on now.'),
        container: NameSchema.describe('Container id of the workload on the source node.'),
        pod: NameSchema.optional().describe(
          "Kubernetes only: move this pod, in the Migration's namespace, with all its containers, through its node's runtime; container then only names its main container.",
        ),
        pid: z
          .number()
          .int()
          .min(2)
          .optional()
          .describe(
            'Move the bare process tree rooted at this PID instead of a container (as P.Haul did); container then only names it. Its PIDs must be free on the target, so the source is stopped before the restore, and its image is kept to bring it back if the restore fails.',
          ),
      })
      .describe('The workload to move.'),
    target: z
      .strictObject({
        node: NameSchema.optional().describe('Node to move the workload to.'),
        nodeSelector: z
          .record(z.string().min(1).max(317), z.string().max(63))
          .optional()
          .describe('Labels a target node must carry; ferry picks the least busy matching node.'),
      })
      .refine((t) => (t.node === undefined) !== (t.nodeSelector === undefined), {
        message: 'give exactly one of target.node and target.nodeSelector',
      })
      .describe('Where to move it: a node, or a selector to choose one.'),
    strategy: StrategySchema.prefault({}),
    timeouts: z
      .strictObject({
        progressTimeout: DurationSchema('progressTimeout', 1000, 24 * 3_600_000)
          .default('150s')
          .describe('Fail and roll back when a step makes no progress for this long.'),
        completionTimeoutPerGiB: DurationSchema('completionTimeoutPerGiB', 1000, 24 * 3_600_000)
          .default('800s')
          .describe('Fail and roll back when the migration takes longer than this per GiB of memory.'),
      })
      .prefault({})
      .describe('When to give up.'),
    sourcePolicy: z
      .enum(['Delete', 'KeepImages'])
      .default('Delete')
      .describe(
        'What happens to the source after success: Delete removes it all; KeepImages keeps its checkpoint images and snapshots.',
      ),
    abort: z
      .boolean()
      .default(false)
      .describe('Set to true to cancel; after the freeze this resumes the source.'),
  })
  .refine((s) => s.target.node === undefined || s.source.node !== s.target.node, {
    message: 'target.node must differ from source.node',
    path: ['target', 'node'],
  });

export const MetadataSchema = z.looseObject({
  name: NameSchema,
  namespace: NameSchema.default('default'),
  uid: z.string().optional(),
  creationTimestamp: z.string().optional(),
  generation: z.number().int().optional(),
  resourceVersion: z.string().optional(),
  /** Set when deletion was asked for; the object stays until the finalizer is removed. */
  deletionTimestamp: z.string().optional(),
  finalizers: z.array(z.string()).optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

// Every field carries a description: it lands in the CRD, so `kubectl explain` can answer.
export const PhaseTransitionSchema = z
  .strictObject({
    phase: PhaseSchema.describe('The phase entered.'),
    time: z.string().describe('When it was entered (RFC 3339).'),
  })
  .describe('One phase change.');

const ms = (what: string) => z.number().optional().describe(`${what}, in milliseconds.`);
const bytes = (what: string) => z.number().optional().describe(`${what}, in bytes.`);

export const MigrationStateSchema = z
  .strictObject({
    sourceNode: z.string().describe('Node the workload left.'),
    targetNode: z
      .string()
      .optional()
      .describe('Node chosen: spec.target.node, or the pick among spec.target.nodeSelector matches.'),
    sourcePod: z.string().optional().describe('Pod the workload left (Kubernetes only).'),
    targetPod: z.string().optional().describe('Pod the workload runs in now (Kubernetes only).'),
    sourcePodUid: z
      .string()
      .optional()
      .describe(
        "The source pod's uid: a StatefulSet's replacement has the same name, so the uid tells them apart.",
      ),
    statefulSet: z
      .string()
      .optional()
      .describe(
        "A StatefulSet pod: its StatefulSet, which recreates it under its name once ferry deleted the frozen source; ferry's admission webhook places the new pod and starts it from the checkpoint.",
      ),
    mode: ModeSchema.optional().describe('Strategy used.'),
    modeReason: z.string().optional().describe('Why that strategy: requested, or what Auto weighed.'),
    iterations: z.number().int().optional().describe('Pre-copy rounds run before the final freeze.'),
    linkBytesPerSecond: z
      .number()
      .optional()
      .describe('Link rate to the target measured while syncing the filesystem, in bytes per second.'),
    lazyPagesPort: z
      .number()
      .int()
      .optional()
      .describe('PostCopy: loopback port of the source page server the target tunnels to.'),
    pagesAfterRestore: bytes('PostCopy: memory the target pulled from the source after it started running'),
    volumes: z
      .array(
        z
          .strictObject({
            name: z.string().describe('rootfs, or a node-local volume.'),
            driver: VolumeDriverSchema.describe('Snapshot driver that moved it.'),
            bytesBeforeFreeze: bytes('Sent while the workload ran (the full snapshot)'),
            bytesDuringFreeze: bytes('Sent while it was frozen (the increment)'),
          })
          .describe('One volume moved with the workload.'),
      )
      .optional()
      .describe('Each volume, its driver, and the bytes sent before and during the freeze.'),
    frozenAt: z.string().optional().describe('When the source was frozen (source agent clock, RFC 3339).'),
    restoredAt: z.string().optional().describe('When the target reported the workload running (RFC 3339).'),
    resumedAt: z
      .string()
      .optional()
      .describe('After a rollback: when the frozen source ran again (source agent clock, RFC 3339).'),
    downtimeMs: ms('Frozen to running again: on the target, or on the source after a rollback'),
    downtime: z
      .string()
      .optional()
      .describe('downtimeMs as a duration, e.g. "1.93s" (for the DOWNTIME column of kubectl get).'),
    bytesBeforeFreeze: bytes('Sent while the workload still ran (filesystem)'),
    bytesDuringFreeze: bytes('Sent while it was frozen (images and filesystem increment)'),
    transferMs: ms('Time of the frozen transfer'),
    throughputBytesPerSecond: z
      .number()
      .optional()
      .describe(
        'bytesDuringFreeze over the time spent sending them (transferMs, plus dumpMs when the dump streamed), in bytes per second.',
      ),
    imageBytes: bytes('Size of the CRIU images, the measure of the workload memory'),
    dumpMs: ms('Time CRIU spent dumping'),
    restoreMs: ms('Time CRIU spent restoring'),
    gpu: z
      .strictObject({
        processes: z.number().int().min(0).describe('Processes whose CUDA state moved.'),
        checkpointMs: ms('Time the CUDA driver took to lock and checkpoint them on the source'),
        restoreMs: ms('Time it took to restore and unlock them on the target'),
        bytes: bytes('GPU memory moved (their host memory grew by it at the checkpoint)'),
      })
      .optional()
      .describe('A GPU workload: its CUDA state, checkpointed and restored through the driver.'),
    estimatedFreezeMs: ms(
      'What a StopAndCopy freeze of this workload was estimated at in Preflight (memory over the measured link); frozen steps get a deadline from it',
    ),
    handedOver: z
      .boolean()
      .optional()
      .describe(
        'The transfer completed: the target may restore from here on, so the source resumes only once the target removed its copy or is fenced (docs/fencing.md).',
      ),
    abortRequested: z.boolean().optional().describe('An abort was asked for (spec.abort or deletion).'),
    abortStatus: z
      .enum(['Aborting', 'Succeeded', 'Failed'])
      .optional()
      .describe(
        'Aborting while rolling back; Succeeded once the source runs again; Failed when the abort came too late.',
      ),
  })
  .describe('Facts about the migration as it runs.');

export const ConditionSchema = z
  .strictObject({
    type: z.string().describe('Admitted, Progressing, Succeeded, Failed or AbortRequested.'),
    status: z.enum(['True', 'False', 'Unknown']).describe('Whether the condition holds.'),
    reason: z.string().describe('One word, CamelCase, for machines.'),
    message: z.string().describe('A sentence for people.'),
    lastTransitionTime: z.string().describe('When status last changed (RFC 3339).'),
    observedGeneration: z.number().int().optional().describe('metadata.generation this condition describes.'),
  })
  .describe('A Kubernetes condition.');
export type Condition = z.infer<typeof ConditionSchema>;

/** What an agent reports while a step sends bytes; the controller copies it into status.progress. */
export const ProgressSchema = z
  .strictObject({
    step: z.string().describe('The step sending: sync (running), checkpoint (streamed dump) or transfer.'),
    bytes: z.number().int().min(0).describe('Bytes sent so far by this step.'),
    totalBytes: z.number().int().min(0).optional().describe('Bytes this step will send, when known.'),
    bytesPerSecond: z.number().min(0).optional().describe('Current rate, in bytes per second.'),
    etaSeconds: z.number().min(0).optional().describe('Time left at that rate, when the total is known.'),
    updatedAt: z.string().describe('When the controller last copied it from the agent (RFC 3339).'),
  })
  .describe('Progress of the step now moving bytes; absent when none is.');
export type Progress = z.infer<typeof ProgressSchema>;

export const MigrationStatusSchema = z
  .strictObject({
    phase: PhaseSchema.describe('Where the migration is; Succeeded and Failed are final.'),
    phaseTransitionTimestamps: z
      .array(PhaseTransitionSchema)
      .describe('Every phase entered, in order, with its time.'),
    conditions: z
      .array(ConditionSchema)
      .optional()
      .describe(
        'Admitted, Progressing, Succeeded or Failed (once it ended: each True only for its outcome), AbortRequested.',
      ),
    migrationState: MigrationStateSchema.optional(),
    progress: ProgressSchema.optional(),
    failureReason: z.string().optional().describe('Why it failed: the step, the node and the cause.'),
    warnings: z
      .array(z.string())
      .optional()
      .describe('Trouble that did not change the outcome, e.g. a clean-up that failed after success.'),
    observedGeneration: z
      .number()
      .int()
      .optional()
      .describe('metadata.generation the controller last acted on.'),
  })
  .describe('What the controller observed; written by the controller only.');

export const MigrationSchema = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('Migration'),
  metadata: MetadataSchema,
  spec: MigrationSpecSchema,
  status: MigrationStatusSchema.optional(),
});

export type Migration = z.infer<typeof MigrationSchema>;
/** What a user writes: defaults not yet filled in. */
export type MigrationInput = z.input<typeof MigrationSchema>;
export type MigrationSpec = z.infer<typeof MigrationSpecSchema>;
export type MigrationStatus = z.infer<typeof MigrationStatusSchema>;
export type MigrationState = z.infer<typeof MigrationStateSchema>;

/** A Migration the store has accepted: it has a uid and a status. */
export type StoredMigration = Migration & {
  metadata: Migration['metadata'] & { uid: string; creationTimestamp: string; generation: number };
  status: MigrationStatus;
};

/** Keeps deleted Migrations until their rollback finished, like a Kubernetes finalizer. */
export const FINALIZER = 'ferry.dev/migration-protection';

/** A fresh status for a newly stored Migration. */
export function initialStatus(now: string): MigrationStatus {
  return { phase: 'Pending', phaseTransitionTimestamps: [{ phase: 'Pending', time: now }] };
}
