// FAKE kubelet, for tests only: no kubelet runs on these machines. Its container runtime is either a
// REAL containerd driven over CRI (test/cri-runtime.ts), or a FAKE CRI-O (below: no CRI-O runs here
// either) that checkpoints with ferry's own export job and restores with its import job. It
// follows what ferry uses of the real kubelet:
// - the checkpoint API (KEP-2008): POST /checkpoint/{namespace}/{pod}/{container} over HTTPS with a
//   bearer token; 401 without the token, 404 "404 page not found" for other paths, 404 when the pod
//   or container is not on this node, 500 "checkpointing of ... failed (...)" when the runtime
//   fails, else 200 {"items": [ARCHIVE]}: containerd's CRI CheckpointContainer writes it, or, for
//   the fake CRI-O, the agent's export job (the layout CRI-O writes) with the annotations CRI-O
//   puts in spec.dump;
// - the pod lifecycle on its node: a pod bound here is started by the runtime (containerd: a
//   sandbox and its containers over CRI, a checkpoint image restored; the fake CRI-O: only pods of
//   checkpoint images, restored from the node's containers-storage with the agent's import job) and
//   its status written through the API server's status subresource; a failed start shows as
//   CreateContainerError and is tried again every RETRY_MS (the kubelet retries with back-off);
//   the containers of a pod deleted from the API server are removed, and its folder. Pods
//   the fake CRI-O does not start are the test's: it runs their containers itself and writes
//   their status.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { CoreV1Api, V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { ANNOTATION } from '../agent/kube/checkpoint-image.ts';
import type { Bus } from '../lib/bus.ts';
import { errorMessage } from '../lib/errors.ts';
import { exec, run } from '../lib/exec.ts';

/** What a pod's runtime keeps of it, to remove it later. */
export interface PodHandle {
  ids: string[];
  sandbox?: string;
  /** The pod's uid: its folder under the kubelet's pods/ goes with it. */
  uid?: string;
  /** When its start last failed: it is tried again RETRY_MS later. */
  failedAt?: number;
}

const RETRY_MS = 2000;

/** The container runtime under a fake kubelet. */
export interface KubeletRuntime {
  /** The containerID scheme ("cri-o", "containerd"). */
  readonly scheme: string;
  /** Whether this runtime starts the pod; the others are the test's to run. */
  starts(pod: V1Pod): boolean;
  /** Checkpoints a running container into an archive on this node; resolves to its path. */
  checkpoint(pod: V1Pod, container: string, id: string): Promise<string>;
  /** Starts a pod's containers, filling `handle` as it goes; resolves to their statuses. */
  start(pod: V1Pod, handle: PodHandle): Promise<V1ContainerStatus[]>;
  /** Removes a pod's containers; `keepVolumes` for a retry, which keeps its folder (its emptyDirs). */
  remove(handle: PodHandle, keepVolumes?: boolean): Promise<void>;
}

export interface FakeKubeletOptions {
  node: string;
  address: string;
  port: number;
  token: string;
  tls: { key: Buffer; cert: string };
  core: CoreV1Api;
  runtime: KubeletRuntime;
}

const CHECKPOINT = /^\/checkpoint\/([^/]+)\/([^/]+)\/([^/]+)$/;

export class FakeKubelet {
  /** Requests answered, by status code (the tests read it). */
  readonly answered: number[] = [];
  private server: Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private syncing = false;
  /** The pods on this node, by namespace/name. */
  private readonly known = new Map<string, PodHandle>();

  constructor(private readonly opts: FakeKubeletOptions) {}

  get runtime(): KubeletRuntime {
    return this.opts.runtime;
  }

