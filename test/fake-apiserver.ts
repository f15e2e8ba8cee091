// FAKE Kubernetes API server, for tests only: no kube-apiserver, kind, k3s or envtest runs on these
// machines (see shared/environment.md). It speaks the real wire protocol for what ferry uses, so the
// same client code talks to a real cluster: JSON over HTTP at the real paths; list with
// resourceVersion; watch as a chunked stream of {type, object} lines from a resourceVersion, with
// BOOKMARK events when asked and a 410 Expired ERROR event for a version too old; 409 Conflict on a
// stale resourceVersion and 409 AlreadyExists; 404 NotFound; 422 Invalid with field causes; the
// status subresource (a main-resource update ignores status, a /status update ignores everything
// else); metadata.generation bumped on spec changes; deletionTimestamp held by finalizers; Leases
// (coordination.k8s.io/v1) and Events (v1), with fieldSelector on involvedObject.name; a create with
// dryRun=All checked and answered but not stored; Pods (v1),
// with fieldSelector on spec.nodeName
// with their status subresource, which the fake kubelets (test/fake-kubelet.ts) write; ReplicaSets
// (apps/v1), with an EMULATED ReplicaSet controller run after every pod or ReplicaSet write
// (test/fake-replicaset.ts says exactly what it does and does not do); StatefulSets (apps/v1), with
// an EMULATED StatefulSet controller (test/fake-statefulset.ts) whose pod creations go through a
// mutating admission webhook when the test configures one (AdmissionReview v1 over HTTPS, a
// JSONPatch applied; failurePolicy Fail: a failed call refuses the pod, and the StatefulSet tries
// again), for pods labelled statefulset.kubernetes.io/pod-name, as ferry's chart scopes it; and an EMULATED scheduler
// binding ungated pods whose node affinity names their node (test/fake-scheduler.ts); pod spec
// validation of what ferry's pods meet (scheduling gates: never with spec.nodeName, only removed
// on update; spec.nodeName not changed on update); PersistentVolumeClaims (v1), stored as given
// (no binding, no provisioning); Nodes (v1, cluster-scoped), stored as given (the tests make them:
// no kubelet registers them); PodDisruptionBudgets (policy/v1), their status computed on each read
// by an EMULATED disruption controller (test/fake-pdb.ts).
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer, request as httpsRequest } from 'node:https';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { MigrationSchema } from '../api/v1alpha1/migration.ts';
import { specChange } from '../lib/store/migration-store.ts';
import { replicaSetChanges, type ReplicaSetChange } from './fake-replicaset.ts';
import { bindingFor } from './fake-scheduler.ts';
import { budgetStatus } from './fake-pdb.ts';
import { missingPods } from './fake-statefulset.ts';
import jsonPatch, { type Operation } from 'fast-json-patch';
import { selfSignedCert } from './self-signed.ts';

type Obj = Record<string, unknown> & { metadata: Record<string, unknown> };
interface WatchEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  kind: string;
  object: Obj;
}

interface Kind {
  kind: string;
  apiVersion: string;
  /** Path prefix up to the namespace, and the plural. */
  group: string;
  plural: string;
  statusSubresource: boolean;
  /** Not in a namespace (Nodes): at GROUP/PLURAL/NAME, stored under the namespace ''. */
  clusterScoped?: boolean;
}

const KINDS: Kind[] = [
  {
    kind: 'Migration',
    apiVersion: 'ferry.dev/v1alpha1',
    group: '/apis/ferry.dev/v1alpha1',
    plural: 'migrations',
    statusSubresource: true,
  },
  {
    kind: 'Lease',
    apiVersion: 'coordination.k8s.io/v1',
    group: '/apis/coordination.k8s.io/v1',
    plural: 'leases',
    statusSubresource: false,
  },
  { kind: 'Event', apiVersion: 'v1', group: '/api/v1', plural: 'events', statusSubresource: false },
  { kind: 'Pod', apiVersion: 'v1', group: '/api/v1', plural: 'pods', statusSubresource: true },
  {
    kind: 'PersistentVolumeClaim',
    apiVersion: 'v1',
    group: '/api/v1',
    plural: 'persistentvolumeclaims',
    statusSubresource: true,
  },
  {
    kind: 'ReplicaSet',
    apiVersion: 'apps/v1',
    group: '/apis/apps/v1',
    plural: 'replicasets',
    statusSubresource: true,
  },
  {
    kind: 'StatefulSet',
    apiVersion: 'apps/v1',
    group: '/apis/apps/v1',
    plural: 'statefulsets',
    statusSubresource: true,
  },
  {
    kind: 'Node',
    apiVersion: 'v1',
    group: '/api/v1',
    plural: 'nodes',
    statusSubresource: true,
    clusterScoped: true,
  },
  {
    kind: 'PodDisruptionBudget',
    apiVersion: 'policy/v1',
    group: '/apis/policy/v1',
    plural: 'poddisruptionbudgets',
    statusSubresource: true,
  },
];

