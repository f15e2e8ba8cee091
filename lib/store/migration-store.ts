// Where Migrations live. One interface, so the controller and the CLI do not care whether it is
// Redis (the local cluster) or the Kubernetes API. Both follow Kubernetes' rules: only the
// controller writes status; a spec may only change its `abort` field once created; deleting a
// Migration that has not ended only marks it (deletionTimestamp) until the controller has rolled
// it back and releases its finalizer.
import {
  FINALIZER,
  MigrationSchema,
  type Migration,
  type MigrationInput,
  type MigrationStatus,
  type StoredMigration,
} from '../../api/v1alpha1/migration.ts';

export interface MigrationEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  time: string;
}

export interface MigrationStore {
  /**
   * Stores a new Migration (defaults filled in) with a fresh uid and a Pending status. With
   * dryRun, every check the store makes (the API server's, on Kubernetes) and nothing stored.
   */
  create(m: MigrationInput, opts?: { dryRun?: boolean }): Promise<StoredMigration>;
  get(namespace: string, name: string): Promise<StoredMigration | undefined>;
  list(namespace?: string): Promise<StoredMigration[]>;
  /** Replaces the spec; only `abort` may differ. Bumps metadata.generation when it changed. */
  updateSpec(namespace: string, name: string, spec: Migration['spec']): Promise<StoredMigration>;
  /** Writes status only if the object still exists; returns false when it is gone. */
  updateStatus(namespace: string, name: string, status: MigrationStatus): Promise<boolean>;
  /** Deletes at once when nothing holds it, else marks it for deletion; says which. */
  delete(namespace: string, name: string): Promise<'deleted' | 'deleting' | 'notfound'>;
  /** Drops the finalizer of a Migration marked for deletion, which then goes. */
  release(namespace: string, name: string): Promise<void>;
  /** Records an event about a Migration (Kubernetes Events; a short list in Redis). */
  event(m: StoredMigration, e: Omit<MigrationEvent, 'time'>): Promise<void>;
  events(namespace: string, name: string): Promise<MigrationEvent[]>;
}

export class AlreadyExistsError extends Error {}
export class ImmutableFieldError extends Error {}
export class NotFoundError extends Error {}

/** Oldest first, ties (same millisecond) by name: the order admission follows. */
export const byCreation = (a: StoredMigration, b: StoredMigration): number =>
  a.metadata.creationTimestamp.localeCompare(b.metadata.creationTimestamp) ||
  a.metadata.name.localeCompare(b.metadata.name);

/** The error for a spec change other than `abort`, naming the first field that differs. */
export function specChange(old: Migration['spec'], next: Migration['spec']): string | undefined {
  for (const key of Object.keys({ ...old, ...next }) as Array<keyof Migration['spec']>) {
    if (key === 'abort') continue;
    if (JSON.stringify(old[key]) !== JSON.stringify(next[key])) return `spec.${key}`;
  }
  return undefined;
}

/** Parses user input into a Migration to store: defaults filled, finalizer set. */
export function prepareNew(
  input: MigrationInput,
  uid: string,
  now: string,
): Migration & { metadata: { uid: string } } {
  const m = MigrationSchema.parse(input);
  return {
    ...m,
    metadata: { ...m.metadata, uid, creationTimestamp: now, generation: 1, finalizers: [FINALIZER] },
  } as Migration & { metadata: { uid: string } };
}

/**
 * Parses every stored document, leaving out (and reporting once) those that fail the schema: one
 * corrupt or foreign Migration must not stop the controller from serving all the others.
 */
export function validOnly<R>(
  raws: Array<[key: string, raw: R]>,
  parse: (raw: R, key: string) => StoredMigration,
  onInvalid?: (key: string, problem: string) => void,
): StoredMigration[] {
  const out: StoredMigration[] = [];
  for (const [key, raw] of raws) {
    try {
      out.push(parse(raw, key));
    } catch (err) {
      onInvalid?.(key, err instanceof Error ? err.message.split('\n')[0]!.slice(0, 300) : String(err));
    }
  }
  return out;
}

/** Wraps `report` so each (document, problem) is reported once: list() meets it on every pass. */
export function reportOnce(
  report: (key: string, problem: string) => void,
): (key: string, problem: string) => void {
  const seen = new Set<string>();
  return (key, problem) => {
    if (seen.has(`${key} ${problem}`)) return;
    seen.add(`${key} ${problem}`);
    report(key, problem);
  };
}