  async start(): Promise<void> {
    this.server = createServer(this.opts.tls, (req, res) => {
      const reply = (code: number, body: string, type = 'text/plain') => {
        this.answered.push(code);
        res.writeHead(code, { 'content-type': type }).end(body);
      };
      const m = CHECKPOINT.exec(new URL(req.url ?? '/', 'https://x').pathname);
      if (!m) return reply(404, '404 page not found\n');
      if (req.headers.authorization !== `Bearer ${this.opts.token}`) return reply(401, 'Unauthorized\n');
      if (req.method !== 'POST') return reply(405, 'Method Not Allowed\n');
      const [ns, pod, container] = m.slice(1).map(decodeURIComponent) as [string, string, string];
      this.checkpoint(ns, pod, container).then(
        (archive) => reply(200, JSON.stringify({ items: [archive] }), 'application/json'),
        (err: { code?: number; message: string }) => reply(err.code ?? 500, `${err.message}\n`),
      );
    });
    await new Promise<void>((r) => this.server!.listen(this.opts.port, this.opts.address, () => r()));
    this.timer = setInterval(() => void this.sync(), 250);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    while (this.syncing) await new Promise((r) => setTimeout(r, 50));
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private async podHere(ns: string, name: string): Promise<V1Pod | undefined> {
    const pod = await this.opts.core.readNamespacedPod({ namespace: ns, name }).catch(() => undefined);
    return pod?.spec?.nodeName === this.opts.node ? pod : undefined;
  }

  private async checkpoint(ns: string, podName: string, container: string): Promise<string> {
    const pod = await this.podHere(ns, podName);
    if (!pod) throw Object.assign(new Error('pod does not exist'), { code: 404 });
    const id = pod.status?.containerStatuses
      ?.find((s) => s.name === container)
      ?.containerID?.replace(/^[a-z-]+:\/\//, '');
    if (!id) throw Object.assign(new Error(`container ${container} does not exist`), { code: 404 });
    try {
      return await this.opts.runtime.checkpoint(pod, container, id);
    } catch (err) {
      throw Object.assign(
        new Error(`checkpointing of ${ns}/${podName}/${container} failed (${errorMessage(err)})`),
        { code: 500 },
      );
    }
  }

  /** One pass of the pod lifecycle on this node. */
  private async sync(): Promise<void> {
    if (this.syncing) return;
    this.syncing = true;
    try {
      const list = await this.opts.core.listPodForAllNamespaces();
      const here = list.items.filter((p) => p.spec?.nodeName === this.opts.node);
      const keys = new Set(here.map((p) => `${p.metadata!.namespace}/${p.metadata!.name}`));
      for (const [key, handle] of this.known) {
        if (keys.has(key)) continue;
        this.known.delete(key);
        await this.opts.runtime.remove(handle);
      }
      for (const pod of here) {
        const key = `${pod.metadata!.namespace}/${pod.metadata!.name}`;
        const handle = this.known.get(key);
        // A pod whose container could not be created is tried again, as the kubelet does (its
        // back-off here a fixed RETRY_MS).
        if (handle?.failedAt && Date.now() - handle.failedAt > RETRY_MS) {
          await this.opts.runtime.remove(handle, true);
          const again: PodHandle = { ids: [], uid: pod.metadata!.uid! };
          this.known.set(key, again);
          await this.startPod(pod, again);
        }
        if (this.known.has(key)) continue;
        if (pod.status?.phase) {
          // A pod the test runs itself: its containers as its status names them.
          const ids = (pod.status.containerStatuses ?? []).map((s) =>
            s.containerID?.replace(/^[a-z-]+:\/\//, ''),
          );
          this.known.set(key, { ids: ids.filter((x): x is string => !!x) });
        } else if (this.opts.runtime.starts(pod)) {
          const handle: PodHandle = { ids: [], uid: pod.metadata!.uid! };
          this.known.set(key, handle);
          await this.startPod(pod, handle);
        }
      }
    } catch {
      // The API server is gone (the test ended) or busy: the next pass tries again.
    } finally {
      this.syncing = false;
    }
  }

  private async startPod(pod: V1Pod, handle: PodHandle): Promise<void> {
    delete handle.failedAt;
    try {
      const statuses = await this.opts.runtime.start(pod, handle);
      await this.setStatus(pod, {
        phase: 'Running',
        conditions: [{ type: 'Ready', status: 'True' }],
        containerStatuses: statuses,
      });
    } catch (err) {
      handle.failedAt = Date.now();
      await this.setStatus(pod, {
        phase: 'Pending',
        containerStatuses: pod.spec!.containers.map((c) => ({
          name: c.name,
          image: c.image!,
          imageID: '',
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: 'CreateContainerError', message: errorMessage(err) } },
        })),
      });
    }
  }

  private async setStatus(pod: V1Pod, status: V1Pod['status']): Promise<void> {
    const cur = await this.opts.core.readNamespacedPod({
      namespace: pod.metadata!.namespace!,
      name: pod.metadata!.name!,
    });
    await this.opts.core.replaceNamespacedPodStatus({
      namespace: pod.metadata!.namespace!,
      name: pod.metadata!.name!,
      body: { ...cur, status },
    });
  }
}

/** The FAKE CRI-O: ferry's agent does its work through the bus (export and import jobs). */
export class FakeCrio implements KubeletRuntime {
  readonly scheme = 'cri-o';
  /** The next restores fail, as a runtime reports a checkpoint it cannot restore. */
  failRestores = false;

