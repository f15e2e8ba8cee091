// MigrationStore on the Kubernetes API (@kubernetes/client-node): Migrations are ferry.dev/v1alpha1
// custom objects. The controller reads them from an informer-style cache (list, then watch from the
// list's resourceVersion with bookmarks; relist on 410 Expired and every resync period), writes
// status only through the status subresource, retries on 409 Conflict, holds deleted objects with a
// finalizer until they are rolled back, and records Kubernetes Events.
import { formatIssues } from '../../api/v1alpha1/issues.ts';
import { randomBytes } from 'node:crypto';
import { ApiException, CoreV1Api, CustomObjectsApi, KubeConfig, Watch } from '@kubernetes/client-node';
import {
  API_VERSION,
  FINALIZER,
  initialStatus,
  MigrationSchema,
  type Migration,
  type MigrationInput,
  type MigrationStatus,
  type StoredMigration,
} from '../../api/v1alpha1/migration.ts';
import type { Logger } from '../logger.ts';
import {
  AlreadyExistsError,
  ImmutableFieldError,
  NotFoundError,
  byCreation,
  specChange,
  validOnly,
  reportOnce,
  type MigrationEvent,
  type MigrationStore,
} from './migration-store.ts';

const GROUP = 'ferry.dev';
const VERSION = 'v1alpha1';
const PLURAL = 'migrations';
const CONFLICT_RETRIES = 5;

type Raw = Record<string, unknown> & {
  metadata: Record<string, unknown> & { name: string; namespace: string };
  spec: unknown;
  status?: unknown;
};

const codeOf = (err: unknown): number | undefined => (err instanceof ApiException ? err.code : undefined);

export function loadKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else kc.loadFromDefault();
  return kc;
}

export class KubeMigrationStore implements MigrationStore {
  private readonly api: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly cache = new Map<string, Raw>();
  private informer: { stop: () => void } | undefined;

  constructor(
    private readonly kc: KubeConfig,
    private readonly log?: Logger,
  ) {
    this.api = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
  }

  private key = (ns: string, name: string) => `${ns}/${name}`;

  /** A Migration the API server holds that fails ferry's schema: said once per version, then left out. */
  private readonly invalid = reportOnce((key, problem) =>
    this.log?.warn({ migration: key, problem }, 'ignoring a Migration that fails the schema'),
  );

  private toStored(raw: Raw): StoredMigration {
    const { managedFields: _mf, selfLink: _sl, ...metadata } = raw.metadata;
    const status =
      raw.status ?? initialStatus(String(metadata.creationTimestamp ?? new Date().toISOString()));
    const parsed = MigrationSchema.safeParse({ ...raw, metadata, status });
    if (!parsed.success)
      throw new Error(
        `stored Migration is invalid: ${formatIssues(parsed.error.issues).replace(/\n/g, '; ')}`,
      );
    return parsed.data as StoredMigration;
  }

  private remember(raw: Raw): void {
    this.cache.set(this.key(raw.metadata.namespace, raw.metadata.name), raw);
  }

