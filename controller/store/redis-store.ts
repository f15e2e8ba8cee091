// MigrationStore on Redis for the local cluster: one hash of JSON documents, and a pub/sub channel
// that says when something changed so the controller and watchers need not poll hard.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import {
  MigrationSchema,
  type Migration,
  type MigrationStatus,
  type StoredMigration,
} from '../../api/v1alpha1/migration.ts';
import { initialStatus } from '../reconcile.ts';
import { AlreadyExistsError, type MigrationStore } from './migration-store.ts';

// Status lives in its own hash (only the controller writes it, as in Kubernetes' status
// subresource) and is set only while the object exists, so a delete is never undone.
const UPDATE_STATUS = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1`;

export class RedisMigrationStore implements MigrationStore {
  private readonly key: string;
  private readonly statusKey: string;
  readonly channel: string;

  constructor(
    private readonly redis: Redis,
    cluster: string,
  ) {
    this.key = `ferry-${cluster}:migrations`;
    this.statusKey = `ferry-${cluster}:migrations:status`;
    this.channel = `ferry-${cluster}:migrations:changed`;
  }

  private field = (ns: string, name: string) => `${ns}/${name}`;

  private parse(raw: string, status: string | null | undefined): StoredMigration {
    // Stored documents went through the schema on the way in; parse again to catch corruption.
    const doc = JSON.parse(raw) as Record<string, unknown>;
    if (status) doc.status = JSON.parse(status);
    return MigrationSchema.parse(doc) as StoredMigration;
  }

  async create(m: Migration): Promise<StoredMigration> {
    const now = new Date().toISOString();
    const stored: StoredMigration = {
      ...m,
      metadata: { ...m.metadata, uid: randomUUID(), creationTimestamp: now, generation: 1 },
      status: initialStatus(now),
    };
    const field = this.field(stored.metadata.namespace, stored.metadata.name);
    const ok = await this.redis.hsetnx(this.key, field, JSON.stringify({ ...stored, status: undefined }));
    if (ok) await this.redis.hset(this.statusKey, field, JSON.stringify(stored.status));
    if (!ok)
      throw new AlreadyExistsError(
        `migration ${stored.metadata.namespace}/${stored.metadata.name} already exists`,
      );
    await this.redis.publish(this.channel, stored.metadata.name);
    return stored;
  }

  async get(namespace: string, name: string): Promise<StoredMigration | undefined> {
    const f = this.field(namespace, name);
    const [raw, status] = await Promise.all([
      this.redis.hget(this.key, f),
      this.redis.hget(this.statusKey, f),
    ]);
    return raw ? this.parse(raw, status) : undefined;
  }

  async list(namespace?: string): Promise<StoredMigration[]> {
    const [docs, statuses] = await Promise.all([
      this.redis.hgetall(this.key),
      this.redis.hgetall(this.statusKey),
    ]);
    const all = Object.entries(docs).map(([f, r]) => this.parse(r, statuses[f]));
    return all
      .filter((m) => !namespace || m.metadata.namespace === namespace)
      .sort((a, b) => a.metadata.creationTimestamp.localeCompare(b.metadata.creationTimestamp));
  }

  async updateStatus(namespace: string, name: string, status: MigrationStatus): Promise<boolean> {
    const n = await this.redis.eval(
      UPDATE_STATUS,
      2,
      this.key,
      this.statusKey,
      this.field(namespace, name),
      JSON.stringify(status),
    );
    if (n === 1) await this.redis.publish(this.channel, name);
    return n === 1;
  }

  async delete(namespace: string, name: string): Promise<boolean> {
    const f = this.field(namespace, name);
    const n = await this.redis.hdel(this.key, f);
    await this.redis.hdel(this.statusKey, f);
    await this.redis.publish(this.channel, name);
    return n === 1;
  }
}