/** How many past events a watch can resume from; older resourceVersions get 410 Expired. */
const HISTORY = 1000;

export class FakeApiServer {
  private server: Server | undefined;
  private rv = 0;
  private readonly objects = new Map<string, Obj>(); // kind/ns/name
  private history: WatchEvent[] = [];
  private watchers = new Set<{ kind: string; ns?: string; send: (e: WatchEvent) => void }>();
  /** Counters the tests read: status writes that changed nothing, conflicts answered. */
  readonly stats = { statusWrites: 0, noopStatusWrites: 0, conflicts: 0, requests: 0 };
  url = '';

  private ca = '';

  /** Serves HTTPS with a throw-away self-signed certificate, as client-node refuses plain HTTP. */
  async start(): Promise<string> {
    const { key, cert } = selfSignedCert('127.0.0.1');
    this.ca = cert;
    this.server = createServer({ key, cert }, (req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    this.url = `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    // A StatefulSet whose pod creation was refused tries again, as the real one does.
    this.stsTimer = setInterval(() => void this.runStatefulSets(), 500);
    return this.url;
  }

  /** The pods' mutating admission webhook, as a MutatingWebhookConfiguration would name it. */
  webhook: { url: string; ca: string } | undefined;
  /** Admission calls made, and the pods they changed (the tests read it). */
  readonly admissions: Array<{ pod: string; patched: boolean }> = [];
  private stsTimer: NodeJS.Timeout | undefined;
  private inStatefulSets = false;

  /** The emulated StatefulSet controller: creates each missing pod, through admission. */
  private async runStatefulSets(): Promise<void> {
    if (this.inStatefulSets) return;
    this.inStatefulSets = true;
    try {
      const all = [...this.objects.values()];
      for (const sts of all.filter((o) => o.kind === 'StatefulSet')) {
        const ns = String(sts.metadata.namespace);
        const pods = all.filter((p) => p.kind === 'Pod' && p.metadata.namespace === ns);
        for (const pod of missingPods(sts, pods)) {
          const admitted = await this.admit(pod).catch(() => undefined);
          if (!admitted || this.objects.has(`Pod/${ns}/${String(pod.metadata.name)}`)) continue;
          const invalid = validatePod(admitted);
          if (invalid) continue;
          this.addPod(admitted);
        }
      }
    } finally {
      this.inStatefulSets = false;
    }
  }

  /** A pod through the mutating webhook (StatefulSet pods only, as the chart scopes it). */
  private async admit(pod: Obj): Promise<Obj> {
    const labels = (pod.metadata.labels ?? {}) as Record<string, string>;
    if (!this.webhook || !labels['statefulset.kubernetes.io/pod-name']) return pod;
    const uid = randomUUID();
    const review = {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid,
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        operation: 'CREATE',
        namespace: pod.metadata.namespace,
        name: pod.metadata.name,
        object: pod,
      },
    };
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest(
        this.webhook!.url,
        {
          method: 'POST',
          ca: this.webhook!.ca,
          headers: { 'content-type': 'application/json' },
          timeout: 10_000,
        },
        (res) => {
          let data = '';
          res.setEncoding('utf8').on('data', (d: string) => (data += d));
          res.on('end', () =>
            res.statusCode === 200 ? resolve(data) : reject(new Error(`webhook ${res.statusCode}`)),
          );
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify(review));
    });
    const answer = JSON.parse(body) as {
      response?: { uid?: string; allowed?: boolean; patchType?: string; patch?: string };
    };
    if (answer.response?.uid !== uid || !answer.response.allowed) throw new Error('webhook refused the pod');
    const patch = answer.response.patch;
    this.admissions.push({ pod: String(pod.metadata.name), patched: !!patch });
    if (!patch) return pod;
    const ops = JSON.parse(Buffer.from(patch, 'base64').toString()) as Operation[];
    return jsonPatch.applyPatch(structuredClone(pod), ops).newDocument;
  }

  async stop(): Promise<void> {
    clearInterval(this.stsTimer);
    for (const w of this.watchers) w.send = () => undefined;
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()));
  }

  /** A kubeconfig for this server, as `kubectl` and @kubernetes/client-node read it. */
  kubeconfig(): string {
    return JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'fake',
          cluster: {
            server: this.url,
            'certificate-authority-data': Buffer.from(this.ca).toString('base64'),
          },
        },
      ],
      users: [{ name: 'ferry', user: { token: 'fake-token' } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'ferry', namespace: 'default' } }],
      'current-context': 'fake',
    });
  }

  /** Drops watch history so resuming from an old resourceVersion gets 410 Expired. */
  compact(): void {
    this.history = [];
  }

  private emit(type: WatchEvent['type'], kind: string, object: Obj): void {
    const e = { rv: Number(object.metadata.resourceVersion), type, kind, object };
    this.history.push(e);
    if (this.history.length > HISTORY) this.history.shift();
    for (const w of this.watchers)
      if (w.kind === kind && (!w.ns || w.ns === object.metadata.namespace)) w.send(e);
    if (kind === 'Pod' || kind === 'ReplicaSet') this.runReplicaSets();
    if (kind === 'Pod' || kind === 'StatefulSet') setImmediate(() => void this.runStatefulSets());
    if (kind === 'Pod' && type !== 'DELETED') this.schedule(object);
  }

  /** The emulated scheduler: binds the pod if it may be bound now (test/fake-scheduler.ts). */
  private schedule(pod: Obj): void {
    const node = bindingFor(pod);
    if (!node) return;
    const key = `Pod/${String(pod.metadata.namespace)}/${String(pod.metadata.name)}`;
    const cur = this.objects.get(key);
    if (!cur || cur.metadata.resourceVersion !== pod.metadata.resourceVersion) return;
    const bound: Obj = {
      ...cur,
      spec: { ...(cur.spec as object), nodeName: node },
      metadata: { ...cur.metadata, resourceVersion: String(++this.rv) },
    };
    this.objects.set(key, bound);
    this.emit('MODIFIED', 'Pod', bound);
  }

  /** The pods the emulated ReplicaSet controller created or deleted, in order. */
  readonly replicaSetLog: Array<{ type: 'create' | 'delete'; pod: string }> = [];
  private inReplicaSets = false;

  /** The emulated ReplicaSet controller (test/fake-replicaset.ts), until it has nothing to do. */
  private runReplicaSets(): void {
    if (this.inReplicaSets) return;
    this.inReplicaSets = true;
    try {
      for (let round = 0; round < 10; round++) {
        const all = [...this.objects.values()];
        const changes = all
          .filter((o) => o.kind === 'ReplicaSet')
          .flatMap((rs) =>
            replicaSetChanges(
              rs,
              all.filter((p) => p.kind === 'Pod' && p.metadata.namespace === rs.metadata.namespace),
            ),
          );
        if (!changes.length) return;
        for (const c of changes) this.applyReplicaSetChange(c);
      }
    } finally {
      this.inReplicaSets = false;
    }
  }

  /** Stores a pod an emulated controller made, as the API server does with a created one. */
  private addPod(pod: Obj): void {
    const created: Obj = {
      ...pod,
      metadata: {
        ...pod.metadata,
        uid: randomUUID(),
        creationTimestamp: new Date().toISOString(),
        resourceVersion: String(++this.rv),
      },
    };
    this.objects.set(`Pod/${String(pod.metadata.namespace)}/${String(pod.metadata.name)}`, created);
    this.emit('ADDED', 'Pod', created);
  }

  private applyReplicaSetChange(c: ReplicaSetChange): void {
    const m = c.pod.metadata;
    if (c.type === 'create') {
      const name = `${String(m.generateName)}${randomUUID().slice(0, 5)}`;
      this.replicaSetLog.push({ type: 'create', pod: name });
      return this.addPod({ ...c.pod, metadata: { ...m, name } });
    }
    const key = `Pod/${String(m.namespace)}/${String(m.name)}`;
    if (c.type === 'delete') {
      this.objects.delete(key);
      this.replicaSetLog.push({ type: 'delete', pod: String(m.name) });
      return this.emit('DELETED', 'Pod', {
        ...c.pod,
        metadata: { ...m, resourceVersion: String(++this.rv) },
      });
    }
    const owners = [...((m.ownerReferences as unknown[] | undefined) ?? []), c.owner];
    const pod = { ...c.pod, metadata: { ...m, ownerReferences: owners, resourceVersion: String(++this.rv) } };
    this.objects.set(key, pod);
    this.emit('MODIFIED', 'Pod', pod);
  }

  /** An object as read: a PodDisruptionBudget with the status its emulated controller computes now. */
  private withStatus(o: Obj): Obj {
    if (o.kind !== 'PodDisruptionBudget') return o;
    const pods = [...this.objects.values()].filter((p) => p.kind === 'Pod');
    return { ...o, status: budgetStatus(o, pods) };
  }

  private route(path: string): { kind: Kind; ns?: string; name?: string; sub?: string } | undefined {
    for (const kind of KINDS) {
      if (!path.startsWith(kind.group + '/')) continue;
      const rest = path.slice(kind.group.length + 1).split('/');
      if (kind.clusterScoped && rest[0] === kind.plural)
        return { kind, ns: '', ...(rest[1] ? { name: rest[1] } : {}), ...(rest[2] ? { sub: rest[2] } : {}) };
      if (rest[0] === kind.plural) return { kind };
      if (rest[0] === 'namespaces' && rest[2] === kind.plural) {
        return {
          kind,
          ns: rest[1]!,
          ...(rest[3] ? { name: rest[3] } : {}),
          ...(rest[4] ? { sub: rest[4] } : {}),
        };
      }
    }
    return undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.stats.requests++;
    const url = new URL(req.url ?? '/', 'http://x');
    const r = this.route(url.pathname);
    if (req.headers.authorization !== 'Bearer fake-token')
      return fail(res, 401, 'Unauthorized', 'no valid token');
    if (!r)
      return fail(res, 404, 'NotFound', `the server could not find the requested resource ${url.pathname}`);
    const body = ['POST', 'PUT', 'PATCH'].includes(req.method ?? '') ? await readJson(req) : undefined;
    const key = (ns: string, name: string) => `${r.kind.kind}/${ns}/${name}`;
    const { kind, ns, name, sub } = r;

    if (req.method === 'GET' && !name) {
      if (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1')
        return this.watch(req, res, kind, ns, url.searchParams);
      let items = [...this.objects.entries()]
        .filter(([k, o]) => k.startsWith(`${kind.kind}/`) && (!ns || o.metadata.namespace === ns))
        .map(([, o]) => o);
      const field = url.searchParams.get('fieldSelector');
      if (field) {
        const [path, value] = field.split('=');
        // The two field selectors ferry uses: events of an object, pods of a node.
        const get: Record<string, (o: Obj) => unknown> = {
          'involvedObject.name': (o) => (o.involvedObject as { name?: string } | undefined)?.name,
          'spec.nodeName': (o) => (o.spec as { nodeName?: string } | undefined)?.nodeName,
        };
        if (!get[path!]) return fail(res, 400, 'BadRequest', `field label not supported: ${path}`);
        items = items.filter((o) => get[path!]!(o) === value);
      }
      return json(res, 200, {
        apiVersion: kind.apiVersion,
        kind: `${kind.kind}List`,
        metadata: { resourceVersion: String(this.rv) },
        items: items.map((o) => this.withStatus(o)),
      });
    }
    if (ns === undefined) return fail(res, 405, 'MethodNotAllowed', 'cluster-wide writes are not supported');

    if (req.method === 'POST' && !name) {
      const obj = body as Obj;
      const n = obj.metadata?.name as string | undefined;
      if (!n) return fail(res, 422, 'Invalid', 'metadata.name: Required value');
      if (this.objects.has(key(ns, n)))
        return fail(res, 409, 'AlreadyExists', `${kind.plural} "${n}" already exists`);
      const invalid = validate(kind, obj);
      if (invalid) return fail(res, 422, 'Invalid', invalid);
      const created: Obj = {
        ...obj,
        apiVersion: kind.apiVersion,
        kind: kind.kind,
        metadata: {
          ...obj.metadata,
          ...(kind.clusterScoped ? {} : { namespace: ns }),
          uid: randomUUID(),
          creationTimestamp: new Date().toISOString(),
          resourceVersion: String(++this.rv),
          generation: 1,
        },
      };
      if (kind.statusSubresource) delete created.status; // status is ignored on create
      // dryRun=All: every check made, nothing stored, the object answered as it would be.
      if (url.searchParams.get('dryRun') === 'All') return json(res, 201, created);
      this.objects.set(key(ns, n), created);
      this.emit('ADDED', kind.kind, created);
      return json(res, 201, created);
    }

    const cur = name ? this.objects.get(key(ns, name)) : undefined;
    if (!cur) return fail(res, 404, 'NotFound', `${kind.plural} "${name}" not found`);
    if (req.method === 'GET') return json(res, 200, this.withStatus(cur));

    if (req.method === 'PUT') {
      const obj = body as Obj;
      const rv = obj.metadata?.resourceVersion;
      if (rv !== undefined && rv !== cur.metadata.resourceVersion) {
        this.stats.conflicts++;
        return fail(
          res,
          409,
          'Conflict',
          `Operation cannot be fulfilled on ${kind.plural} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
        );
      }
      let next: Obj;
      if (sub === 'status') {
        if (!kind.statusSubresource) return fail(res, 404, 'NotFound', 'no status subresource');
        this.stats.statusWrites++;
        if (JSON.stringify(cur.status) === JSON.stringify(obj.status)) this.stats.noopStatusWrites++;
        next = { ...cur, status: obj.status, metadata: { ...cur.metadata } };
      } else {
        const invalid = validate(kind, obj, cur);
        if (invalid) return fail(res, 422, 'Invalid', invalid);
        const specChanged = JSON.stringify(obj.spec) !== JSON.stringify(cur.spec);
        const m = obj.metadata;
        next = {
          ...obj,
          ...(kind.statusSubresource ? { status: cur.status } : {}),
          apiVersion: kind.apiVersion,
          kind: kind.kind,
          metadata: {
            ...cur.metadata,
            labels: m.labels,
            annotations: m.annotations,
            ownerReferences: m.ownerReferences,
            finalizers: m.finalizers,
            generation: (cur.metadata.generation as number) + (specChanged ? 1 : 0),
          },
        };
      }
      next.metadata.resourceVersion = String(++this.rv);
      // The last finalizer removed from an object being deleted: it goes now.
      if (next.metadata.deletionTimestamp && !(next.metadata.finalizers as string[] | undefined)?.length) {
        this.objects.delete(key(ns, name!));
        this.emit('DELETED', kind.kind, next);
        return json(res, 200, next);
      }
      this.objects.set(key(ns, name!), next);
      this.emit('MODIFIED', kind.kind, next);
      return json(res, 200, next);
    }

