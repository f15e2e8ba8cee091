// MigrationStore on Redis for the local cluster: one hash of spec documents, one of statuses (only
// the controller writes it, as with Kubernetes' status subresource), a short event list per
// Migration, and a pub/sub channel that says when something changed.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { keyspace } from '../keyspace.ts';
import { formatIssues } from '../../api/v1alpha1/issues.ts';
import {
  initialStatus,
  MigrationSchema,
  TERMINAL_PHASES,
  type Migration,
  type MigrationInput,
  type MigrationStatus,
  type StoredMigration,
} from '../../api/v1alpha1/migration.ts';
import {
  AlreadyExistsError,
  ImmutableFieldError,
  NotFoundError,
  prepareNew,
  byCreation,
  specChange,
  validOnly,
  type MigrationEvent,
  type MigrationStore,
} from './migration-store.ts';

// Status is set only while the object exists, so a delete is never undone.
const UPDATE_STATUS = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
return 1`;

const MAX_EVENTS = 50;

export class RedisMigrationStore implements MigrationStore {
  private readonly key: string;
  private readonly statusKey: string;
  private readonly revisionsKey: string;
  private readonly eventsPrefix: string;
  readonly channel: string;
  /**
   * Each document as last parsed, with the revision it was read at: a list() fetches and parses
   * only what was written since the last one. The controller lists every pass; fetching and
   * parsing each Migration every time was most of its work, and most of its garbage, with a
   * thousand stored. The objects handed out are shared between calls: callers treat them as
   * read-only.
   */
  private readonly parsed = new Map<string, { revision: string; value: StoredMigration }>();

  constructor(
    private readonly redis: Redis,
    cluster: string,
    /** Told of a stored document that fails the schema; list() leaves it out. */
    private readonly onInvalid?: (key: string, problem: string) => void,
  ) {
    this.key = keyspace.migrations(cluster);
    this.statusKey = keyspace.migrationStatus(cluster);
    this.revisionsKey = keyspace.migrationRevisions(cluster);
    this.eventsPrefix = keyspace.eventsPrefix(cluster);
    this.channel = keyspace.migrationsChanged(cluster);
  }

  private field = (ns: string, name: string) => `${ns}/${name}`;

  private parse(raw: string, status: string | null | undefined): StoredMigration {
    // Stored documents went through the schema on the way in; parse again to catch corruption.
    const doc = JSON.parse(raw) as Record<string, unknown>;
    if (status) doc.status = JSON.parse(status);
    const parsed = MigrationSchema.safeParse(doc);
    if (!parsed.success)
      throw new Error(
        `stored Migration is invalid: ${formatIssues(parsed.error.issues).replace(/\n/g, '; ')}`,
      );
    return parsed.data as StoredMigration;
  }

  private async changed(name: string): Promise<void> {
    await this.redis.publish(this.channel, name);
  }

  async create(input: MigrationInput, opts: { dryRun?: boolean } = {}): Promise<StoredMigration> {
    const now = new Date().toISOString();
    const m = prepareNew(input, randomUUID(), now);
    const field = this.field(m.metadata.namespace, m.metadata.name);
    const status = initialStatus(now);
    if (opts.dryRun) {
      if (await this.redis.hexists(this.key, field))
        throw new AlreadyExistsError(`migration ${field} already exists`);
      return { ...m, status } as StoredMigration;
    }
    const ok = await this.redis.hsetnx(this.key, field, JSON.stringify(m));
    if (!ok) throw new AlreadyExistsError(`migration ${field} already exists`);
    await this.redis
      .multi()
      .hset(this.statusKey, field, JSON.stringify(status))
      .hincrby(this.revisionsKey, field, 1)
      .exec();
    await this.changed(m.metadata.name);
    return { ...m, status } as StoredMigration;
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
    // The names and revisions first, then only the documents that changed: read in this order, a
    // document is never older than the revision it is kept under. One stored before revisions
    // existed has none, and is read every time until it is next written.
    const [names, revisions] = await Promise.all([
      this.redis.hkeys(this.key),
      this.redis.hgetall(this.revisionsKey),
    ]);
    const stale = names.filter((f) => !revisions[f] || this.parsed.get(f)?.revision !== revisions[f]);
    const [docs, statuses] = stale.length
      ? await Promise.all([this.redis.hmget(this.key, ...stale), this.redis.hmget(this.statusKey, ...stale)])
      : [[], []];
    const fresh = new Map(stale.map((f, i) => [f, { raw: docs[i], status: statuses[i] }]));
    const present = new Set(names);
    for (const f of this.parsed.keys()) if (!revisions[f] || !present.has(f)) this.parsed.delete(f);
    const all = validOnly(
      names.map((f) => [f, f] as const),
      (f) => {
        const got = fresh.get(f);
        if (!got) return this.parsed.get(f)!.value;
        if (!got.raw) throw new Error('deleted while being listed');
        const value = this.parse(got.raw, got.status);
        if (revisions[f]) this.parsed.set(f, { revision: revisions[f], value });
        return value;
      },
      (key, problem) => problem !== 'deleted while being listed' && this.onInvalid?.(key, problem),
    );
    return all.filter((m) => !namespace || m.metadata.namespace === namespace).sort(byCreation);
  }

  private async write(m: StoredMigration): Promise<void> {
    const { status: _status, ...doc } = m;
    const field = this.field(m.metadata.namespace, m.metadata.name);
    await this.redis
      .multi()
      .hset(this.key, field, JSON.stringify(doc))
      .hincrby(this.revisionsKey, field, 1)
      .exec();
    await this.changed(m.metadata.name);
  }

  async updateSpec(namespace: string, name: string, spec: Migration['spec']): Promise<StoredMigration> {
    const m = await this.get(namespace, name);
    if (!m) throw new NotFoundError(`migration ${namespace}/${name} not found`);
    const field = specChange(m.spec, spec);
    if (field)
      throw new ImmutableFieldError(
        `${field}: cannot change after the migration was created (only spec.abort can)`,
      );
    if (m.spec.abort === spec.abort) return m;
    const next = { ...m, spec, metadata: { ...m.metadata, generation: m.metadata.generation + 1 } };
    await this.write(next);
    return next;
  }

  async updateStatus(namespace: string, name: string, status: MigrationStatus): Promise<boolean> {
    const n = await this.redis.eval(
      UPDATE_STATUS,
      3,
      this.key,
      this.statusKey,
      this.revisionsKey,
      this.field(namespace, name),
      JSON.stringify(status),
    );
    if (n === 1) await this.changed(name);
    return n === 1;
  }

  async delete(namespace: string, name: string): Promise<'deleted' | 'deleting' | 'notfound'> {
    const m = await this.get(namespace, name);
    if (!m) return 'notfound';
    if (TERMINAL_PHASES.includes(m.status.phase) || !m.metadata.finalizers?.length) {
      await this.remove(namespace, name);
      return 'deleted';
    }
    if (!m.metadata.deletionTimestamp)
      await this.write({ ...m, metadata: { ...m.metadata, deletionTimestamp: new Date().toISOString() } });
    return 'deleting';
  }

  async release(namespace: string, name: string): Promise<void> {
    const m = await this.get(namespace, name);
    if (m?.metadata.deletionTimestamp) await this.remove(namespace, name);
  }

  private async remove(namespace: string, name: string): Promise<void> {
    const f = this.field(namespace, name);
    await this.redis
      .multi()
      .hdel(this.key, f)
      .hdel(this.statusKey, f)
      .hdel(this.revisionsKey, f)
      .del(this.eventsPrefix + f)
      .exec();
    await this.changed(name);
  }

  async event(m: StoredMigration, e: Omit<MigrationEvent, 'time'>): Promise<void> {
    const key = this.eventsPrefix + this.field(m.metadata.namespace, m.metadata.name);
    await this.redis
      .multi()
      .rpush(key, JSON.stringify({ ...e, time: new Date().toISOString() }))
      .ltrim(key, -MAX_EVENTS, -1)
      .exec();
  }

  async events(namespace: string, name: string): Promise<MigrationEvent[]> {
    const raw = await this.redis.lrange(this.eventsPrefix + this.field(namespace, name), 0, -1);
    return raw.map((r) => JSON.parse(r) as MigrationEvent);
  }
}
