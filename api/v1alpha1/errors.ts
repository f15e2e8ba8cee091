// The failure codes every ferry error carries, documented once. They cross process boundaries (job
// failures on the work bus, Migration status), so they are part of the API; lib/errors.ts wraps them.
import { z } from 'zod';

export const ERROR_CODES = {
  InvalidInput: { final: true, doc: 'A document, job or message failed its schema.' },
  NodeNotFound: { final: true, doc: 'A node named by the Migration is not registered or not ready.' },
  ContainerNotFound: { final: true, doc: 'The source container does not exist or is not running.' },
  ContainerExists: { final: true, doc: 'The target node already has a container with that id.' },
  WorkloadBusy: { final: true, doc: 'Another Migration is moving the same workload right now.' },
  DowntimeOverBudget: {
    final: true,
    doc: 'Auto found no mode whose estimated freeze fits maxDowntime, and the spec does not accept a longer one.',
  },
  StepDeadline: {
    final: true,
    doc: 'A step taken while the source was frozen ran past its deadline: it was stopped and the move rolled back.',
  },
  PidsInUse: {
    final: true,
    doc: "A bare process tree's PIDs are still taken where it must run (a zombie its parent has not reaped).",
  },
  Fenced: {
    final: true,
    doc: 'This node may no longer act for the migration (lease lapsed, node fenced, or the migration moved on).',
  },
  WorkloadHandedOver: {
    final: true,
    doc: 'The source was handed over to the target; it resumes only once the target removed its copy or is fenced.',
  },
  ImageNotFound: {
    final: true,
    doc: 'A container image named by a job or an archive cannot be read on the node.',
  },
  InsufficientSpace: { final: true, doc: 'The target lacks space for the images or the filesystem.' },
  CriuCheckFailed: { final: true, doc: 'CRIU is missing, too old, or does not work on this node.' },
  UnsupportedWorkload: {
    final: true,
    doc: 'The workload holds something CRIU cannot move (io_uring, an unknown device).',
  },
  FeatureUnsupported: { final: true, doc: 'The strategy needs a kernel or CRIU feature this node lacks.' },
  CpuIncompatible: { final: true, doc: 'The target CPU lacks features the source CPU offered the workload.' },
  GpuUnavailable: {
    final: true,
    doc: "A node has no CUDA driver, or one without the checkpoint API, or not ferry's CUDA helper.",
  },
  GpuIncompatible: {
    final: true,
    doc: 'The target GPU differs from the source’s (model, driver version) or lacks the free memory.',
  },
  GpuCheckpointFailed: {
    final: true,
    doc: "The CUDA driver refused to lock, checkpoint, restore or unlock a process's GPU state.",
  },
  CriuDumpFailed: { final: true, doc: 'CRIU could not checkpoint the workload.' },
  CriuRestoreFailed: { final: true, doc: 'CRIU could not restore the workload.' },
  RuntimeFailed: { final: true, doc: 'runc refused an operation.' },
  SnapshotFailed: { final: true, doc: 'A btrfs snapshot, send or receive failed.' },
  IntegrityError: { final: true, doc: 'Received data did not match its checksum or size.' },
  StreamRejected: { final: true, doc: 'An image stream was foreign, malformed or unsafe.' },
  AuthRefused: { final: true, doc: 'An SSH peer presented a key that is not authorised or pinned.' },
  TransferFailed: { final: false, doc: 'The SSH connection or stream broke.' },
  SourceResumeFailed: { final: true, doc: 'The frozen source could not be resumed during rollback.' },
  ClusterUnavailable: { final: false, doc: "The cluster's Redis (work bus, local store) does not answer." },
  Internal: { final: false, doc: 'A bug or an unexpected state.' },
} as const;
export type ErrorCode = keyof typeof ERROR_CODES;
export const ErrorCodeSchema = z.enum(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]]);

/**
 * How an agent reports a failed job: the structured field BullMQ keeps as the job's failedReason
 * (JSON), parsed back by the controller with this schema. `final` failures are never retried.
 */
export const JobFailureSchema = z.strictObject({
  code: ErrorCodeSchema,
  message: z.string(),
});
export type JobFailure = z.infer<typeof JobFailureSchema>;
