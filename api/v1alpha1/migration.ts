// The Migration resource (ferry.dev/v1alpha1): the single schema that the CLI, the controller and the
// stores share. Types are derived from it; nothing restates its fields by hand.
import { z } from 'zod';

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
  'CleaningUp',
  'RollingBack',
  'Succeeded',
  'Failed',
] as const;
export const PhaseSchema = z.enum(PHASES);
export type Phase = z.infer<typeof PhaseSchema>;
export const TERMINAL_PHASES: readonly Phase[] = ['Succeeded', 'Failed'];

export const MigrationSpecSchema = z
  .strictObject({
    source: z
      .strictObject({
        node: NameSchema.describe('Node the workload runs on now.'),
        container: NameSchema.describe('Container id of the workload on the source node.'),
      })
      .describe('The workload to move.'),
    target: z
      .strictObject({
        node: NameSchema.describe('Node to move the workload to.'),
      })
      .describe('Where to move it.'),
  })
  .refine((s) => s.source.node !== s.target.node, {
    message: 'target.node must differ from source.node',
    path: ['target', 'node'],
  });

export const MetadataSchema = z.strictObject({
  name: NameSchema,
  namespace: NameSchema.default('default'),
  uid: z.string().optional(),
  creationTimestamp: z.string().optional(),
  generation: z.number().int().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

export const PhaseTransitionSchema = z.strictObject({ phase: PhaseSchema, time: z.string() });

export const MigrationStateSchema = z.strictObject({
  sourceNode: z.string(),
  targetNode: z.string(),
  /** When the source was frozen (agent clock). */
  frozenAt: z.string().optional(),
  /** When the target reported the workload running. */
  restoredAt: z.string().optional(),
  /** Frozen to running on the target, in milliseconds. */
  downtimeMs: z.number().optional(),
  /** Bytes sent to the target: filesystem before the freeze, then images and filesystem during it. */
  bytesBeforeFreeze: z.number().optional(),
  bytesDuringFreeze: z.number().optional(),
  transferMs: z.number().optional(),
  /** bytesDuringFreeze / transferMs, in bytes per second. */
  throughputBytesPerSecond: z.number().optional(),
  /** Time CRIU spent dumping, from the agent. */
  dumpMs: z.number().optional(),
  restoreMs: z.number().optional(),
});

export const MigrationStatusSchema = z.strictObject({
  phase: PhaseSchema,
  phaseTransitionTimestamps: z.array(PhaseTransitionSchema),
  migrationState: MigrationStateSchema.optional(),
  failureReason: z.string().optional(),
  /** Non-fatal trouble that did not change the outcome, e.g. a clean-up that failed after success. */
  warnings: z.array(z.string()).optional(),
});

export const MigrationSchema = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('Migration'),
  metadata: MetadataSchema,
  spec: MigrationSpecSchema,
  status: MigrationStatusSchema.optional(),
});

export type Migration = z.infer<typeof MigrationSchema>;
export type MigrationSpec = z.infer<typeof MigrationSpecSchema>;
export type MigrationStatus = z.infer<typeof MigrationStatusSchema>;
export type MigrationState = z.infer<typeof MigrationStateSchema>;

/** A Migration the store has accepted: it has a uid and a status. */
export type StoredMigration = Migration & {
  metadata: Migration['metadata'] & { uid: string; creationTimestamp: string };
  status: MigrationStatus;
};
