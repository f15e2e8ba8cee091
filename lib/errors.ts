// FerryError: every failure ferry reports carries a stable code from this enum and its cause.
// `final` errors (bad input, unsupported, corrupt data) are never retried; the rest may be.
import { ERROR_CODES, JobFailureSchema, type ErrorCode, type JobFailure } from '../api/v1alpha1/errors.ts';

export { ERROR_CODES, type ErrorCode };

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

/** What a thrown error becomes on the work bus: its code and message, as data. */
export function jobFailureOf(err: unknown): JobFailure {
  if (err instanceof FerryError) return { code: err.code, message: err.message };
  return { code: 'Internal', message: err instanceof Error ? err.message : String(err) };
}

/** The text BullMQ stores as a failed job's reason: the failure as JSON, parsed back by decodeJobFailure. */
export const encodeJobFailure = (f: JobFailure): string => JSON.stringify(f);

/**
 * A failed job's reason as a JobFailure. BullMQ writes some reasons itself (a job that stalled too
 * often, a lost lock): those are not ferry's JSON and come back as Internal with their own words.
 */
export function decodeJobFailure(reason: string | undefined): JobFailure {
  if (!reason) return { code: 'Internal', message: 'the job failed without a reason' };
  try {
    const parsed = JobFailureSchema.safeParse(JSON.parse(reason));
    if (parsed.success) return parsed.data;
  } catch {
    // not JSON: one of BullMQ's own reasons
  }
  return { code: 'Internal', message: reason };
}

/** "Code: message", for people: logs, Migration status, the CLI. */
export const formatFailure = (f: JobFailure): string => `${f.code}: ${f.message}`;

export function errorMessage(err: unknown): string {
  if (err instanceof FerryError) return err.toString();
  if (err instanceof Error) return err.message;
  return String(err);
}
