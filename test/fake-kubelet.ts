// FAKE kubelet with a CRI-O-like runtime, for tests only: no kubelet, CRI-O or containerd runs on
// these machines. It follows what ferry uses of the real ones:
// - the checkpoint API (KEP-2008): POST /checkpoint/{namespace}/{pod}/{container} over HTTPS with a
//   bearer token; 401 without the token, 404 "404 page not found" for other paths, 404 when the pod
//   or container is not on this node, 500 "checkpointing of ... failed (...)" when the runtime
//   fails, else 200 {"items": [ARCHIVE]}. The archive is a real checkpoint of the pod's runc
//   container (the agent's export job, which writes the layout CRI-O writes), with the annotations
//   CRI-O puts in spec.dump;
// - the pod lifecycle on its node: a pod bound here whose image is a checkpoint image (its manifest
//   carries org.criu.checkpoint.container.name, as CRI-O checks) is restored from the image in the
//   node's containers-storage (the agent's import job) and its status written through the API
//   server's status subresource; a failed restore shows as CreateContainerError; the containers of
//   a pod deleted from the API server are removed. Pods of other images are the test's: it runs
//   their containers itself and writes their status.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import { ANNOTATION } from '../agent/kube/checkpoint-image.ts';
import type { Bus } from '../lib/bus.ts';
import { errorMessage } from '../lib/errors.ts';
import { exec, run } from '../lib/exec.ts';

export interface FakeKubeletOptions {
  node: string;
  address: string;
  port: number;
  token: string;
  tls: { key: Buffer; cert: string };
  bus: Bus;
  core: CoreV1Api;
  imageStore: { root: string; runRoot: string; driver: string };
}

const CHECKPOINT = /^\/checkpoint\/([^/]+)\/([^/]+)\/([^/]+)$/;

export class FakeKubelet {
  /** The next restores fail, as a runtime reports a checkpoint it cannot restore. */
  failRestores = false;
  /** Requests answered, by status code (the tests read it). */
  readonly answered: number[] = [];
  private server: Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private syncing = false;
  /** Containers of the pods on this node, by namespace/name. */
  private readonly known = new Map<string, string[]>();

  constructor(private readonly opts: FakeKubeletOptions) {}

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
      ?.containerID?.replace(/^cri-o:\/\//, '');
    if (!id) throw Object.assign(new Error(`container ${container} does not exist`), { code: 404 });
    try {
      const { archive } = await this.opts.bus.call(this.opts.node, {
        kind: 'export',
        container: id,
      });
      // What CRI-O records about the container, in the archive's spec.dump and config.dump.
      const image = pod.spec?.containers.find((c) => c.name === container)?.image ?? '';
      await rewriteMember(archive, 'spec.dump', (spec) => ({
        ...spec,
        annotations: {
          ...(spec.annotations as Record<string, string> | undefined),
          'io.container.manager': 'cri-o',
          'io.kubernetes.container.name': container,
          'io.kubernetes.pod.name': podName,
          'io.kubernetes.pod.namespace': ns,
        },
      }));
      await rewriteMember(archive, 'config.dump', (config) => ({
        ...config,
        name: container,
        rootfsImageName: image,
        rootfsImage: image,
      }));
      return archive;
    } catch (err) {
      throw Object.assign(
        new Error(`checkpointing of ${ns}/${podName}/${container} failed (${errorMessage(err)})`),
        {
          code: 500,
        },
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
      for (const [key, ids] of this.known) {
        if (keys.has(key)) continue;
        this.known.delete(key);
        for (const id of ids) await this.opts.bus.call(this.opts.node, { kind: 'remove', container: id });
      }
      for (const pod of here) {
        const key = `${pod.metadata!.namespace}/${pod.metadata!.name}`;
        if (pod.status?.phase) {
          const ids = (pod.status.containerStatuses ?? []).map((s) =>
            s.containerID?.replace(/^cri-o:\/\//, ''),
          );
          this.known.set(
            key,
            ids.filter((x): x is string => !!x),
          );
        } else if (!this.known.has(key) && isCheckpointPod(pod)) {
          this.known.set(key, []);
          await this.start_(pod);
        }
      }
    } catch {
      // The API server is gone (the test ended) or busy: the next pass tries again.
    } finally {
      this.syncing = false;
    }
  }

  /** Starts a new pod: CRI-O restores each container whose image is a checkpoint image. */
  private async start_(pod: V1Pod): Promise<void> {
    const statuses = [];
    const key = `${pod.metadata!.namespace}/${pod.metadata!.name}`;
    try {
      for (const c of pod.spec!.containers) {
        const id = randomBytes(16).toString('hex');
        await this.restore(c.image!, id);
        this.known.get(key)!.push(id);
        const started = new Date();
        statuses.push({
          name: c.name,
          containerID: `cri-o://${id}`,
          image: c.image!,
          imageID: c.image!,
          ready: true,
          restartCount: 0,
          state: { running: { startedAt: started } },
        });
      }
      await this.setStatus(pod, {
        phase: 'Running',
        conditions: [{ type: 'Ready', status: 'True' }],
        containerStatuses: statuses,
      });
    } catch (err) {
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

  private async restore(ref: string, id: string): Promise<void> {
    const { root, runRoot, driver } = this.opts.imageStore;
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
      await this.opts.bus.call(
        this.opts.node,
        { kind: 'import', container: id, archive: path.join(dir, file) },
        120_000,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
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

/** A pod this fake starts: every container from a checkpoint image. Others are the test's to run. */
const isCheckpointPod = (pod: V1Pod): boolean =>
  pod.spec!.containers.every((c) => c.image?.startsWith('localhost/ferry-checkpoint/'));

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
