// FerryError: every failure ferry reports carries a stable code from this enum and its cause.
// `final` errors (bad input, unsupported, corrupt data) are never retried; the rest may be.

export const ERROR_CODES = {
  InvalidInput: { final: true, doc: 'A document, job or message failed its schema.' },
  NodeNotFound: { final: true, doc: 'A node named by the Migration is not registered or not ready.' },
  ContainerNotFound: { final: true, doc: 'The source container does not exist or is not running.' },
  ContainerExists: { final: true, doc: 'The target node already has a container with that id.' },
  InsufficientSpace: { final: true, doc: 'The target lacks space for the images or the filesystem.' },
  CriuCheckFailed: { final: true, doc: 'CRIU is missing, too old, or does not work on this node.' },
  UnsupportedWorkload: {
    final: true,
    doc: 'The workload holds something CRIU cannot move (io_uring, an unknown device).',
  },
  FeatureUnsupported: { final: true, doc: 'The strategy needs a kernel or CRIU feature this node lacks.' },
  CpuIncompatible: { final: true, doc: 'The target CPU lacks features the source CPU offered the workload.' },
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

export class FerryError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FerryError';
    this.code = code;
  }
  get final(): boolean {
    return ERROR_CODES[this.code].final;
  }
  /** "Code: message", the form that lands in job failures and Migration status. */
  override toString(): string {
    return `${this.code}: ${this.message}`;
  }
}

/** Parses "Code: message" back out of a job's failedReason. */
export function parseErrorReason(reason: string): { code: ErrorCode | undefined; message: string } {
  const m = /^([A-Za-z]+): ([\s\S]*)$/.exec(reason);
  if (m && m[1] && m[1] in ERROR_CODES) return { code: m[1] as ErrorCode, message: m[2] ?? '' };
  return { code: undefined, message: reason };
}

export function errorMessage(err: unknown): string {
  if (err instanceof FerryError) return err.toString();
  if (err instanceof Error) return err.message;
  return String(err);
}
