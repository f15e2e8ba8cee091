// Where Migrations live. One interface, so the controller and the CLI do not care whether it is
// Redis (the local cluster) or, later, the Kubernetes API.
import type { Migration, MigrationStatus, StoredMigration } from '../../api/v1alpha1/migration.ts';

export interface MigrationStore {
  /** Stores a new Migration with a fresh uid and a Pending status. Refuses an existing name. */
  create(m: Migration): Promise<StoredMigration>;
  get(namespace: string, name: string): Promise<StoredMigration | undefined>;
  list(namespace?: string): Promise<StoredMigration[]>;
  /** Writes status only if the object still exists; returns false when it was deleted meanwhile. */
  updateStatus(namespace: string, name: string, status: MigrationStatus): Promise<boolean>;
  delete(namespace: string, name: string): Promise<boolean>;
}

export class AlreadyExistsError extends Error {}