    if (req.method === 'DELETE') {
      if ((cur.metadata.finalizers as string[] | undefined)?.length) {
        if (!cur.metadata.deletionTimestamp) {
          const next = {
            ...cur,
            metadata: {
              ...cur.metadata,
              deletionTimestamp: new Date().toISOString(),
              resourceVersion: String(++this.rv),
            },
          };
          this.objects.set(key(ns, name!), next);
          this.emit('MODIFIED', kind.kind, next);
          return json(res, 200, next);
        }
        return json(res, 200, cur);
      }
      this.objects.delete(key(ns, name!));
      const gone = { ...cur, metadata: { ...cur.metadata, resourceVersion: String(++this.rv) } };
      this.emit('DELETED', kind.kind, gone);
      return json(res, 200, {
        kind: 'Status',
        apiVersion: 'v1',
        status: 'Success',
        details: { name, kind: kind.plural },
      });
    }
    return fail(res, 405, 'MethodNotAllowed', `${req.method} is not supported here`);
  }

  private watch(
    req: IncomingMessage,
    res: ServerResponse,
    kind: Kind,
    ns: string | undefined,
    q: URLSearchParams,
  ): void {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const write = (type: string, object: unknown) => res.write(JSON.stringify({ type, object }) + '\n');
    const from = Number(q.get('resourceVersion') || this.rv);
    const oldest = this.history[0]?.rv ?? this.rv + 1;
    if (from < this.rv && from < oldest - 1) {
      write('ERROR', {
        kind: 'Status',
        apiVersion: 'v1',
        status: 'Failure',
        reason: 'Expired',
        code: 410,
        message: `too old resource version: ${from} (${oldest - 1})`,
      });
      res.end();
      return;
    }
    for (const e of this.history)
      if (e.rv > from && e.kind === kind.kind && (!ns || e.object.metadata.namespace === ns))
        write(e.type, e.object);
    const w = { kind: kind.kind, ...(ns ? { ns } : {}), send: (e: WatchEvent) => write(e.type, e.object) };
    this.watchers.add(w);
    const bookmarks =
      q.get('allowWatchBookmarks') === 'true'
        ? setInterval(
            () =>
              write('BOOKMARK', {
                kind: kind.kind,
                apiVersion: kind.apiVersion,
                metadata: { resourceVersion: String(this.rv) },
              }),
            1000,
          )
        : undefined;
    const timeout = Number(q.get('timeoutSeconds') ?? 0);
    const timer = timeout ? setTimeout(() => res.end(), timeout * 1000) : undefined;
    const close = () => {
      this.watchers.delete(w);
      if (bookmarks) clearInterval(bookmarks);
      if (timer) clearTimeout(timer);
    };
    req.on('close', close);
    res.on('close', close);
  }
}