  /**
   * Starts the informer: list all Migrations, then watch from the list's resourceVersion with
   * bookmarks. `onChange` runs after every event so the controller wakes at once.
   */
  async startInformer(onChange: () => void, resyncMs = 60_000): Promise<void> {
    const watch = new Watch(this.kc);
    let rv = '';
    let stopped = false;
    let request: { abort: () => void } | undefined;
    const relist = async () => {
      const list = (await this.api.listClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
      })) as { items: Raw[]; metadata: { resourceVersion: string } };
      this.cache.clear();
      for (const item of list.items) this.remember(item);
      rv = list.metadata.resourceVersion;
      onChange();
    };
    const loop = async (): Promise<void> => {
      if (stopped) return;
      try {
        if (!rv) await relist();
        request = await watch.watch(
          `/apis/${GROUP}/${VERSION}/${PLURAL}`,
          { resourceVersion: rv, allowWatchBookmarks: true },
          (type: string, obj: Raw & { code?: number }) => {
            if (type === 'ERROR') {
              if (obj.code === 410) rv = ''; // too old: relist on the next round
              return;
            }
            if (obj.metadata?.resourceVersion) rv = String(obj.metadata.resourceVersion);
            if (type === 'BOOKMARK') return;
            if (type === 'DELETED') this.cache.delete(this.key(obj.metadata.namespace, obj.metadata.name));
            else this.remember(obj);
            onChange();
          },
          (err: unknown) => {
            if (err && !stopped) this.log?.warn({ err: String(err) }, 'migration watch ended; resuming');
            if (!stopped) setTimeout(() => void loop(), err ? 1000 : 0);
          },
        );
      } catch (err) {
        this.log?.warn({ err: String(err) }, 'migration list/watch failed; retrying');
        rv = '';
        if (!stopped) setTimeout(() => void loop(), 1000);
      }
    };
    await relist();
    await loop();
    // Resync: a full relist now and then, in case an event was lost.
    const resync = setInterval(() => void relist().catch(() => undefined), resyncMs);
    this.informer = {
      stop: () => {
        stopped = true;
        clearInterval(resync);
        request?.abort();
      },
    };
  }

  stopInformer(): void {
    this.informer?.stop();
  }

  private async read(ns: string, name: string): Promise<Raw | undefined> {
    try {
      const raw = (await this.api.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: ns,
        plural: PLURAL,
        name,
      })) as Raw;
      this.remember(raw);
      return raw;
    } catch (err) {
      if (codeOf(err) === 404) {
        this.cache.delete(this.key(ns, name));
        return undefined;
      }
      throw err;
    }
  }

  /** Read, change, write with the read's resourceVersion; on 409 Conflict read again and retry. */
  private async update(
    ns: string,
    name: string,
    change: (raw: Raw) => Raw | undefined,
    status = false,
  ): Promise<Raw | undefined> {
    for (let attempt = 0; ; attempt++) {
      const cur = await this.read(ns, name);
      if (!cur) return undefined;
      const next = change(cur);
      if (!next) return cur;
      try {
        const args = { group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name, body: next };
        const written = (
          status
            ? await this.api.replaceNamespacedCustomObjectStatus(args)
            : await this.api.replaceNamespacedCustomObject(args)
        ) as Raw;
        this.remember(written);
        return written;
      } catch (err) {
        if (codeOf(err) === 404) return undefined;
        if (codeOf(err) !== 409 || attempt >= CONFLICT_RETRIES) throw err;
      }
    }
  }

  async create(input: MigrationInput, opts: { dryRun?: boolean } = {}): Promise<StoredMigration> {
    const m = MigrationSchema.parse(input);
    const body = {
      apiVersion: API_VERSION,
      kind: 'Migration',
      metadata: {
        name: m.metadata.name,
        namespace: m.metadata.namespace,
        labels: m.metadata.labels,
        annotations: m.metadata.annotations,
        finalizers: [FINALIZER],
      },
      spec: m.spec,
    };
    try {
      const raw = (await this.api.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: m.metadata.namespace,
        plural: PLURAL,
        body,
        ...(opts.dryRun ? { dryRun: 'All' } : {}),
      })) as Raw;
      if (opts.dryRun) return this.toStored(raw);
      this.remember(raw);
      return this.toStored(raw);
    } catch (err) {
      if (codeOf(err) === 409)
        throw new AlreadyExistsError(`migration ${m.metadata.namespace}/${m.metadata.name} already exists`);
      throw err;
    }
  }

  async get(namespace: string, name: string): Promise<StoredMigration | undefined> {
    const raw = await this.read(namespace, name);
    return raw ? this.toStored(raw) : undefined;
  }

  async list(namespace?: string): Promise<StoredMigration[]> {
    let raws: Raw[];
    if (this.informer) raws = [...this.cache.values()];
    else {
      const list = (
        namespace
          ? await this.api.listNamespacedCustomObject({
              group: GROUP,
              version: VERSION,
              namespace,
              plural: PLURAL,
            })
          : await this.api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })
      ) as { items: Raw[] };
      raws = list.items;
    }
    const mine = raws.filter((r) => !namespace || r.metadata.namespace === namespace);
    return validOnly(
      mine.map((r) => [
        `${r.metadata.namespace}/${r.metadata.name}@${String(r.metadata.resourceVersion)}`,
        r,
      ]),
      (r) => this.toStored(r),
      this.invalid,
    ).sort(byCreation);
  }

  async updateSpec(namespace: string, name: string, spec: Migration['spec']): Promise<StoredMigration> {
    const raw = await this.update(namespace, name, (cur) => {
      const old = this.toStored(cur).spec;
      const field = specChange(old, spec);
      if (field)
        throw new ImmutableFieldError(
          `${field}: cannot change after the migration was created (only spec.abort can)`,
        );
      return old.abort === spec.abort
        ? undefined
        : { ...cur, spec: { ...(cur.spec as object), abort: spec.abort } };
    });
    if (!raw) throw new NotFoundError(`migration ${namespace}/${name} not found`);
    return this.toStored(raw);
  }

  async updateStatus(namespace: string, name: string, status: MigrationStatus): Promise<boolean> {
    // Only the controller writes status, so a conflict means the spec or metadata moved: the status
    // it computed is still its word, written over the newer object.
    const raw = await this.update(
      namespace,
      name,
      (cur) => ({
        apiVersion: API_VERSION,
        kind: 'Migration',
        metadata: cur.metadata,
        spec: cur.spec,
        status,
      }),
      true,
    );
    return raw !== undefined;
  }

  async delete(namespace: string, name: string): Promise<'deleted' | 'deleting' | 'notfound'> {
    try {
      const r = (await this.api.deleteNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: PLURAL,
        name,
      })) as { kind?: string; metadata?: { deletionTimestamp?: string } };
      if (r.kind === 'Status') {
        this.cache.delete(this.key(namespace, name));
        return 'deleted';
      }
      return 'deleting';
    } catch (err) {
      if (codeOf(err) === 404) return 'notfound';
      throw err;
    }
  }

  async release(namespace: string, name: string): Promise<void> {
    await this.update(namespace, name, (cur) => {
      const finalizers = (cur.metadata.finalizers as string[] | undefined) ?? [];
      if (!cur.metadata.deletionTimestamp || !finalizers.includes(FINALIZER)) return undefined;
      return { ...cur, metadata: { ...cur.metadata, finalizers: finalizers.filter((f) => f !== FINALIZER) } };
    });
  }

  async event(m: StoredMigration, e: Omit<MigrationEvent, 'time'>): Promise<void> {
    const now = new Date();
    await this.core.createNamespacedEvent({
      namespace: m.metadata.namespace,
      body: {
        metadata: {
          name: `${m.metadata.name}.${randomBytes(8).toString('hex')}`,
          namespace: m.metadata.namespace,
        },
        involvedObject: {
          apiVersion: API_VERSION,
          kind: 'Migration',
          name: m.metadata.name,
          namespace: m.metadata.namespace,
          uid: m.metadata.uid,
        },
        type: e.type,
        reason: e.reason,
        message: e.message,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
        source: { component: 'ferry-controller' },
        reportingComponent: 'ferry.dev/controller',
      },
    });
  }

  async events(namespace: string, name: string): Promise<MigrationEvent[]> {
    const list = await this.core.listNamespacedEvent({
      namespace,
      fieldSelector: `involvedObject.name=${name}`,
    });
    return list.items.map((ev) => ({
      type: ev.type === 'Warning' ? 'Warning' : 'Normal',
      reason: ev.reason ?? '',
      message: ev.message ?? '',
      time: (ev.lastTimestamp ?? ev.firstTimestamp ?? new Date()).toISOString?.() ?? String(ev.lastTimestamp),
    }));
  }
}