  constructor(
    private readonly node: string,
    private readonly bus: Bus,
    private readonly imageStore: { root: string; runRoot: string; driver: string },
  ) {}

  /** Only pods whose every container is a checkpoint image; the test runs the others. */
  starts(pod: V1Pod): boolean {
    return pod.spec!.containers.every((c) => c.image?.startsWith('localhost/ferry-checkpoint/'));
  }

  async checkpoint(pod: V1Pod, container: string, id: string): Promise<string> {
    const { archive } = await this.bus.call(this.node, { kind: 'export', container: id });
    // What CRI-O records about the container, in the archive's spec.dump and config.dump.
    const image = pod.spec?.containers.find((c) => c.name === container)?.image ?? '';
    await rewriteMember(archive, 'spec.dump', (spec) => ({
      ...spec,
      annotations: {
        ...(spec.annotations as Record<string, string> | undefined),
        'io.container.manager': 'cri-o',
        'io.kubernetes.container.name': container,
        'io.kubernetes.pod.name': pod.metadata!.name!,
        'io.kubernetes.pod.namespace': pod.metadata!.namespace!,
      },
    }));
    await rewriteMember(archive, 'config.dump', (config) => ({
      ...config,
      name: container,
      rootfsImageName: image,
      rootfsImage: image,
    }));
    return archive;
  }

  async start(pod: V1Pod, handle: PodHandle): Promise<V1ContainerStatus[]> {
    const statuses: V1ContainerStatus[] = [];
    for (const c of pod.spec!.containers) {
      const id = randomBytes(16).toString('hex');
      await this.restore(c.image!, id);
      handle.ids.push(id);
      statuses.push({
        name: c.name,
        containerID: `cri-o://${id}`,
        image: c.image!,
        imageID: c.image!,
        ready: true,
        restartCount: 0,
        state: { running: { startedAt: new Date() } },
      });
    }
    return statuses;
  }

  async remove(handle: PodHandle): Promise<void> {
    for (const id of handle.ids) await this.bus.call(this.node, { kind: 'remove', container: id });
  }

  private async restore(ref: string, id: string): Promise<void> {
    const { root, runRoot, driver } = this.imageStore;
    const store = `containers-storage:[${driver}@${root}+${runRoot}]${ref}`;
    const raw = await exec('skopeo', ['inspect', '--raw', store]);
    if (raw.code !== 0) throw new Error(`image ${ref} not known: ${raw.stderr.trim()}`);
    const manifest = JSON.parse(raw.stdout) as {
      annotations?: Record<string, string>;
      layers: { digest: string }[];
    };
    if (!manifest.annotations?.[ANNOTATION.container]) throw new Error(`${ref} is not a checkpoint image`);
    if (this.failRestores) throw new Error('failed to restore container: criu failed: type RESTORE errno 0');
    const dir = await mkdtemp(path.join(tmpdir(), 'fake-crio-'));
    try {
      await run('skopeo', ['copy', '--quiet', store, `dir:${dir}`]);
      const layer = manifest.layers[0]!.digest.replace(/^sha256:/, '');
      const file = (await readdir(dir)).find((f) => f === layer);
      if (!file) throw new Error(`layer ${layer} missing from ${ref}`);
      await this.bus.call(
        this.node,
        { kind: 'import', container: id, archive: path.join(dir, file) },
        120_000,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

/** Replaces one JSON member of a tar archive in place. */
async function rewriteMember(
  archive: string,
  name: string,
  edit: (v: Record<string, unknown>) => Record<string, unknown>,
): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'fake-kubelet-'));
  try {
    await run('tar', ['--extract', '--file', archive, '--directory', dir, `./${name}`]);
    const file = path.join(dir, name);
    await writeFile(
      file,
      JSON.stringify(edit(JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>)),
    );
    await run('tar', ['--delete', '--file', archive, `./${name}`]);
    await run('tar', ['--append', '--file', archive, '--directory', dir, `./${name}`]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