/**
 * The little of pod validation ferry's pods meet: a DNS name, containers with a name and an image,
 * scheduling gates never beside a node name and only ever removed, a node name never changed.
 */
function validatePod(obj: Obj, old?: Obj): string | undefined {
  const spec = obj.spec as { nodeName?: string; schedulingGates?: { name: string }[] } | undefined;
  if (spec?.nodeName && spec.schedulingGates?.length)
    return 'spec.nodeName: Forbidden: cannot be set until all schedulingGates have been cleared';
  if (old) {
    const was = old.spec as typeof spec;
    if (was?.nodeName && spec?.nodeName !== was.nodeName)
      return 'spec: Forbidden: pod updates may not change fields other than the mutable ones (spec.nodeName)';
    const before = new Set((was?.schedulingGates ?? []).map((g) => g.name));
    if ((spec?.schedulingGates ?? []).some((g) => !before.has(g.name)))
      return 'spec.schedulingGates: Forbidden: only deletion is allowed, but found new scheduling gate';
  }
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(String(obj.metadata.name)))
    return `metadata.name: Invalid value: "${String(obj.metadata.name)}": a lowercase RFC 1123 label`;
  const containers = (obj.spec as { containers?: { name?: string; image?: string }[] } | undefined)
    ?.containers;
  if (!containers?.length) return 'spec.containers: Required value';
  for (const [i, c] of containers.entries()) {
    if (!c.name) return `spec.containers[${i}].name: Required value`;
    if (!c.image) return `spec.containers[${i}].image: Required value`;
  }
  return undefined;
}

/** OpenAPI validation and CEL rules, as the CRD declares them, for Migrations. */
function validate(kind: Kind, obj: Obj, old?: Obj): string | undefined {
  if (kind.kind === 'Pod') return validatePod(obj, old);
  if (kind.kind !== 'Migration') return undefined;
  const { status: _s, ...rest } = obj;
  const parsed = MigrationSchema.safeParse({
    ...rest,
    metadata: { name: obj.metadata.name, namespace: obj.metadata.namespace ?? 'default' },
  });
  if (!parsed.success) return parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
  if (old) {
    const oldSpec = MigrationSchema.shape.spec.parse(old.spec);
    const field = specChange(oldSpec, parsed.data.spec);
    if (field)
      return `spec: Invalid value: only spec.abort can change after the migration was created (${field})`;
  }
  return undefined;
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function fail(res: ServerResponse, code: number, reason: string, message: string): void {
  json(res, code, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code,
  });
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let s = '';
  for await (const c of req) s += c;
  return s ? JSON.parse(s) : {};
}
